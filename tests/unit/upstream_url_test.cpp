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
