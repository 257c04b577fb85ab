// SPDX-License-Identifier: MIT
// Tests of the per-client connection count (limits.max_connections_per_client, issue 11).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "server/client_limit.hpp"

namespace trafficcop::detail {
namespace {

using boost::asio::ip::make_address;

TEST(ClientLimit, AdmitsUpToMaxThenAgainAfterARelease) {
  client_limit l(2);
  auto a = make_address("192.0.2.1"), b = make_address("2001:db8::1");
  EXPECT_TRUE(l.admit(a));
  EXPECT_TRUE(l.admit(a));
  EXPECT_FALSE(l.admit(a));
  EXPECT_TRUE(l.admit(b));  // another address: its own count
  EXPECT_EQ(l.open(a), 2u);
  EXPECT_EQ(l.rejected(), 1u);
  l.release(a);
  EXPECT_EQ(l.open(a), 1u);
  EXPECT_TRUE(l.admit(a));
  l.release(a);
  l.release(a);
  EXPECT_EQ(l.open(a), 0u);
  l.release(a);  // nothing counted: no underflow
  EXPECT_EQ(l.open(a), 0u);
  EXPECT_TRUE(l.admit(a));
}

TEST(ClientLimit, MappedIpv4IsTheSameClient) {
  client_limit l(1);
  EXPECT_TRUE(l.admit(make_address("192.0.2.7")));
  EXPECT_FALSE(l.admit(make_address("::ffff:192.0.2.7")));  // a dual-stack listener's view
  l.release(make_address("::ffff:192.0.2.7"));
  EXPECT_TRUE(l.admit(make_address("192.0.2.7")));
}

/// Threads admit and release one address at once: never more than max open at a time, and
/// every admitted connection is released, so the count ends at zero.
TEST(ClientLimit, ExactUnderConcurrency) {
  constexpr int threads = 8, rounds = 20000;
  constexpr std::uint32_t max = 3;
  client_limit l(max);
  auto a = make_address("198.51.100.9");
  std::atomic<int> open{0}, peak{0};
  std::atomic<std::uint64_t> admitted{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (int r = 0; r < rounds; ++r) {
        if (!l.admit(a)) continue;
        admitted.fetch_add(1);
        int now = open.fetch_add(1) + 1;
        int p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {
        }
        open.fetch_sub(1);
        l.release(a);
      }
    });
  for (auto& t : pool) t.join();
  EXPECT_LE(peak.load(), static_cast<int>(max));
  EXPECT_EQ(admitted.load() + l.rejected(), std::uint64_t{threads} * rounds);
  EXPECT_EQ(l.open(a), 0u);
}

}  // namespace
}  // namespace trafficcop::detail
