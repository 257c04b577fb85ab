// SPDX-License-Identifier: MIT
// Large Content-Length bodies, which the proxy relays socket to socket with splice(2) once
// nothing is buffered (src/core/splice.hpp): bytes exact, connection reuse, failures on
// either side, back-pressure from a slow client.
#include <sys/socket.h>

#include <atomic>
#include <thread>

#include "proxy_fixture.hpp"

namespace testnet {
namespace {

using relay = proxy_test;
using namespace std::chrono_literals;

std::string pattern(std::size_t n, std::size_t seed = 0) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 251 + seed) % 26);
  return s;
}

std::string head_for(std::size_t n) {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(n) + "\r\n\r\n";
}

TEST_F(relay, LargeBodiesByteExactOnOneUpstreamConnection) {
  const std::string one = pattern(1 << 20, 1);
  const std::string two = pattern((3 << 20) + 17, 2);
  up.set_responder([&](const message& m) { return response(200, m.target() == "/1" ? one : two); });
  start();
  client c(port);
  for (int round = 0; round < 2; ++round) {
    auto a = c.request(get("/1"));
    ASSERT_TRUE(a);
    EXPECT_TRUE(a->complete);
    EXPECT_TRUE(a->body == one) << "1 MiB body differs";
    auto b = c.request(get("/2"));
    ASSERT_TRUE(b);
    EXPECT_TRUE(b->complete);
    EXPECT_TRUE(b->body == two) << "3 MiB body differs";
  }
  // The relay left the upstream connection at a message boundary: it went back to the pool.
  EXPECT_EQ(up.connections(), 1u);
  EXPECT_EQ(up.requests().size(), 4u);
}

TEST_F(relay, Spec47UpstreamCutShortMidRelayAbortsTheClient) {
  up.set_script([](upstream_conn& c) {
    if (!c.read_request()) return;
    c.send(head_for(1 << 20) + pattern(8 * 1024));
    std::this_thread::sleep_for(50ms);  // the proxy drains its buffer and starts relaying
    c.send(pattern(300 * 1024));
  });  // then the upstream closes, 740 KiB short
  start();
  client c(port);
  auto res = c.request(get("/"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_FALSE(res->complete) << "a truncated body must not look complete (spec 47)";
  EXPECT_TRUE(c.closed());
  // The broken upstream connection was not pooled: the next request opens a new one.
  up.set_responder([](const message&) { return response(200, "fresh"); });
  auto next = fetch(get("/again"));
  ASSERT_TRUE(next);
  EXPECT_EQ(next->body, "fresh");
  EXPECT_EQ(up.connections(), 2u);
}

TEST_F(relay, SlowClientGetsEveryByte) {
  const std::string body = pattern(8 << 20, 3);
  up.set_responder([&](const message&) { return response(200, body); });
  start();
  client c(port);
  int small = 16 * 1024;
  ::setsockopt(c.fd.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  ASSERT_TRUE(c.send(get("/big")));
  std::this_thread::sleep_for(200ms);  // the proxy fills every buffer and must wait for room
  auto res = c.response();
  ASSERT_TRUE(res);
  EXPECT_TRUE(res->complete);
  EXPECT_TRUE(res->body == body) << "8 MiB body differs";
}

TEST_F(relay, Spec49ClientGoneMidRelayClosesUpstream) {
  gate& upstream_saw_close = new_gate();
  gate& client_left = new_gate();
  up.set_script([&](upstream_conn& c) {
    if (!c.read_request()) return;
    c.send(head_for(64 << 20) + pattern(4 * 1024));
    // Trickle the body until the proxy gives up on this exchange.
    for (int i = 0; i < 400; ++i) {
      if (!c.send(pattern(64 * 1024))) {
        upstream_saw_close.open();
        return;
      }
      if (client_left.wait(5ms)) break;
    }
    if (c.peer_closed()) upstream_saw_close.open();
  });
  start();
  {
    client c(port);
    ASSERT_TRUE(c.send(get("/huge")));
    ASSERT_TRUE(c.rd.until("\r\n\r\n"));
  }  // the client hangs up mid-body
  client_left.open();
  EXPECT_TRUE(upstream_saw_close.wait());
  EXPECT_TRUE(eventually([&] { return srv->open_connections() == 0; }));
}

TEST_F(relay, BytesBeyondARelayedBodyKeepTheConnectionOutOfThePool) {
  // A broken upstream writes a second, unasked-for response right after a large body. The
  // relay stops at the body's end, so those bytes stay in the socket: the connection must not
  // be pooled, or the next request (maybe another client's) would read them as its answer.
  const std::string body = pattern(200 * 1024, 4);
  std::atomic<int> conns{0};
  up.set_script([&](upstream_conn& c) {
    int k = ++conns;
    while (auto m = c.read_request()) {
      if (k == 1)
        c.send(head_for(body.size()) + body.substr(0, 4096));
      else
        c.send(response(200, "fresh"));
      if (k == 1) {
        std::this_thread::sleep_for(30ms);  // the proxy starts relaying the rest
        c.send(body.substr(4096) + response(200, "stray"));
      }
    }
  });
  start();
  auto first = fetch(get("/big"));
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->body == body);
  auto second = fetch(get("/next"));
  ASSERT_TRUE(second);
  EXPECT_EQ(second->body, "fresh");
  EXPECT_EQ(up.connections(), 2u);
}

TEST_F(relay, UnaskedBytesOnAnIdlePooledConnectionAreNotAnAnswer) {
  // An upstream that answers its own idle timeout with a 408 (and closes): a later GET must
  // not take that 408 as its response, though GETs skip the liveness peek on connections
  // reused within milliseconds.
  std::atomic<int> conns{0};
  up.set_script([&](upstream_conn& c) {
    int k = ++conns;
    if (!c.read_request()) return;
    c.send(response(200, k == 1 ? "first" : "fresh"));
    if (k != 1) return;
    std::this_thread::sleep_for(100ms);
    c.send("HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  });
  start();
  auto first = fetch(get("/1"));
  ASSERT_TRUE(first);
  EXPECT_EQ(first->body, "first");
  std::this_thread::sleep_for(300ms);  // the 408 has arrived on the pooled connection
  auto second = fetch(get("/2"));
  ASSERT_TRUE(second);
  EXPECT_EQ(second->status, 200);
  EXPECT_EQ(second->body, "fresh");
}

}  // namespace
}  // namespace testnet
