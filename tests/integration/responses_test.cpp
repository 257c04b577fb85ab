// SPDX-License-Identifier: MIT
// Responses relayed to the client (spec 32, 34, 36-39, 41, 55).
#include "proxy_fixture.hpp"

namespace testnet {
namespace {

using responses = proxy_test;

TEST_F(responses, Spec32NotFoundPassesThrough) {
  up.set_responder([](const message&) { return response(404, "nope", "X-Up: 1\r\n"); });
  start();
  auto res = fetch(get("/missing"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
  EXPECT_EQ(res->body, "nope");
  EXPECT_EQ(res->header("x-up"), "1");
}

TEST_F(responses, Spec34BackendCloseDoesNotCloseClient) {
  up.set_responder([](const message&) { return response(200, "x", "Connection: close\r\n"); });
  start();
  client c(port);
  for (int i = 0; i < 3; ++i) {
    auto res = c.request(get("/"));
    ASSERT_TRUE(res) << i;
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->body, "x");
    EXPECT_EQ(res->count("connection"), 0u) << "backend's close relayed";
  }
  EXPECT_EQ(up.connections(), 3u);
}

TEST_F(responses, Spec55UpstreamConnectionReused) {
  start();
  client c(port);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c.request(get("/")));
  client c2(port);  // another client connection: still the same pooled upstream connection
  ASSERT_TRUE(c2.request(get("/")));
  EXPECT_EQ(up.connections(), 1u);
  EXPECT_EQ(up.requests().size(), 4u);
}

TEST_F(responses, Spec55PipelinedAnsweredInOrder) {
  up.set_responder([](const message& m) { return response(200, m.target()); });
  start();
  client c(port);
  ASSERT_TRUE(c.send(get("/1") + get("/2") + get("/3")));
  for (auto want : {"/1", "/2", "/3"}) {
    auto res = c.response();
    ASSERT_TRUE(res);
    EXPECT_EQ(res->body, want);
  }
}

TEST_F(responses, Spec55Http10Client) {
  start();
  client c(port);
  auto res = c.request("GET / HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok");
  EXPECT_TRUE(c.closed());
}

TEST_F(responses, Spec55Http10KeepAlive) {
  start();
  client c(port);
  for (int i = 0; i < 2; ++i) {
    auto res = c.request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ASSERT_TRUE(res) << i;
    EXPECT_EQ(res->body, "ok");
  }
}

TEST_F(responses, Spec55Http10ChunkedUpstreamBecomesCloseDelimited) {
  up.set_responder([](const message&) {
    return std::string(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
  });
  start();
  client c(port);
  auto res = c.request("GET / HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(res);
  EXPECT_FALSE(res->chunked);
  EXPECT_EQ(res->body, "abc");
  EXPECT_TRUE(res->complete);
}

TEST_F(responses, Spec36And37TrailersRelayed) {
  up.set_responder([](const message&) {
    return std::string(
        "HTTP/1.1 200 OK\r\nTrailer: X-Declared\r\nTransfer-Encoding: chunked\r\n\r\n"
        "4\r\nbody\r\n0\r\nX-Declared: d\r\nX-Undeclared: u\r\n\r\n");
  });
  start();
  client c(port);
  auto res = c.request(get("/", "TE: trailers\r\n"));
  ASSERT_TRUE(res);
  EXPECT_TRUE(res->chunked);
  EXPECT_EQ(res->body, "body");
  EXPECT_EQ(res->header("trailer"), "X-Declared");
  EXPECT_EQ(res->trailer("x-declared"), "d");
  EXPECT_EQ(res->trailer("x-undeclared"), "u");
  ASSERT_TRUE(c.request(get("/")));  // still keep-alive
}

TEST_F(responses, Spec38EarlyHintsForwarded) {
  up.set_responder([](const message&) {
    return "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n" +
           response(200, "ok", "Link: </s.css>; rel=preload\r\n");
  });
  start();
  client c(port);
  ASSERT_TRUE(c.send(get("/")));
  auto hint = c.response();
  ASSERT_TRUE(hint);
  EXPECT_EQ(hint->status, 103);
  EXPECT_EQ(hint->header("link"), "</s.css>; rel=preload");
  auto res = c.response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok");
}

TEST_F(responses, Spec39HeadKeepsContentLength) {
  up.set_responder([](const message& m) {
    if (m.method() == "HEAD") return std::string("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
    return response(200, "after-head");
  });
  start();
  client c(port);
  auto res = c.request("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", /*head=*/true);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->header("content-length"), "1234");
  auto next = c.request(get("/"));  // no body bytes were sent after the HEAD head
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200);
  EXPECT_EQ(next->body, "after-head");
}

TEST_F(responses, Spec39NoContentAndNotModified) {
  up.set_responder([](const message& m) {
    if (m.target() == "/204")
      return std::string("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n");
    return std::string("HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\nETag: \"e\"\r\n\r\n");
  });
  start();
  client c(port);
  auto r204 = c.request(get("/204"));
  ASSERT_TRUE(r204);
  EXPECT_EQ(r204->status, 204);
  EXPECT_EQ(r204->count("content-length"), 0u);
  EXPECT_EQ(r204->count("transfer-encoding"), 0u);
  auto r304 = c.request(get("/304"));
  ASSERT_TRUE(r304);
  EXPECT_EQ(r304->status, 304);
  EXPECT_EQ(r304->header("etag"), "\"e\"");
  auto again = c.request(get("/204"));  // the connection is still in step
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 204);
}

TEST_F(responses, Spec41EventStreamFlushedPerEvent) {
  gate release;
  up.set_script([&](upstream_conn& c) {
    if (!c.read_request()) return;
    c.send(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        "Content-Length: 22\r\n\r\ndata: one\n\n");
    release.wait();
    c.send("data: two\n\n");
  });
  start();
  client c(port);
  ASSERT_TRUE(c.send(get("/events")));
  auto head = c.rd.until("\r\n\r\n");
  ASSERT_TRUE(head);
  EXPECT_EQ(c.rd.until("\n\n"), "data: one\n\n");  // while the upstream is still blocked
  release.open();
  EXPECT_EQ(c.rd.until("\n\n"), "data: two\n\n");
}

TEST_F(responses, Spec41UnknownLengthFlushed) {
  gate release;
  up.set_script([&](upstream_conn& c) {
    if (!c.read_request()) return;
    c.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nfirst\n\r\n");
    release.wait();
    c.send("0\r\n\r\n");
  });
  start();
  client c(port);
  ASSERT_TRUE(c.send(get("/")));
  ASSERT_TRUE(c.rd.until("\r\n\r\n"));
  EXPECT_TRUE(c.rd.until("first\n"));
  release.open();
}

}  // namespace
}  // namespace testnet
