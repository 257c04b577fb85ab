// SPDX-License-Identifier: MIT
// A GoogleTest fixture: a fake upstream plus an in-process trafficcop::server running
// make_reverse_proxy on 127.0.0.1:0, shut down in TearDown.
#pragma once

#include <gtest/gtest.h>

#include <deque>
#include <memory>
#include <string>

#include "test_net.hpp"
#include "trafficcop/reverse_proxy.hpp"
#include "trafficcop/server.hpp"

namespace testnet {

class proxy_test : public ::testing::Test {
 public:
  /// Starts the server with `opts` (upstream defaults to the fake upstream) and `so`.
  void start(trafficcop::reverse_proxy_options opts = {}, trafficcop::server_options so = {}) {
    if (opts.upstream.empty()) opts.upstream = up.url();
    start_handler(trafficcop::make_reverse_proxy(std::move(opts)), std::move(so));
  }

  void start_handler(trafficcop::handler h, trafficcop::server_options so = {}) {
    so.listen = {"127.0.0.1:0"};
    if (so.workers == 0) so.workers = 1;
    srv = std::make_unique<trafficcop::server>(so, std::move(h));
    std::string what;
    auto ec = srv->start(what);
    ASSERT_FALSE(ec) << what;
    port = srv->local_endpoints().at(0).port();
  }

  void TearDown() override {
    if (srv) {
      srv->shutdown(std::chrono::milliseconds(0));
      srv->wait();
      srv.reset();
    }
  }

  client connect() { return client(port); }
  /// One request on a fresh connection.
  std::optional<message> fetch(std::string_view raw, bool head = false) {
    client c(port);
    return c.request(raw, head);
  }

  /// A gate that outlives the test body: upstream scripts run on their own threads and may
  /// still touch it after the body returned; `up` (declared after) joins them first.
  gate& new_gate() { return gates_.emplace_back(); }

 private:
  std::deque<gate> gates_;

 public:
  fake_upstream up;
  std::unique_ptr<trafficcop::server> srv;
  std::uint16_t port = 0;
};

}  // namespace testnet
