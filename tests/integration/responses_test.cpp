// SPDX-License-Identifier: MIT
// Responses relayed to the client (spec 32, 34, 36-39, 41, 55).
#include <memory>

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
  gate& release = new_gate();
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
  gate& release = new_gate();
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

TEST_F(responses, Spec39HeadAnswerWithStrayBodyIsNotRelayedNorPooled) {
  // A broken upstream sends a body after the head of its HEAD answer. The client gets the head
  // alone; the stray bytes must not become the next request's response, so that upstream
  // connection is closed, not pooled, and the next request goes to a new one.
  up.set_responder([](const message& m) {
    if (m.method() == "HEAD")
      return std::string("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
    return response(200, "next:" + m.target());
  });
  start();
  client c(port);
  auto res = c.request("HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n", /*head=*/true);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->header("content-length"), "5");
  auto next = c.request(get("/n"));  // "hello" would be read first if it had been relayed
  ASSERT_TRUE(next);
  EXPECT_EQ(next->status, 200);
  EXPECT_EQ(next->body, "next:/n");
  auto other = fetch(get("/o"));  // another client connection: the pool holds no stray bytes
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 200);
  EXPECT_EQ(other->body, "next:/o");
  EXPECT_EQ(up.connections(), 2u);
  EXPECT_EQ(up.requests().size(), 3u);
  EXPECT_TRUE(up.wait_finished(1)) << "the dirty connection was kept open";
}

TEST_F(responses, Spec38MoreThanFiveInformationalResponsesIs502) {
  up.set_script([](upstream_conn& c) {
    if (!c.read_request()) return;
    std::string out;
    for (int i = 0; i < 7; ++i)
      out += "HTTP/1.1 103 Early Hints\r\nLink: </" + std::to_string(i) + ">\r\n\r\n";
    c.send(out + response(200, "final"));
  });
  start();
  client c(port);
  ASSERT_TRUE(c.send(get("/")));
  int hints = 0;
  std::optional<message> res;
  while ((res = c.response()) && res->status == 103 && hints < 10) ++hints;
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 502);
  EXPECT_LE(hints, 5);
}

TEST_F(responses, Spec36ForbiddenResponseTrailersDropped) {
  // RFC 9110 §6.5.1: framing, routing, authentication and cookie fields never travel as
  // trailers; an ordinary one does.
  up.set_responder([](const message&) {
    return std::string(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n"
        "Host: evil.example\r\nAuthorization: Basic eDp5\r\nSet-Cookie: a=b\r\n"
        "X-Checksum: abc\r\n\r\n");
  });
  start();
  client c(port);
  auto res = c.request(get("/", "TE: trailers\r\n"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_TRUE(res->complete);
  EXPECT_EQ(res->body, "body");
  EXPECT_EQ(res->trailer("x-checksum"), "abc");
  for (auto name : {"host", "authorization", "set-cookie"})
    EXPECT_FALSE(res->trailer(name)) << name;
}

TEST_F(responses, Spec36ContentLengthResponseTrailerAbortsTheResponse) {
  // A framing field in the trailer section is an error (RFC 9112 §7.1.2 allows it); after the
  // head the only way to say so is to cut the connection (spec 47), never a clean end.
  up.set_responder([](const message&) {
    return std::string(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbody\r\n0\r\n"
        "Content-Length: 4\r\nX-Checksum: abc\r\n\r\n");
  });
  start({.flush_interval = std::chrono::milliseconds(-1)});
  client c(port);
  auto res = c.request(get("/", "TE: trailers\r\n"));
  if (res) {
    EXPECT_EQ(res->status, 200);
    EXPECT_FALSE(res->complete) << "a broken trailer section ended as a clean response";
  }
  EXPECT_TRUE(c.closed());
}

/// The upstream sends a Content-Length: 10 head with "hello", opens `sent`, and sends "world"
/// once `release` opens.
void hello_then_wait(fake_upstream& up, std::shared_ptr<gate> sent, std::shared_ptr<gate> release) {
  up.set_script([sent, release](upstream_conn& c) {
    if (!c.read_request()) return;
    if (!c.send("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello")) return;
    sent->open();
    if (release->wait()) c.send("world");
  });
}

TEST_F(responses, Spec41PositiveFlushIntervalFlushesWhenTheUpstreamPauses) {
  auto sent = std::make_shared<gate>(), release = std::make_shared<gate>();
  hello_then_wait(up, sent, release);
  start({.flush_interval = std::chrono::milliseconds(100)});
  client c(port);
  ASSERT_TRUE(c.send(get("/")));
  auto head = c.rd.until("\r\n\r\n");
  EXPECT_TRUE(head);
  EXPECT_EQ(c.rd.exact(5), "hello");  // while the upstream is still blocked: the short read
  release->open();
  EXPECT_EQ(c.rd.exact(5), "world");
}

TEST_F(responses, Spec41ZeroFlushIntervalHoldsTheBodyUntilTheEnd) {
  auto sent = std::make_shared<gate>(), release = std::make_shared<gate>();
  hello_then_wait(up, sent, release);
  start({.flush_interval = std::chrono::milliseconds(0)});
  client c(port, std::chrono::milliseconds(300));
  ASSERT_TRUE(c.send(get("/")));
  ASSERT_TRUE(sent->wait());
  // A bounded negative check: with the upstream paused, nothing reaches the client in 300 ms.
  EXPECT_FALSE(c.rd.until("\r\n\r\n"));
  EXPECT_EQ(c.rd.buffered(), "");
  release->open();
  set_recv_timeout(c.fd.get(), default_timeout);
  auto res = c.response();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "helloworld");
}

TEST_F(responses, Spec51IdenticalContentLengthsRelayedAsOne) {
  up.set_responder([](const message&) {
    return std::string("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello");
  });
  start();
  client c(port);
  auto res = c.request(get("/"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->count("content-length"), 1u) << res->raw;
  EXPECT_EQ(res->header("content-length"), "5");
  EXPECT_EQ(res->body, "hello");
  auto next = c.request(get("/"));  // still in step
  ASSERT_TRUE(next);
  EXPECT_EQ(next->body, "hello");
}

}  // namespace
}  // namespace testnet
