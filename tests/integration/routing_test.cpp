// SPDX-License-Identifier: MIT
// The outbound request-target and Host (spec 1-4, 8), as the upstream sees them on the wire.
#include "proxy_fixture.hpp"

namespace testnet {
namespace {

using routing = proxy_test;

// Sends `target` through a proxy whose upstream URL has `base` appended; returns the
// request-target the upstream received.
std::string upstream_target(routing& t, fake_upstream& up, std::string_view target) {
  auto res = client(t.port).request(get(target));
  EXPECT_TRUE(res && res->status == 200);
  EXPECT_TRUE(up.wait_requests(1));
  auto reqs = up.requests();
  return reqs.empty() ? std::string{} : reqs.back().target();
}

TEST_F(routing, Spec1PathJoinWithBase) {
  start({.upstream = up.url("/base")});
  EXPECT_EQ(upstream_target(*this, up, "/dir"), "/base/dir");
}

TEST_F(routing, Spec1PathJoinTrailingSlashBase) {
  start({.upstream = up.url("/base/")});
  EXPECT_EQ(upstream_target(*this, up, "/dir"), "/base/dir");
}

TEST_F(routing, Spec1PathJoinRoot) {
  start({.upstream = up.url("/base")});
  EXPECT_EQ(upstream_target(*this, up, "/"), "/base/");
}

TEST_F(routing, Spec2EscapedSlashPreserved) {
  start({.upstream = up.url("/a%2Fb")});
  EXPECT_EQ(upstream_target(*this, up, "/c%2Fd"), "/a%2Fb/c%2Fd");
}

TEST_F(routing, Spec3RawQueryMerged) {
  start({.upstream = up.url("/?sta=tic")});
  EXPECT_EQ(upstream_target(*this, up, "/p?us=er&x=%2F"), "/p?sta=tic&us=er&x=%2F");
}

TEST_F(routing, Spec4SemicolonQuerySanitised) {
  start();
  EXPECT_EQ(upstream_target(*this, up, "/q?a=1&a=2;b=3"), "/q?a=1");
}

TEST_F(routing, AbsoluteFormTargetIsOriginFormUpstreamAndItsAuthorityIsTheHost) {
  // RFC 9112 §3.2.2: the authority of an absolute-form target wins over the Host field.
  start({.upstream = up.url("/base"), .keep_host = true});
  auto res = client(port).request(
      "GET http://Origin.example:81/dir?q=1 HTTP/1.1\r\nHost: spoofed.example\r\n\r\n");
  ASSERT_TRUE(res && res->status == 200);
  ASSERT_TRUE(up.wait_requests(1));
  auto req = up.requests().at(0);
  EXPECT_EQ(req.target(), "/base/dir?q=1");
  EXPECT_EQ(req.header("host"), "Origin.example:81");
  EXPECT_EQ(req.header("x-forwarded-host"), "Origin.example:81");
}

TEST_F(routing, Spec8HostRewrittenToUpstream) {
  start();
  auto res = fetch(get("/"));
  ASSERT_TRUE(res);
  ASSERT_TRUE(up.wait_requests(1));
  auto req = up.requests().at(0);
  EXPECT_EQ(req.header("host"), "127.0.0.1:" + std::to_string(up.port()));
  EXPECT_EQ(req.count("host"), 1u);
  EXPECT_EQ(req.header("x-forwarded-host"), "client.example");
}

TEST_F(routing, Spec7KeepHostOption) {
  start({.keep_host = true});
  ASSERT_TRUE(fetch(get("/")));
  ASSERT_TRUE(up.wait_requests(1));
  EXPECT_EQ(up.requests().at(0).header("host"), "client.example");
}

TEST_F(routing, RewriteHookAdditionsSurviveConnectionListing) {
  // spec 12: rewrite runs after hop-by-hop stripping, so what it adds is sent even when the
  // client names it in Connection.
  start({.rewrite = [](const trafficcop::request&, trafficcop::outbound_request& out) {
    out.header.set("X-Added", "by-rewrite");
  }});
  ASSERT_TRUE(fetch(get("/", "Connection: X-Added\r\nX-Added: from-client\r\n")));
  ASSERT_TRUE(up.wait_requests(1));
  auto req = up.requests().at(0);
  EXPECT_EQ(req.header("x-added"), "by-rewrite");
  EXPECT_EQ(req.count("x-added"), 1u);
}

// The server normalises the path (RFC 3986 §6.2.2) before any handler sees it, and the proxy
// sends that path upstream: dot segments cannot carry a request past what a route exposed
// (issue 14.2).
TEST_F(routing, DotSegmentsAreResolvedBeforeForwarding) {
  start({.upstream = up.url("/base")});
  EXPECT_EQ(upstream_target(*this, up, "/public/../internal/x"), "/base/internal/x");
  EXPECT_EQ(upstream_target(*this, up, "/public/%2e%2e/internal/x?q=%2e%2e"),
            "/base/internal/x?q=%2e%2e");
  EXPECT_EQ(upstream_target(*this, up, "/public/%2E%2E/internal/x"), "/base/internal/x");
  EXPECT_EQ(upstream_target(*this, up, "/a/./b/../../../c/"), "/base/c/");
  EXPECT_EQ(upstream_target(*this, up, "/%7Euser/%41"), "/base/~user/A");
  EXPECT_EQ(upstream_target(*this, up, "/files/a%2Fb/c%2f.d"), "/base/files/a%2Fb/c%2f.d");
}

TEST_F(routing, EncodedSlashNextToDotsIs400) {
  // "..%2f" is a plain segment to us, "../" to a backend that decodes %2F: ambiguous.
  start();
  for (std::string_view target : {"/public/..%2finternal/x", "/public/%2e%2e%2Finternal",
                                  "/public/x%2f..", "/public/..%5cinternal", "/p/%zz"}) {
    client c(port);
    auto res = c.request(get(target));
    ASSERT_TRUE(res) << target;
    EXPECT_EQ(res->status, 400) << target;
    EXPECT_TRUE(c.closed()) << target;
  }
  EXPECT_EQ(up.connections(), 0u);
}

TEST_F(routing, RawTargetOptionForwardsTheBytesAsReceived) {
  start({.upstream = up.url("/base"), .raw_target = true});
  EXPECT_EQ(upstream_target(*this, up, "/public/%2e%2e/x?q=1"), "/base/public/%2e%2e/x?q=1");
}

}  // namespace
}  // namespace testnet
