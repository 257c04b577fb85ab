// SPDX-License-Identifier: MIT
// Per-worker connection limit (DESIGN.md §4: every limit explicit, with a safe default).
#include "proxy_fixture.hpp"

namespace testnet {
namespace {

using limits = proxy_test;

TEST_F(limits, MaxConnectionsParksAcceptUntilOneCloses) {
  start({}, {.workers = 1, .max_connections = 2});
  auto first = std::make_unique<client>(port);
  client second(port);
  ASSERT_TRUE(first->request(get("/1")));
  ASSERT_TRUE(second.request(get("/2")));

  // The third connection completes in the kernel's backlog but is not served yet: a bounded
  // negative check (its read times out after 300 ms).
  client third(port, std::chrono::milliseconds(300));
  ASSERT_TRUE(third.send(get("/3")));
  EXPECT_FALSE(third.response()) << "served beyond max_connections";

  first.reset();  // one slot frees up: the parked accept loop takes the third connection
  set_recv_timeout(third.fd.get(), default_timeout);
  auto res = third.response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(up.requests().size(), 3u);
}

}  // namespace
}  // namespace testnet
