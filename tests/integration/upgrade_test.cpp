// SPDX-License-Identifier: MIT
// Protocol upgrades through the proxy (spec 24-30).
#include <sys/socket.h>

#include "proxy_fixture.hpp"

namespace testnet {
namespace {

using upgrade = proxy_test;

const std::string ws_request = get("/ws",
                                   "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
                                   "Sec-WebSocket-Key: k\r\n");

/// Upstream: answers 101 with `upgrade_value`, then echoes until EOF, then says "bye" and
/// closes (so the half-close is visible from both sides).
void echo_script(upstream_conn& c, std::string upgrade_value, gate* saw_eof = nullptr) {
  if (!c.read_request()) return;
  c.send("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + upgrade_value +
         "\r\nX-Header: up\r\n\r\n");
  char buf[4096];
  for (;;) {
    if (!c.rd().buffered().empty()) {
      c.send(std::exchange(c.rd().buffered(), {}));
      continue;
    }
    ssize_t n = ::recv(c.fd(), buf, sizeof buf, 0);
    if (n <= 0) break;
    c.send(std::string_view(buf, static_cast<std::size_t>(n)));
  }
  if (saw_eof) saw_eof->open();
  c.send("bye");
}

TEST_F(upgrade, Spec24To30WebSocketEchoAndHalfClose) {
  gate& saw_eof = new_gate();
  up.set_script([&](upstream_conn& c) { echo_script(c, "websocket", &saw_eof); });
  start();
  client c(port);
  ASSERT_TRUE(c.send(ws_request));
  auto res = c.response();
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 101);
  EXPECT_EQ(res->header("upgrade"), "websocket");
  EXPECT_EQ(res->header("x-header"), "up");
  ASSERT_TRUE(c.send("ping"));
  EXPECT_EQ(c.rd.exact(4), "ping");

  // spec 25: the upstream saw exactly Connection: Upgrade + Upgrade: websocket.
  ASSERT_TRUE(up.wait_requests(1));
  auto req = up.requests().at(0);
  EXPECT_EQ(req.header("connection"), "Upgrade");
  EXPECT_EQ(req.count("connection"), 1u);
  EXPECT_EQ(req.header("upgrade"), "websocket");
  EXPECT_EQ(req.header("sec-websocket-key"), "k");

  // spec 30: our EOF reaches the upstream, which can still send before it closes.
  c.shutdown_write();
  EXPECT_TRUE(saw_eof.wait());
  EXPECT_EQ(c.rd.to_eof(), "bye");
}

TEST_F(upgrade, Spec24ClientBytesAfterHeadDelivered) {
  up.set_script([](upstream_conn& c) { echo_script(c, "websocket"); });
  start();
  client c(port);
  ASSERT_TRUE(c.send(ws_request + "early"));  // bytes sent with the head (#80875)
  auto res = c.response();
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 101);
  EXPECT_EQ(c.rd.exact(5), "early");
}

TEST_F(upgrade, Spec26H2cNotForwarded) {
  start();
  auto res = fetch(get("/",
                       "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                       "HTTP2-Settings: AAMAAABkAAQAAP__\r\n"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  ASSERT_TRUE(up.wait_requests(1));
  auto req = up.requests().at(0);
  EXPECT_EQ(req.count("upgrade"), 0u);
  EXPECT_EQ(req.count("connection"), 0u);
  EXPECT_EQ(req.count("http2-settings"), 0u);
}

TEST_F(upgrade, Spec27WrongUpgradeIs502) {
  up.set_script([](upstream_conn& c) { echo_script(c, "something-else"); });
  start();
  client c(port);
  ASSERT_TRUE(c.send(ws_request));
  auto res = c.response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 502);
}

TEST_F(upgrade, Spec29ClientCloseClosesBackend) {
  gate& saw_eof = new_gate();
  up.set_script([&](upstream_conn& c) { echo_script(c, "websocket", &saw_eof); });
  start();
  {
    client c(port);
    ASSERT_TRUE(c.send(ws_request));
    auto res = c.response();
    ASSERT_TRUE(res && res->status == 101);
  }  // full close
  EXPECT_TRUE(saw_eof.wait());
  EXPECT_TRUE(up.wait_finished(1));
}

TEST_F(upgrade, Spec24NonPrintableUpgradeTypeIs502) {
  // HTAB and obs-text are valid in a field value (the request parses) but not in a protocol
  // name: the proxy refuses the upgrade itself, without contacting the upstream.
  start();
  for (std::string type : {"web\tsocket", "websocket\xff"}) {
    client c(port);
    auto res = c.request(get("/ws", "Connection: Upgrade\r\nUpgrade: " + type + "\r\n"));
    ASSERT_TRUE(res) << type;
    EXPECT_EQ(res->status, 502) << type;
  }
  // spec 24 (tip): an upgrade on an HTTP/1.0 connection is refused the same way.
  client c(port);
  auto res = c.request("GET /ws HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 502);
  EXPECT_EQ(up.connections(), 0u);
}

TEST_F(upgrade, Spec50ControlByteInUpgradeIs400) {
  // A CTL such as 0x01 is not even a valid field value: the request is rejected as it is
  // parsed (spec 50), before the upgrade rules are reached.
  start();
  client c(port);
  auto res = c.request(get("/ws", "Connection: Upgrade\r\nUpgrade: web\x01socket\r\n"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_TRUE(c.closed());
  EXPECT_EQ(up.connections(), 0u);
}

}  // namespace
}  // namespace testnet
