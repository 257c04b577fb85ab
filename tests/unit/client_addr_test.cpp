// SPDX-License-Identifier: MIT
// trusted_proxies: CIDR parsing and matching, the client behind trusted proxies (nginx's
// real_ip_recursive), and what apply_forwarded then sends upstream.
#include "http/client_addr.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http/rules.hpp"

namespace trafficcop::http {
namespace {

using boost::asio::ip::make_address;

std::vector<ip_network> nets(std::initializer_list<const char*> cidrs) {
  std::vector<ip_network> out;
  for (const char* c : cidrs) {
    auto n = ip_network::parse(c);
    EXPECT_TRUE(n) << c;
    if (n) out.push_back(*n);
  }
  return out;
}

TEST(IpNetwork, ParsesAndMatches) {
  auto n = ip_network::parse("10.0.0.0/8");
  ASSERT_TRUE(n);
  EXPECT_TRUE(n->contains(make_address("10.255.1.2")));
  EXPECT_FALSE(n->contains(make_address("11.0.0.1")));
  EXPECT_TRUE(n->contains(make_address("::ffff:10.1.2.3")));  // a dual-stack socket's view
  EXPECT_FALSE(n->contains(make_address("2001:db8::1")));
  auto v6 = ip_network::parse("2001:db8::/32");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->contains(make_address("2001:db8:ffff::1")));
  EXPECT_FALSE(v6->contains(make_address("2001:db9::1")));
  EXPECT_FALSE(v6->contains(make_address("10.0.0.1")));
  auto one = ip_network::parse("192.0.2.7");  // an address alone is a /32
  ASSERT_TRUE(one);
  EXPECT_EQ(one->prefix, 32u);
  EXPECT_TRUE(one->contains(make_address("192.0.2.7")));
  EXPECT_FALSE(one->contains(make_address("192.0.2.8")));
  auto odd = ip_network::parse("172.16.0.0/12");
  ASSERT_TRUE(odd);
  EXPECT_TRUE(odd->contains(make_address("172.31.255.255")));
  EXPECT_FALSE(odd->contains(make_address("172.32.0.0")));
  auto all = ip_network::parse("0.0.0.0/0");
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->contains(make_address("203.0.113.9")));
  auto mapped = ip_network::parse("::ffff:10.0.0.0/104");
  ASSERT_TRUE(mapped);
  EXPECT_TRUE(mapped->contains(make_address("10.9.9.9")));
}

TEST(IpNetwork, RejectsWhatIsNotANetwork) {
  for (const char* bad :
       {"", "10.0.0.0/", "10.0.0.0/33", "2001:db8::/129", "10.0.0.0/-1", "10.0.0.0/8/8",
        "10.0.0.1/8", "example.com", "10.0.0.0/ 8", "fe80::1%eth0", "10.0.0.0/0x8"})
    EXPECT_FALSE(ip_network::parse(bad)) << bad;
}

TEST(ForwardedElement, Forms) {
  unsigned port = 99;
  EXPECT_EQ(parse_forwarded_element(" 203.0.113.7 ", port), make_address("203.0.113.7"));
  EXPECT_EQ(port, 0u);
  EXPECT_EQ(parse_forwarded_element("203.0.113.7:5000", port), make_address("203.0.113.7"));
  EXPECT_EQ(port, 5000u);
  EXPECT_EQ(parse_forwarded_element("2001:db8::1", port), make_address("2001:db8::1"));
  EXPECT_EQ(parse_forwarded_element("[2001:db8::1]:443", port), make_address("2001:db8::1"));
  EXPECT_EQ(port, 443u);
  EXPECT_EQ(parse_forwarded_element("[2001:db8::1]", port), make_address("2001:db8::1"));
  for (const char* bad : {"unknown", "_hidden", "example.com", "1.2.3.4:", "[1.2.3.4]:80",
                          "1.2.3.4:99999", "[2001:db8::1", ""})
    EXPECT_FALSE(parse_forwarded_element(bad, port)) << bad;
}

struct chain_case {
  const char* name;
  std::vector<const char*> xff;  // X-Forwarded-For lines, in order
  const char* want;
};

