// SPDX-License-Identifier: MIT
// parse_upstream_url: reverse_proxy_options::upstream as the library reads it.
#include <gtest/gtest.h>

#include <string_view>

#include "trafficcop/reverse_proxy.hpp"

namespace trafficcop {
namespace {

TEST(ParseUpstreamUrl, SplitsTheParts) {
  auto u = parse_upstream_url("HTTPS://[::1]:8443/base?x=1");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 8443);
  EXPECT_EQ(u->path, "/base");
  EXPECT_EQ(u->query, "x=1");
  u = parse_upstream_url("http://h");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->port, 80);
  u = parse_upstream_url("http://h:/p");  // RFC 3986 §3.2.3: an empty port is the default
  ASSERT_TRUE(u);
  EXPECT_EQ(u->port, 80);
  u = parse_upstream_url("http://my_host.example:000080");  // as the config loader reads it
  ASSERT_TRUE(u);
  EXPECT_EQ(u->port, 80);
}

// Found by upstream_url_fuzz: hosts that are no uri-host were accepted and would only fail at
// the first request's name lookup ("http://[::1\0evil]" would even connect to ::1).
TEST(ParseUpstreamUrl, RefusesHostsThatAreNotUriHosts) {
  using namespace std::string_view_literals;
  for (auto bad : {"http://a b/"sv, "http://x[]/"sv, "http://h00172::/"sv, "http://a:b:80/"sv,
                   "http://[::1\0evil]:80/"sv, "http://a\0b/"sv,
                   "https://\xfe"
                   "E/"sv,
                   "http://[zz]/"sv, "http://:80/"sv, "http://h:0/"sv, "http://h:65536/"sv,
                   "http://u@h/"sv, "ftp://h/"sv}) {
    EXPECT_FALSE(parse_upstream_url(bad)) << bad;
  }
}

}  // namespace
}  // namespace trafficcop

// outbound_request's URL parts (issue 13): `target` is edited in place, path and query apart.
namespace trafficcop {
namespace {

TEST(OutboundUrl, PartsAreReadAndReplacedApart) {
  outbound_request out;
  out.target = "/a/b?x=1&y=2";
  EXPECT_EQ(out.path(), "/a/b");
  EXPECT_EQ(out.raw_query(), "x=1&y=2");
  out.set_path("/c");
  EXPECT_EQ(out.target, "/c?x=1&y=2");
  out.set_raw_query("");
  EXPECT_EQ(out.target, "/c");
  EXPECT_EQ(out.raw_query(), "");
  out.set_raw_query("z=%20");
  EXPECT_EQ(out.target, "/c?z=%20");
}

TEST(OutboundUrl, SetUrlWithoutInboundJoinsTheCurrentTarget) {
  outbound_request out;
  out.target = "/x/?q=2";
  out.address = "10.0.0.9";
  out.set_url(*parse_upstream_url("https://[::1]:8443/base/?p=1"));
  EXPECT_EQ(out.target, "/base/x/?p=1&q=2");
  EXPECT_EQ(out.scheme, "https");
  EXPECT_EQ(out.host, "::1");
  EXPECT_EQ(out.port, 8443);
  EXPECT_EQ(out.address, "");
  EXPECT_EQ(out.header.get("host"), "[::1]:8443");
  out.set_url(*parse_upstream_url("http://up.example"));
  EXPECT_EQ(out.header.get("host"), "up.example");  // the default port is not written
  EXPECT_EQ(out.target, "/base/x/?p=1&q=2");        // "" joined to the path: unchanged
}

}  // namespace
}  // namespace trafficcop
