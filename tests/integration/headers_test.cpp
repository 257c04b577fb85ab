// SPDX-License-Identifier: MIT
// Request and response header handling (spec 9-11, 13, 15, 17, 18, 33, 56).
#include "proxy_fixture.hpp"

namespace testnet {
namespace {

using headers = proxy_test;

/// Sends `raw` on a fresh connection; returns what the upstream received.
message via_proxy(headers& t, std::string_view raw) {
  auto res = t.fetch(raw);
  EXPECT_TRUE(res && res->status == 200);
  EXPECT_TRUE(t.up.wait_requests(1));
  auto reqs = t.up.requests();
  return reqs.empty() ? message{} : reqs.back();
}

TEST_F(headers, Spec9And10HopByHopStripped) {
  start();
  auto req = via_proxy(*this, get("/",
                                  "Connection: , X-Hop\r\n"
                                  "Connection: keep-alive, x-other\r\n"
                                  "X-Hop: 1\r\nX-Other: 2\r\nX-End: 3\r\n"
                                  "Proxy-Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
                                  "Proxy-Authorization: secret\r\nUpgrade: foo\r\n"
                                  "HTTP2-Settings: AAA\r\nTrailer: X-T\r\n"));
  for (auto name :
       {"connection", "x-hop", "x-other", "proxy-connection", "keep-alive", "proxy-authorization",
        "upgrade", "http2-settings", "trailer", "transfer-encoding"})
    EXPECT_EQ(req.count(name), 0u) << name;
  EXPECT_EQ(req.header("x-end"), "3");
}

TEST_F(headers, Spec11TeTrailersKeptAlone) {
  start();
  auto req =
      via_proxy(*this, get("/", "Connection: close, TE\r\nTE: foo\r\nTE: bar, trailers\r\n"));
  EXPECT_EQ(req.count("te"), 1u);
  EXPECT_EQ(req.header("te"), "trailers");
  EXPECT_NE(req.raw.find("\r\nTe: trailers\r\n"), std::string::npos) << req.raw;
}

TEST_F(headers, Spec11OtherTeDropped) {
  start();
  auto req = via_proxy(*this, get("/", "TE: gzip\r\n"));
  EXPECT_EQ(req.count("te"), 0u);
}

TEST_F(headers, Spec13And56ForwardedAppendMode) {
  start();
  auto req = via_proxy(*this, get("/",
                                  "X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-For: 10.0.0.1\r\n"
                                  "X-Forwarded-Host: evil\r\nX-Forwarded-Proto: https\r\n"));
  EXPECT_EQ(req.count("x-forwarded-for"), 1u);
  EXPECT_EQ(req.header("x-forwarded-for"), "203.0.113.7, 10.0.0.1, 127.0.0.1");
  EXPECT_EQ(req.header("x-forwarded-host"), "client.example");
  EXPECT_EQ(req.header("x-forwarded-proto"), "http");
}

TEST_F(headers, Spec13NoInboundXff) {
  start();
  auto req = via_proxy(*this, get("/"));
  EXPECT_EQ(req.header("x-forwarded-for"), "127.0.0.1");
}

TEST_F(headers, Spec15ReplaceModeDropsSpoofed) {
  start({.forwarded = trafficcop::forwarded_mode::replace});
  auto req = via_proxy(*this, get("/",
                                  "X-Forwarded-For: 203.0.113.7\r\nForwarded: for=1.2.3.4\r\n"
                                  "X-Forwarded-Host: evil\r\n"));
  EXPECT_EQ(req.header("x-forwarded-for"), "127.0.0.1");
  EXPECT_EQ(req.count("forwarded"), 0u);
  EXPECT_EQ(req.header("x-forwarded-host"), "client.example");
}

TEST_F(headers, Spec17NoInventedUserAgent) {
  start();
  auto req = via_proxy(*this, get("/"));
  EXPECT_EQ(req.count("user-agent"), 0u);
}

TEST_F(headers, Spec17UserAgentForwarded) {
  start();
  auto req = via_proxy(*this, get("/", "User-Agent: curl/8\r\n"));
  EXPECT_EQ(req.header("user-agent"), "curl/8");
}

TEST_F(headers, Spec18RepeatedRequestHeadersKept) {
  start();
  auto req = via_proxy(*this, get("/", "X-Multi: a\r\nX-Multi: b\r\nCookie: a=1; b=2\r\n"));
  EXPECT_NE(req.raw.find("X-Multi: a\r\nX-Multi: b\r\n"), std::string::npos) << req.raw;
  EXPECT_EQ(req.header("cookie"), "a=1; b=2");
}

TEST_F(headers, Spec18SetCookieLinesStaySeparate) {
  up.set_responder([](const message&) {
    return response(200, "ok", "Set-Cookie: a=1\r\nSet-Cookie: b=2\r\nTrailers: x\r\n");
  });
  start();
  auto res = fetch(get("/"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->count("set-cookie"), 2u);
  EXPECT_NE(res->raw.find("Set-Cookie: a=1\r\nSet-Cookie: b=2\r\n"), std::string::npos);
  EXPECT_EQ(res->header("trailers"), "x");
}

TEST_F(headers, Spec33ResponseHopByHopStripped) {
  up.set_responder([](const message&) {
    return response(200, "ok",
                    "Connection: x-hOP, ClOsE-ish\r\nConnection: X-Two\r\nX-Hop: 1\r\nX-Two: 2\r\n"
                    "Keep-Alive: timeout=1\r\nProxy-Authenticate: Basic\r\nUpgrade: x\r\n"
                    "X-End: ok\r\n");
  });
  start();
  auto res = fetch(get("/"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  for (auto name : {"x-hop", "x-two", "keep-alive", "proxy-authenticate", "upgrade"})
    EXPECT_EQ(res->count(name), 0u) << name;
  EXPECT_EQ(res->header("x-end"), "ok");
  EXPECT_EQ(res->body, "ok");
}

TEST_F(headers, ModifyResponseEditsHeader) {
  start({.modify_response = [](trafficcop::upstream_response& r, const trafficcop::request&) {
    r.header.set("X-Modified", "yes");
    return trafficcop::error_code{};
  }});
  auto res = fetch(get("/"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->header("x-modified"), "yes");
}

TEST_F(headers, ModifyResponseErrorGives502) {
  start({.modify_response = [](trafficcop::upstream_response&, const trafficcop::request&) {
    return make_error_code(boost::system::errc::permission_denied);
  }});
  auto res = fetch(get("/"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 502);
  EXPECT_EQ(res->body.find("ok"), std::string::npos);
}

TEST_F(headers, ErrorHandlerCustomStatus) {
  trafficcop::reverse_proxy_options o;
  o.upstream = "http://127.0.0.1:" + std::to_string(closed_port());
  o.error_handler = [](trafficcop::response_writer& w, const trafficcop::request&,
                       const trafficcop::proxy_error&) -> boost::asio::awaitable<void> {
    w.header().set("X-Custom", "1");
    co_await trafficcop::write_text(w, 418, "teapot\n");
  };
  start(std::move(o));
  auto res = fetch(get("/"));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 418);
  EXPECT_EQ(res->header("x-custom"), "1");
  EXPECT_EQ(res->body, "teapot\n");
}

}  // namespace
}  // namespace testnet
