// SPDX-License-Identifier: MIT
// Request parsing posture (spec 50-53, 60) and limits: bad requests are answered by the proxy,
// the connection is closed, and the upstream never sees them.
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "proxy_fixture.hpp"

namespace testnet {
namespace {

using smuggling = proxy_test;

/// Sends `raw` and expects `status`, then a closed connection and an untouched upstream.
void expect_rejected(smuggling& t, std::string_view raw, int status) {
  client c(t.port);
  ASSERT_TRUE(c.send(raw));
  auto res = c.response();
  ASSERT_TRUE(res) << "no response to: " << raw;
  EXPECT_EQ(res->status, status) << raw;
  EXPECT_EQ(res->header("connection"), "close");
  EXPECT_TRUE(c.closed()) << "connection left open after: " << raw;
  EXPECT_EQ(t.up.connections(), 0u) << "upstream contacted for: " << raw;
}

TEST_F(smuggling, Spec60ContentLengthAndChunked) {
  start();
  expect_rejected(*this,
                  "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                  400);
}

TEST_F(smuggling, Spec60ChunkedAndContentLength) {
  start();
  expect_rejected(*this,
                  "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                  "Content-Length: 5\r\n\r\n0\r\n\r\n",
                  400);
}

TEST_F(smuggling, Spec51ConflictingContentLength) {
  start();
  expect_rejected(*this,
                  "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"
                  "abcd",
                  400);
}

TEST_F(smuggling, Spec53UnsupportedTransferEncoding) {
  start();
  expect_rejected(*this, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501);
}

TEST_F(smuggling, Spec60ChunkedNotLast) {
  start();
  expect_rejected(*this, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                  400);
}

TEST_F(smuggling, Spec60ObsFold) {
  start();
  expect_rejected(*this, "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400);
}

TEST_F(smuggling, Spec50NulInValue) {
  start();
  static constexpr char raw[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n";
  expect_rejected(*this, std::string_view(raw, sizeof raw - 1), 400);
}

TEST_F(smuggling, Spec50SpaceBeforeColon) {
  start();
  expect_rejected(*this, "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400);
}

TEST_F(smuggling, Spec50MissingHost) {
  start();
  expect_rejected(*this, "GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400);
}

TEST_F(smuggling, Spec50BadFieldName) {
  start();
  expect_rejected(*this, "GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n", 400);
}

TEST_F(smuggling, LongUriIs414) {
  start();
  expect_rejected(*this, get("/" + std::string(9000, 'a')), 414);
}

TEST_F(smuggling, LargeHeadersAre431) {
  start();
  std::string extra;
  for (int i = 0; i < 20; ++i)
    extra += "X-Big-" + std::to_string(i) + ": " + std::string(1024, 'v') + "\r\n";
  expect_rejected(*this, get("/", extra), 431);
}

TEST_F(smuggling, TooManyHeadersAre431) {
  start();
  std::string extra;
  for (int i = 0; i < 150; ++i) extra += "X-" + std::to_string(i) + ": v\r\n";
  expect_rejected(*this, get("/", extra), 431);
}

TEST_F(smuggling, BodyOverLimitIs413) {
  start({}, {.max_body_bytes = 100});
  expect_rejected(
      *this, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n" + std::string(1000, 'x'),
      413);
}

TEST_F(smuggling, BadChunkSizeIs400) {
  // The head is fine, so the exchange starts; the body fails while it is streamed. The client
  // must get 400 and a closed connection (the upstream sees an incomplete request at most).
  start();
  client c(port);
  ASSERT_TRUE(c.send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"));
  auto res = c.response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_TRUE(c.closed());
  EXPECT_EQ(up.requests().size(), 0u);  // never a complete request upstream
}

TEST_F(smuggling, Http10WithTransferEncodingIs400) {
  // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing.
  start();
  expect_rejected(*this,
                  "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "5\r\nhello\r\n0\r\n\r\n",
                  400);
}

TEST_F(smuggling, BodyOverLimitAnswerSurvivesTheClose) {
  // RFC 9112 §9.6: the client sends its whole (too large) body after the head. Closing with
  // that input unread makes the kernel answer with RST, which can destroy the 413 before the
  // client reads it, or fail the client's body write first. The proxy lingers instead: it
  // stops sending, drains the body, and closes only once the client is done, so the
  // connection ends without a reset.
  start({}, {.max_body_bytes = 1000});
  client c(port);
  ASSERT_TRUE(c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n"));
  EXPECT_TRUE(c.send(std::string(100000, 'x'))) << "body write cut off";
  auto res = c.response();
  ASSERT_TRUE(res) << "413 lost";
  EXPECT_EQ(res->status, 413);
  EXPECT_TRUE(res->complete);
  EXPECT_EQ(res->header("connection"), "close");
  ASSERT_EQ(c.rd.buffered(), "");
  char byte;
  errno = 0;
  ssize_t n = ::recv(c.fd.get(), &byte, 1, 0);
  EXPECT_EQ(n, 0) << "expected EOF, got " << (n < 0 ? std::strerror(errno) : "data");
  // Our FIN ends the proxy's drain; once its connection is gone, a reset would have arrived.
  EXPECT_EQ(::shutdown(c.fd.get(), SHUT_WR), 0) << "reset before our FIN: " << std::strerror(errno);
  EXPECT_TRUE(eventually([&] { return srv->open_connections() == 0; }));
  int err = 0;
  socklen_t len = sizeof err;
  ASSERT_EQ(::getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len), 0);
  EXPECT_EQ(err, 0) << "connection reset: " << std::strerror(err);
  EXPECT_EQ(up.connections(), 0u);
}

}  // namespace
}  // namespace testnet
