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

// Chunked applied twice: Beast frames such a message as bodiless (a request) or
// close-delimited (a response), so without this check the chunk data became the next request
// on the connection and was forwarded (issue 14.1).
TEST_F(smuggling, ChunkedTwiceIsRejectedAndNothingIsSmuggled) {
  start();
  expect_rejected(*this,
                  "POST /front HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"
                  "30 /SMUGGLED HTTP/1.1\r\nHost: a\r\nContent-Length: 16\r\n\r\n"
                  "AAAAAAAAA\r\n0\r\n\r\n",
                  400);
  EXPECT_TRUE(up.requests().empty());
}

TEST_F(smuggling, ChunkedTwiceSpellingsAreRejected) {
  start();
  for (std::string_view te : {"chunked,chunked", "CHUNKED , chunked", ", chunked, chunked",
                              "chunked, identity, chunked"}) {
    expect_rejected(*this,
                    "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + std::string(te) +
                        "\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                    400);
  }
}

TEST_F(smuggling, SingleChunkedAmidEmptyElementsStillStreams) {
  // RFC 9110 §5.6.1: empty list elements do not count; this is one chunked, and Beast must
  // frame it as chunked for the body to reach the upstream whole.
  start();
  auto res = fetch(
      "POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  ASSERT_TRUE(up.wait_requests(1));
  EXPECT_EQ(up.requests().at(0).body, "hello");
}

TEST_F(smuggling, UpstreamChunkedTwiceIsA502WithoutRawFraming) {
  // The response side of the same hole: read as close-delimited, the raw chunk framing used
  // to reach the client as body bytes.
  up.set_script([](upstream_conn& c) {
    if (!c.read_request()) return;
    c.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    c.shutdown_write();
  });
  start();
  auto res = fetch(get("/"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 502);
  EXPECT_EQ(res->raw.find("5\r\nhello"), std::string::npos) << res->raw;
  ASSERT_TRUE(up.wait_requests(1));
}

// RFC 9112 §3.2: Host is uri-host [":" port]; anything else is 400 before it can reach
// X-Forwarded-Host or the upstream's Host (issue 14.3).
TEST_F(smuggling, InvalidHostIs400) {
  start({.keep_host = true});
  for (std::string_view host : {"a b", "evil.example/x?y#z", "", "a@b:c:d", "a:b:c", "[::1",
                                "[zz]:80", "x:123456", "x:99999", "a\\b"}) {
    expect_rejected(*this, "GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n", 400);
  }
}

TEST_F(smuggling, InvalidAbsoluteFormAuthorityIs400) {
  start({.keep_host = true});
  expect_rejected(*this, "GET http://abs.example\\x/k3 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_rejected(*this, "GET http://user@abs.example/k3 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
  expect_rejected(*this, "GET ftp://abs.example/k3 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

TEST_F(smuggling, ValidHostsReachTheUpstreamUnchanged) {
  start({.keep_host = true});
  std::vector<std::string> hosts = {
      "example.com",   "Example.COM:8080",      "127.0.0.1:80",  "[::1]:8443",
      "[2001:db8::1]", "xn--bcher-kva.example", "a-b_c.example", "host:"};
  for (const auto& h : hosts) {
    auto res = fetch("GET / HTTP/1.1\r\nHost: " + h + "\r\n\r\n");
    ASSERT_TRUE(res) << h;
    EXPECT_EQ(res->status, 200) << h;
  }
  ASSERT_TRUE(up.wait_requests(hosts.size()));
  auto reqs = up.requests();
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    EXPECT_EQ(reqs[i].header("host"), hosts[i]);
    EXPECT_EQ(reqs[i].header("x-forwarded-host"), hosts[i]);
  }
}

// Backends that fold '_' into '-' would read "Transfer_Encoding" as Transfer-Encoding and
// frame the body differently from the proxy (issue 14.4).
constexpr std::string_view underscore_request =
    "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer_Encoding: chunked\r\n"
    "X_Other: 1\r\n\r\nhello";

TEST_F(smuggling, UnderscoreFieldsAreDroppedByDefault) {
  start();
  auto res = fetch(underscore_request);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  ASSERT_TRUE(up.wait_requests(1));
  auto req = up.requests().at(0);
  EXPECT_FALSE(req.header("transfer_encoding"));
  EXPECT_FALSE(req.header("x_other"));
  EXPECT_EQ(req.header("content-length"), "5");
  EXPECT_EQ(req.body, "hello");
}

TEST_F(smuggling, UnderscoreFieldsKeptWhenAsked) {
  start({}, {.headers_with_underscores = trafficcop::underscore_fields::keep});
  ASSERT_TRUE(fetch(underscore_request));
  ASSERT_TRUE(up.wait_requests(1));
  EXPECT_EQ(up.requests().at(0).header("x_other"), "1");
}

TEST_F(smuggling, UnderscoreFieldsRejectedWhenAsked) {
  start({}, {.headers_with_underscores = trafficcop::underscore_fields::reject});
  expect_rejected(*this, underscore_request, 400);
}

}  // namespace
}  // namespace testnet