TEST(ResolveClient, RealIpRecursive) {
  auto trusted = nets({"10.0.0.0/8", "2001:db8:ffff::/48"});
  const chain_case cases[] = {
      {"no XFF: the peer", {}, "10.0.0.9:4000"},
      {"one hop", {"203.0.113.7"}, "203.0.113.7:0"},
      {"trusted hops skipped", {"203.0.113.7, 10.1.1.1, 10.2.2.2"}, "203.0.113.7:0"},
      {"first untrusted from the right", {"6.6.6.6, 203.0.113.7, 10.1.1.1"}, "203.0.113.7:0"},
      {"lines in order", {"6.6.6.6, 203.0.113.7", "10.1.1.1"}, "203.0.113.7:0"},
      {"all trusted: the leftmost", {"10.3.3.3, 10.1.1.1"}, "10.3.3.3:0"},
      {"garbage stops the walk", {"203.0.113.7, unknown, 10.1.1.1"}, "10.1.1.1:0"},
      {"garbage right away", {"unknown"}, "10.0.0.9:4000"},
      {"a port is kept", {"203.0.113.7:5000"}, "203.0.113.7:5000"},
      {"IPv6", {"2001:db8::7, 2001:db8:ffff::1"}, "[2001:db8::7]:0"},
      {"empty elements skipped", {"203.0.113.7,, 10.1.1.1,"}, "203.0.113.7:0"},
  };
  for (const auto& c : cases) {
    header_map h;
    for (const char* line : c.xff) h.add("X-Forwarded-For", line);
    h.add("Host", "a.example");
    std::string client;
    resolve_client(h, "10.0.0.9:4000", trusted, client);
    EXPECT_EQ(client, c.want) << c.name;
  }
}

// --- what goes upstream ---------------------------------------------------------------------

std::string xff_sent(forwarded_mode mode, std::string_view client, std::string_view peer,
                     bool trusted, const char* inbound_xff) {
  header_map h;
  if (inbound_xff) h.add("X-Forwarded-For", inbound_xff);
  h.add("Forwarded", "for=6.6.6.6");
  apply_forwarded(h, client, "a.example", false, mode, peer, trusted);
  std::string out = std::string(h.get("x-forwarded-for").value_or("-"));
  if (h.contains("forwarded")) out += " +Forwarded";
  return out;
}

TEST(ApplyForwardedTrusted, AppendKeepsOnlyATrustedPeersChain) {
  // Trusted peer: its chain is kept and the peer added (the client is still resolved from it).
  EXPECT_EQ(xff_sent(forwarded_mode::append, "203.0.113.7:0", "10.0.0.9:4000", true,
                     "203.0.113.7, 10.1.1.1"),
            "203.0.113.7, 10.1.1.1, 10.0.0.9 +Forwarded");
  // Untrusted peer: what it claims is replaced by the peer itself.
  EXPECT_EQ(
      xff_sent(forwarded_mode::append, "198.51.100.2:5000", "198.51.100.2:5000", false, "6.6.6.6"),
      "198.51.100.2");
  // No peer given (a request made by hand): client_addr stands for it, as before.
  EXPECT_EQ(xff_sent(forwarded_mode::append, "198.51.100.2:5000", "", true, "6.6.6.6"),
            "6.6.6.6, 198.51.100.2 +Forwarded");
}

TEST(ApplyForwardedTrusted, ReplaceSendsTheResolvedClientAlone) {
  EXPECT_EQ(xff_sent(forwarded_mode::replace, "203.0.113.7:0", "10.0.0.9:4000", true,
                     "203.0.113.7, 10.1.1.1"),
            "203.0.113.7");
  EXPECT_EQ(xff_sent(forwarded_mode::replace, "198.51.100.2:1", "198.51.100.2:1", false, "6.6.6.6"),
            "198.51.100.2");
}

TEST(ApplyForwardedTrusted, OffChangesNothing) {
  EXPECT_EQ(xff_sent(forwarded_mode::off, "203.0.113.7:0", "10.0.0.9:4000", false, "6.6.6.6"),
            "6.6.6.6 +Forwarded");
}

}  // namespace
}  // namespace trafficcop::http
