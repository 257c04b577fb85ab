// SPDX-License-Identifier: MIT
// Request bodies and their framing upstream (spec 19, 20, 22, 23).
#include "proxy_fixture.hpp"

namespace testnet {
namespace {

using bodies = proxy_test;

std::string post(std::string_view body, std::string_view extra = {}) {
  std::string s = "POST /up HTTP/1.1\r\nHost: a\r\n";
  s += extra;
  s += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  s += body;
  return s;
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return s;
}

TEST_F(bodies, Spec19GetHasNoContentLength) {
  start();
  ASSERT_TRUE(fetch(get("/")));
  ASSERT_TRUE(up.wait_requests(1));
  auto req = up.requests().at(0);
  EXPECT_EQ(req.count("content-length"), 0u);
  EXPECT_EQ(req.count("transfer-encoding"), 0u);
  EXPECT_TRUE(req.body.empty());
}

TEST_F(bodies, Spec19PostWithZeroLength) {
  start();
  auto res = fetch(post(""));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  ASSERT_TRUE(up.wait_requests(1));
  auto req = up.requests().at(0);
  EXPECT_EQ(req.header("content-length"), "0");
  EXPECT_EQ(req.count("transfer-encoding"), 0u);
}

TEST_F(bodies, Spec20OneMebibytePostByteExact) {
  up.set_responder([](const message& m) { return response(200, std::to_string(m.body.size())); });
  start();
  std::string body = pattern(1 << 20);
  auto res = fetch(post(body));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, std::to_string(1 << 20));
  ASSERT_TRUE(up.wait_requests(1));
  auto req = up.requests().at(0);
  EXPECT_EQ(req.header("content-length"), std::to_string(1 << 20));
  EXPECT_TRUE(req.body == body) << "body differs";
}

TEST_F(bodies, Spec22ChunkedBodyReframedChunked) {
  start();
  auto res = fetch(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\nX-Req-Trailer: t\r\n\r\n");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  ASSERT_TRUE(up.wait_requests(1));
  auto req = up.requests().at(0);
  EXPECT_TRUE(req.chunked);
  EXPECT_EQ(req.header("transfer-encoding"), "chunked");
  EXPECT_EQ(req.count("content-length"), 0u);
  EXPECT_EQ(req.body, "hello world");
}

TEST_F(bodies, Spec23ExpectContinueOneHundredThenFinal) {
  // The upstream answers 100 itself, then reads the body: the client must get one 100.
  up.set_script([](upstream_conn& c) {
    auto head = c.rd().until("\r\n\r\n");
    if (!head || head->find("100-continue") == std::string::npos) return;
    c.send("HTTP/1.1 100 Continue\r\n\r\n");
    auto body = c.rd().exact(5);
    c.send(response(201, body.value_or("none")));
  });
  start();
  client c(port);
  ASSERT_TRUE(
      c.send("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"));
  auto first = c.response();
  ASSERT_TRUE(first);
  EXPECT_EQ(first->status, 100);
  ASSERT_TRUE(c.send("abcde"));
  auto final_res = c.response();
  ASSERT_TRUE(final_res);
  EXPECT_EQ(final_res->status, 201);
  EXPECT_EQ(final_res->body, "abcde");
  c.send(get("/"));  // the connection is still usable and no stray 100 is pending
  auto next = c.response();
  ASSERT_TRUE(next);
  EXPECT_NE(next->status, 100);
}

TEST_F(bodies, Spec23ExpectContinueUpstreamSilent) {
  // An upstream that does not send 100: after the wait, the proxy sends the body anyway.
  up.set_responder([](const message& m) { return response(200, m.body); });
  start();
  client c(port);
  ASSERT_TRUE(
      c.send("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"));
  auto first = c.response();
  ASSERT_TRUE(first);
  ASSERT_EQ(first->status, 100);
  ASSERT_TRUE(c.send("xyz"));
  auto final_res = c.response();
  ASSERT_TRUE(final_res);
  EXPECT_EQ(final_res->status, 200);
  EXPECT_EQ(final_res->body, "xyz");
  ASSERT_TRUE(up.wait_requests(1));
  EXPECT_EQ(up.requests().at(0).header("expect"), "100-continue");
}

TEST_F(bodies, ForbiddenRequestTrailersDropped) {
  // RFC 9110 §6.5.1: routing and authentication fields never travel as trailers (they would
  // bypass whatever checked the head); an ordinary trailer does.
  start();
  auto res = fetch(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
      "Host: evil.example\r\nAuthorization: Basic eDp5\r\nX-Checksum: abc\r\n\r\n");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  ASSERT_TRUE(up.wait_requests(1));
  auto req = up.requests().at(0);
  EXPECT_EQ(req.body, "hello");
  EXPECT_EQ(req.trailer("x-checksum"), "abc");
  EXPECT_FALSE(req.trailer("host"));
  EXPECT_FALSE(req.trailer("authorization"));
  EXPECT_EQ(req.header("host"), "127.0.0.1:" + std::to_string(up.port()));
}

TEST_F(bodies, ContentLengthRequestTrailerIsAnError) {
  // RFC 9112 §7.1.2 lets a recipient treat a forbidden trailer field as an error; framing
  // fields in a trailer are, here (Beast's parser rejects them): 400, connection closed.
  start();
  client c(port);
  auto res = c.request(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
      "Content-Length: 5\r\nX-Checksum: abc\r\n\r\n");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_TRUE(c.closed());
}

}  // namespace
}  // namespace testnet
