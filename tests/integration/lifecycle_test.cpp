// SPDX-License-Identifier: MIT
// Connection lifecycle: timeouts, concurrency, graceful shutdown, descriptor leaks (spec 59).
#include <sys/socket.h>

#include <atomic>
#include <thread>

#include "proxy_fixture.hpp"

namespace testnet {
namespace {

using lifecycle = proxy_test;

TEST_F(lifecycle, ReadHeaderTimeoutClosesStalledClient) {
  start({}, {.read_header_timeout = std::chrono::milliseconds(300)});
  client c(port);
  ASSERT_TRUE(c.send("GET / HTTP/1.1\r\nHost: a\r\nX-Half"));
  auto t0 = std::chrono::steady_clock::now();
  auto rest = c.rd.to_eof();  // the 408, then EOF
  ASSERT_TRUE(rest) << "connection not closed";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  // The client sent nothing more, so nothing unread can turn the close into a reset: the 408
  // must be there (a close alone would leave the client guessing why).
  EXPECT_EQ(rest->substr(0, 12), "HTTP/1.1 408") << *rest;
  EXPECT_EQ(up.connections(), 0u);
}

TEST_F(lifecycle, ReadHeaderTimeoutBoundsTheWholeHeadNotEachRead) {
  // Slowloris: every gap is shorter than the timeout, the head as a whole is not.
  start({}, {.read_header_timeout = std::chrono::milliseconds(400)});
  client c(port);
  std::string head = "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: 0123456789012345678901234567890\r\n";
  auto t0 = std::chrono::steady_clock::now();
  bool cut = false;
  for (char ch : head) {
    if (!c.send(std::string_view(&ch, 1))) {
      cut = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the trickle being tested
  }
  auto rest = c.rd.to_eof();
  ASSERT_TRUE(rest) << "connection not closed";
  EXPECT_TRUE(cut || rest->substr(0, 12) == "HTTP/1.1 408") << *rest;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2500));
  EXPECT_EQ(up.connections(), 0u);
}

/// `n` threads each send `per_thread` requests on one connection and check every answer.
void hammer(std::uint16_t port, int n, int per_thread, std::atomic<int>& good) {
  std::vector<std::thread> ts;
  for (int i = 0; i < n; ++i)
    ts.emplace_back([&, i] {
      client c(port);
      for (int j = 0; j < per_thread; ++j) {
        std::string path = "/c" + std::to_string(i) + "/" + std::to_string(j);
        auto res = c.request(get(path));
        if (res && res->status == 200 && res->body == path) ++good;
      }
    });
  for (auto& t : ts) t.join();
}

TEST_F(lifecycle, Spec59HundredConcurrentClients) {
  up.set_responder([](const message& m) { return response(200, m.target()); });
  start();
  std::atomic<int> good{0};
  hammer(port, 100, 3, good);
  EXPECT_EQ(good.load(), 300);
}

TEST_F(lifecycle, TwoWorkersServe) {
  up.set_responder([](const message& m) { return response(200, m.target()); });
  start({}, {.workers = 2});
  std::atomic<int> good{0};
  hammer(port, 20, 5, good);
  EXPECT_EQ(good.load(), 100);
}

TEST_F(lifecycle, GracefulShutdownDrainsInFlight) {
  gate& got_request = new_gate();
  gate& release = new_gate();
  up.set_script([&](upstream_conn& c) {
    if (!c.read_request()) return;
    got_request.open();
    release.wait();
    c.send(response(200, "slow"));
  });
  start();
  client c(port);
  ASSERT_TRUE(c.send(get("/slow")));
  ASSERT_TRUE(got_request.wait());
  srv->shutdown(std::chrono::seconds(5));
  // New connections are refused once the listener is closed (connect or first read fails).
  EXPECT_TRUE(eventually([&] {
    client n(port, std::chrono::milliseconds(500));
    return !n.fd || !n.request(get("/"));
  }));
  release.open();
  auto res = c.response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "slow");
  EXPECT_EQ(res->header("connection"), "close");
  srv->wait();
}

TEST_F(lifecycle, NoDescriptorLeakWithAbortingClients) {
  // Every third request's client leaves early: mid-response (the upstream sends a large body
  // slowly) or while the upstream is still thinking. Afterwards, once the pool's idle timeout
  // closed the pooled upstream connections, the descriptors are back at their baseline.
  constexpr int total = 2000, threads = 8;
  up.set_script([](upstream_conn& c) {
    while (auto req = c.read_request()) {
      auto t = req->target();
      if (t.starts_with("/big")) {
        if (!c.send(response(200, std::string(256 * 1024, 'b')))) return;
      } else if (t.starts_with("/wait")) {
        if (c.peer_closed()) return;  // answers never; waits for the proxy to give up
        return;
      } else if (!c.send(response(200, "ok"))) {
        return;
      }
    }
  });
  trafficcop::reverse_proxy_options o;
  o.transport = trafficcop::make_transport({.idle_timeout = std::chrono::milliseconds(300)});
  start(std::move(o));
  ASSERT_TRUE(fetch(get("/warm")));
  // The warm-up's pooled connection (an fd here and one in the fake upstream) expires first.
  ASSERT_TRUE(eventually([&] { return up.finished() == up.connections(); }));
  const std::size_t baseline = open_fd_count();
  std::atomic<int> next{0}, good{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; ++i)
    ts.emplace_back([&] {
      for (int k; (k = next++) < total;) {
        client c(port, std::chrono::milliseconds(2000));
        if (k % 3 == 1) {  // abort mid-response
          c.send(get("/big"));
          c.rd.until("\r\n\r\n");
          continue;
        }
        if (k % 3 == 2) {  // abort while the upstream waits
          c.send(get("/wait"));
          continue;
        }
        auto res = c.request(get("/small"));
        if (res && res->status == 200) ++good;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(good.load(), (total + 2) / 3);
  EXPECT_TRUE(eventually([&] { return srv->open_connections() == 0; }, std::chrono::seconds(10)))
      << srv->open_connections() << " connections still open";
  // Upstream-side fds of the fake upstream live in this process too: wait for its scripts.
  // Pooled ones close after 300 ms idle, and the fake upstream's end follows.
  EXPECT_TRUE(
      eventually([&] { return up.finished() == up.connections(); }, std::chrono::seconds(10)))
      << up.finished() << " of " << up.connections() << " upstream connections closed";
  EXPECT_TRUE(eventually([&] { return open_fd_count() <= baseline; }, std::chrono::seconds(10)))
      << "fds: " << open_fd_count() << " baseline " << baseline;
}

}  // namespace
}  // namespace testnet
