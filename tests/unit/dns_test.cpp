// SPDX-License-Identifier: MIT
// The DNS codec of service discovery (src/upstream/dns.hpp): queries as RFC 1035 lays them
// out, and responses read strictly (our id and question) but tolerant of CNAME chains and
// compressed names.
#include "upstream/dns.hpp"

#include <gtest/gtest.h>

#include <string>

namespace trafficcop::upstream::dns {
namespace {

using namespace std::string_literals;

std::string u16(unsigned v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)}; }

/// A response to make_query(name, type, id) with `answers` (already encoded) and `rcode`.
std::string response_to(std::string_view name, record_type type, std::uint16_t id,
                        std::string answers, unsigned count, unsigned rcode = 0) {
  auto q = make_query(name, type, id);
  std::string r = q.substr(0, 12);
  r[2] = static_cast<char>(0x81);  // QR, RD
  r[3] = static_cast<char>(0x80 | rcode);
  r.replace(6, 2, u16(count));
  return r + q.substr(12) + answers;
}

std::string record(std::string owner, unsigned type, std::string data) {
  return owner + u16(type) + u16(1) + "\0\0\0\x3c"s + u16(static_cast<unsigned>(data.size())) +
         data;
}

TEST(Dns, QueryLayout) {
  auto q = make_query("api.Example.com.", record_type::aaaa, 0x1234);
  EXPECT_EQ(q,
            "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
            "\x03"
            "api\x07"
            "Example\x03"
            "com\x00"
            "\x00\x1c\x00\x01"s);
  EXPECT_EQ(make_query("a..b", record_type::a, 1), "");
  EXPECT_EQ(make_query("", record_type::a, 1), "");
  EXPECT_EQ(make_query(std::string(64, 'x') + ".com", record_type::a, 1), "");
}

TEST(Dns, AddressesThroughACnameChainWithCompressedNames) {
  // api.example.com CNAME lb.example.com (owner: a pointer to the question at offset 12),
  // then two A records owned by the CNAME's target.
  std::string pointer = "\xc0\x0c"s;
  std::string answers = record(pointer, 5, "\x02lb\xc0\x10"s) +
                        record(
                            "\x02lb\x07"
                            "example\x03"
                            "com\x00"s,
                            1, "\x0a\x00\x00\x07"s) +
                        record(pointer, 1, "\x7f\x00\x00\x02"s);
  auto r = parse_response(response_to("api.example.com", record_type::a, 7, answers, 3),
                          "API.example.com", record_type::a, 7);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.rcode, 0);
  EXPECT_EQ(r.addresses, (std::vector<std::string>{"10.0.0.7", "127.0.0.2"}));

  auto v6 = parse_response(response_to("h", record_type::aaaa, 9,
                                       record("\xc0\x0c"s, 28, std::string(15, '\0') + "\x01"), 1),
                           "h", record_type::aaaa, 9);
  ASSERT_TRUE(v6.ok) << v6.error;
  EXPECT_EQ(v6.addresses, (std::vector<std::string>{"::1"}));
}

TEST(Dns, RejectsWhatIsNotTheAnswerToOurQuestion) {
  auto ok = response_to("h", record_type::a, 5, record("\xc0\x0c"s, 1, "\x01\x02\x03\x04"s), 1);
  EXPECT_TRUE(parse_response(ok, "h", record_type::a, 5).ok);
  EXPECT_EQ(parse_response(ok, "h", record_type::a, 6).error, "DNS answer to another query");
  EXPECT_FALSE(parse_response(ok, "other", record_type::a, 5).ok);
  EXPECT_FALSE(parse_response(ok, "h", record_type::aaaa, 5).ok);
  auto query = make_query("h", record_type::a, 5);
  EXPECT_FALSE(parse_response(query, "h", record_type::a, 5).ok) << "a query is not a response";
  // A record cut short, a record longer than the message, an A record of 5 bytes.
  EXPECT_FALSE(parse_response(ok.substr(0, ok.size() - 1), "h", record_type::a, 5).ok);
  auto longer = ok;
  longer[longer.size() - 5] = 0x40;
  EXPECT_FALSE(parse_response(longer, "h", record_type::a, 5).ok);
  auto five =
      response_to("h", record_type::a, 5, record("\xc0\x0c"s, 1, "\x01\x02\x03\x04\x05"s), 1);
  EXPECT_FALSE(parse_response(five, "h", record_type::a, 5).ok);
}

TEST(Dns, NxdomainIsAnAnswer) {
  auto r =
      parse_response(response_to("gone", record_type::a, 3, "", 0, 3), "gone", record_type::a, 3);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.rcode, 3);
  EXPECT_TRUE(r.addresses.empty());
}

}  // namespace
}  // namespace trafficcop::upstream::dns
