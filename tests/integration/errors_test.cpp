// SPDX-License-Identifier: MIT
// Upstream failures (spec 44-47, 49, 57).
#include "proxy_fixture.hpp"

namespace testnet {
namespace {

using errors = proxy_test;

/// The upstream reads the request, sends `reply` and closes.
void reply_and_close(fake_upstream& up, std::string reply) {
  up.set_script([reply](upstream_conn& c) {
    if (c.read_request()) c.send(reply);
  });
}

TEST_F(errors, Spec45HangupIs502) {
  up.set_script([](upstream_conn& c) { c.read_request(); });
  start();
  auto res = fetch(get("/"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 502);
}

TEST_F(errors, Spec44ConnectRefusedIs502) {
  start({.upstream = "http://127.0.0.1:" + std::to_string(closed_port())});
  client c(port);
  auto res = c.request(get("/"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 502);
  auto again = c.request(get("/"));  // the client connection survives an upstream failure
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 502);
}

TEST_F(errors, Spec46BadStatusLineIs502) {
  reply_and_close(up, "HTTP/1.1 abc Nope\r\nContent-Length: 0\r\n\r\n");
  start();
  auto res = fetch(get("/"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 502);
}

TEST_F(errors, Spec46HeaderWithoutColonIs502) {
  reply_and_close(up, "HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 2\r\n\r\nhi");
  start();
  auto res = fetch(get("/"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 502);
  EXPECT_EQ(res->body.find("hi"), std::string::npos);
}

TEST_F(errors, Spec46AmbiguousFramingIs502) {
  reply_and_close(up,
                  "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "3\r\nabc\r\n0\r\n\r\n");
  start();
  auto res = fetch(get("/"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 502);
}

TEST_F(errors, Spec46ConflictingContentLengthIs502) {
  reply_and_close(up, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd");
  start();
  auto res = fetch(get("/"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 502);
}

TEST_F(errors, Spec47ShortContentLengthBodyAborts) {
  reply_and_close(up, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-this");
  start();
  client c(port);
  // spec 47: the head may still have been buffered, then the client gets no response at all;
  // either way it must not see a complete response, and the connection is closed.
  auto res = c.request(get("/"));
  if (res) {
    EXPECT_EQ(res->status, 200);
    EXPECT_FALSE(res->complete);
  }
  EXPECT_TRUE(res || c.rd.buffered().empty());
}

TEST_F(errors, Spec47ChunkedCutShortHasNoLastChunk) {
  reply_and_close(up, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n");
  start();
  client c(port);
  auto res = c.request(get("/"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_FALSE(res->complete);
  EXPECT_EQ(res->raw.find("\r\n0\r\n"), std::string::npos);
}

TEST_F(errors, Spec49ClientGoneClosesUpstream) {
  gate got_request;
  gate upstream_saw_eof;
  up.set_script([&](upstream_conn& c) {
    if (!c.read_request()) return;
    got_request.open();
    if (c.peer_closed()) upstream_saw_eof.open();  // blocking read with the socket timeout
  });
  start();
  {
    client c(port);
    ASSERT_TRUE(c.send(get("/slow")));
    ASSERT_TRUE(got_request.wait());
  }  // the client hangs up while the upstream has not answered
  EXPECT_TRUE(upstream_saw_eof.wait());
  EXPECT_TRUE(eventually([&] { return srv->open_connections() == 0; }));
}

TEST_F(errors, Spec49ClientGoneMidUpload) {
  gate got_head;
  gate upstream_saw_eof;
  up.set_script([&](upstream_conn& c) {
    if (!c.rd().until("\r\n\r\n")) return;
    got_head.open();
    if (c.rd().to_eof()) upstream_saw_eof.open();
  });
  start();
  {
    client c(port);
    ASSERT_TRUE(c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\npartial"));
    ASSERT_TRUE(got_head.wait());
  }
  EXPECT_TRUE(upstream_saw_eof.wait());
}

TEST_F(errors, Spec57ResponseTimeoutIs504) {
  gate done;
  up.set_script([&](upstream_conn& c) {
    if (c.read_request()) done.wait();
  });
  start({.response_timeout = std::chrono::milliseconds(200)});
  auto res = fetch(get("/"));
  done.open();
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 504);
}

}  // namespace
}  // namespace testnet
