// SPDX-License-Identifier: MIT
// The PROXY protocol parser and writers (src/http/proxy_protocol.hpp), byte by byte: v1
// TCP4/TCP6/UNKNOWN, v2 PROXY/LOCAL, TLVs, malformed and oversized input, and every prefix of
// a valid header asking for more.
#include "http/proxy_protocol.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace trafficcop::proxy_protocol {
namespace {

using asio::ip::make_address;
using asio::ip::tcp;

tcp::endpoint ep(const char* ip, unsigned short port) { return {make_address(ip), port}; }

std::string bin(std::initializer_list<int> bytes) {
  std::string s;
  for (int b : bytes) s += static_cast<char>(b);
  return s;
}

/// Every proper prefix of a valid header is `need_more`, never `invalid`.
void expect_prefixes_need_more(std::string_view whole) {
  for (std::size_t n = 0; n < whole.size(); ++n)
    EXPECT_EQ(parse(whole.substr(0, n)).st, status::need_more) << "prefix of " << n << " bytes";
}

// --- v1 -------------------------------------------------------------------------------------

TEST(ProxyProtocolV1, Tcp4) {
  std::string in = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n";
  auto r = parse(in);
  ASSERT_EQ(r.st, status::done) << r.error;
  EXPECT_EQ(r.h.version, 1);
  EXPECT_TRUE(r.h.has_addresses);
  EXPECT_EQ(r.h.source, ep("192.0.2.7", 56324));
  EXPECT_EQ(r.h.destination, ep("198.51.100.1", 443));
  EXPECT_EQ(in.substr(r.h.size), "GET / HTTP/1.1\r\n");  // the stream after it is untouched
}

TEST(ProxyProtocolV1, Tcp6) {
  auto r = parse("PROXY TCP6 2001:db8::7 2001:db8::1 65535 0\r\n");
  ASSERT_EQ(r.st, status::done) << r.error;
  EXPECT_EQ(r.h.source, ep("2001:db8::7", 65535));
  EXPECT_EQ(r.h.destination, ep("2001:db8::1", 0));
}

TEST(ProxyProtocolV1, UnknownUsesTheConnectionsAddresses) {
  for (std::string_view in :
       {"PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"}) {
    auto r = parse(in);
    ASSERT_EQ(r.st, status::done) << in;
    EXPECT_FALSE(r.h.has_addresses);
    EXPECT_EQ(r.h.size, in.size());
  }
}

TEST(ProxyProtocolV1, LongestHeaderIs107Bytes) {
  std::string in =
      "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  ASSERT_EQ(in.size(), 107u);
  EXPECT_EQ(parse(in).st, status::done);
  std::string longer = in.substr(0, 14) + "x" + in.substr(14);
  EXPECT_EQ(parse(longer).st, status::invalid);
  // No CRLF yet and already 107 bytes: it can never become a header.
  EXPECT_EQ(parse(std::string("PROXY TCP4 ") + std::string(200, '1')).st, status::invalid);
}

TEST(ProxyProtocolV1, PrefixesNeedMore) {
  expect_prefixes_need_more("PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n");
  expect_prefixes_need_more("PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n");
}

TEST(ProxyProtocolV1, Malformed) {
  const char* cases[] = {
      "GET / HTTP/1.1\r\n\r\n",                        // no header at all
      "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",            // case matters
      "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",           // double space
      "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",            // unknown protocol
      "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",              // a field missing
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",          // a field too many
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",           // trailing space
      "PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",        // v6 address under TCP4
      "PROXY TCP6 1.2.3.4 2001:db8::1 1 2\r\n",        // v4 address under TCP6
      "PROXY TCP6 fe80::1%eth0 fe80::2 1 2\r\n",       // scope ids are not addresses
      "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",              // short address
      "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",        // port out of range
      "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",           // sign
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",              // LF without CR
      "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",             // CR without LF
      "PROXY TCP4 1.2.3.4\x01 5.6.7.8 1 2\r\n",        // control byte
      "PROXY TCP4 1.2.3.4\xc3\xa9 5.6.7.8 1 2\r\n",    // non-ASCII
      "PROXY \r\n",                                    // nothing
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  // a TLS ClientHello
  };
  for (const char* c : cases) {
    auto r = parse(c);
    EXPECT_EQ(r.st, status::invalid) << c;
    EXPECT_FALSE(r.error.empty()) << c;
  }
}

TEST(ProxyProtocolV1, GarbageIsRejectedFromItsFirstByte) {
  // A client that speaks HTTP (or TLS) to a proxy_protocol listener is told at once, not after
  // the timeout.
  EXPECT_EQ(parse("G").st, status::invalid);
  EXPECT_EQ(parse("PRX").st, status::invalid);
  EXPECT_EQ(parse("\x16").st, status::invalid);
}

// --- v2 -------------------------------------------------------------------------------------

std::string v2_tcp4(std::string tlvs = {}, int ver_cmd = 0x21, int fam = 0x11) {
  std::string s(v2_signature);
  std::size_t len = 12 + tlvs.size();
  s += bin({ver_cmd, fam, int(len >> 8), int(len & 0xff)});
  s += bin({192, 0, 2, 7, 198, 51, 100, 1, 0xdc, 0x04, 0x01, 0xbb});  // ports 56324, 443
  return s + tlvs;
}

TEST(ProxyProtocolV2, ProxyTcp4) {
  std::string in = v2_tcp4() + "GET";
  auto r = parse(in);
  ASSERT_EQ(r.st, status::done) << r.error;
  EXPECT_EQ(r.h.version, 2);
  EXPECT_TRUE(r.h.has_addresses);
  EXPECT_EQ(r.h.source, ep("192.0.2.7", 56324));
  EXPECT_EQ(r.h.destination, ep("198.51.100.1", 443));
  EXPECT_EQ(r.h.size, 28u);
  EXPECT_EQ(in.substr(r.h.size), "GET");
}

TEST(ProxyProtocolV2, ProxyTcp6) {
  std::string in(v2_signature);
  in += bin({0x21, 0x21, 0, 36});
  auto src = make_address("2001:db8::7").to_v6().to_bytes();
  auto dst = make_address("2001:db8::1").to_v6().to_bytes();
  in.append(src.begin(), src.end());
  in.append(dst.begin(), dst.end());
  in += bin({0, 80, 0x1f, 0x90});
  auto r = parse(in);
  ASSERT_EQ(r.st, status::done) << r.error;
  EXPECT_EQ(r.h.source, ep("2001:db8::7", 80));
  EXPECT_EQ(r.h.destination, ep("2001:db8::1", 8080));
}

TEST(ProxyProtocolV2, TlvsAreSkipped) {
  // PP2_TYPE_ALPN "h2", PP2_TYPE_AUTHORITY "example.com", an AWS VPC endpoint id, a NOOP.
  std::string tlvs = bin({0x01, 0, 2}) + "h2" + bin({0x02, 0, 11}) + "example.com" +
                     bin({0xea, 0, 23, 0x01}) + "vpce-08d2bf15fac5001c9" + bin({0x04, 0, 0});
  auto in = v2_tcp4(tlvs) + "rest";
  auto r = parse(in);
  ASSERT_EQ(r.st, status::done) << r.error;
  EXPECT_EQ(r.h.source, ep("192.0.2.7", 56324));
  EXPECT_EQ(in.substr(r.h.size), "rest");
  expect_prefixes_need_more(v2_tcp4(tlvs));
}

TEST(ProxyProtocolV2, MalformedTlvs) {
  EXPECT_EQ(parse(v2_tcp4(bin({0x01, 0}))).st, status::invalid);          // truncated TLV head
  EXPECT_EQ(parse(v2_tcp4(bin({0x01, 0, 5, 'h'}))).st, status::invalid);  // value overruns
}

TEST(ProxyProtocolV2, LocalUsesTheConnectionsAddresses) {
  std::string local(v2_signature);
  local += bin({0x20, 0x00, 0, 0});
  auto r = parse(local + "GET");
  ASSERT_EQ(r.st, status::done) << r.error;
  EXPECT_FALSE(r.h.has_addresses);
  EXPECT_EQ(r.h.size, 16u);
  // LOCAL with an address block (some senders fill it in): skipped as well.
  r = parse(v2_tcp4({}, 0x20, 0x11));
  ASSERT_EQ(r.st, status::done);
  EXPECT_FALSE(r.h.has_addresses);
  EXPECT_EQ(r.h.size, 28u);
}

TEST(ProxyProtocolV2, OtherFamiliesAreAcceptedWithoutAddresses) {
  std::string unspec(v2_signature);
  unspec += bin({0x21, 0x00, 0, 0});
  EXPECT_EQ(parse(unspec).st, status::done);
  EXPECT_FALSE(parse(unspec).h.has_addresses);
  auto udp = parse(v2_tcp4({}, 0x21, 0x12));  // UDP over IPv4
  ASSERT_EQ(udp.st, status::done);
  EXPECT_FALSE(udp.h.has_addresses);
  std::string unix_stream(v2_signature);
  unix_stream += bin({0x21, 0x31, 0, 216}) + std::string(216, '\0');
  auto u = parse(unix_stream);
  ASSERT_EQ(u.st, status::done) << u.error;
  EXPECT_FALSE(u.h.has_addresses);
}

TEST(ProxyProtocolV2, Malformed) {
  EXPECT_EQ(parse(v2_tcp4({}, 0x11)).st, status::invalid);        // version 1 in binary
  EXPECT_EQ(parse(v2_tcp4({}, 0x22)).st, status::invalid);        // command 2
  EXPECT_EQ(parse(v2_tcp4({}, 0x21, 0x41)).st, status::invalid);  // family 4
  EXPECT_EQ(parse(v2_tcp4({}, 0x21, 0x13)).st, status::invalid);  // protocol 3
  std::string short_block(v2_signature);
  short_block += bin({0x21, 0x11, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8});  // 8 < 12 bytes of TCP4
  EXPECT_EQ(parse(short_block).st, status::invalid);
  std::string wrong_sig(v2_signature);
  wrong_sig[11] = 'X';
  EXPECT_EQ(parse(wrong_sig).st, status::invalid);
  EXPECT_EQ(parse(std::string(v2_signature.substr(0, 5)) + "x").st, status::invalid);
  // The version byte is judged as soon as it arrives.
  EXPECT_EQ(parse(std::string(v2_signature) + bin({0x13})).st, status::invalid);
}

TEST(ProxyProtocolV2, OversizedIsRejectedBeforeItArrives) {
  std::string big(v2_signature);
  big += bin({0x21, 0x11, 0xff, 0xff});  // 64 KiB announced
  auto r = parse(big);
  EXPECT_EQ(r.st, status::invalid);
  // At the limit exactly: accepted.
  std::string tlv_value(max_header_bytes - 16 - 12 - 3, 'x');
  std::size_t n = tlv_value.size();
  auto in = v2_tcp4(bin({0xe0, int(n >> 8), int(n & 0xff)}) + tlv_value);
  ASSERT_EQ(in.size(), max_header_bytes);
  EXPECT_EQ(parse(in).st, status::done);
  EXPECT_EQ(parse(in + "x", max_header_bytes).st, status::done);
  EXPECT_EQ(parse(in, max_header_bytes - 1).st, status::invalid);
}

TEST(ProxyProtocolV2, PrefixesNeedMore) { expect_prefixes_need_more(v2_tcp4()); }

// --- writers --------------------------------------------------------------------------------

TEST(ProxyProtocolWrite, V1RoundTrips) {
  EXPECT_EQ(make_v1(ep("192.0.2.7", 56324), ep("198.51.100.1", 443)),
            "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n");
  EXPECT_EQ(make_v1(ep("2001:db8::7", 1), ep("2001:db8::1", 2)),
            "PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n");
  // Mixed families go as IPv6, the IPv4 one mapped.
  EXPECT_EQ(make_v1(ep("192.0.2.7", 1), ep("2001:db8::1", 2)),
            "PROXY TCP6 ::ffff:192.0.2.7 2001:db8::1 1 2\r\n");
  EXPECT_EQ(make_v1(std::nullopt, ep("2001:db8::1", 2)), "PROXY UNKNOWN\r\n");
  auto r = parse(make_v1(ep("10.1.2.3", 9), ep("10.0.0.1", 80)));
  ASSERT_EQ(r.st, status::done);
  EXPECT_EQ(r.h.source, ep("10.1.2.3", 9));
}

TEST(ProxyProtocolWrite, V2RoundTrips) {
  for (auto [s, d] : {std::pair{ep("192.0.2.7", 56324), ep("198.51.100.1", 443)},
                      std::pair{ep("2001:db8::7", 1), ep("2001:db8::1", 2)}}) {
    auto bytes = make_v2(s, d);
    auto r = parse(bytes);
    ASSERT_EQ(r.st, status::done) << r.error;
    EXPECT_EQ(r.h.size, bytes.size());
    EXPECT_EQ(r.h.source, s);
    EXPECT_EQ(r.h.destination, d);
  }
  EXPECT_EQ(make_v2(ep("192.0.2.7", 1), ep("198.51.100.1", 2)),
            v2_tcp4().substr(0, 16) + bin({192, 0, 2, 7, 198, 51, 100, 1, 0, 1, 0, 2}));
  auto local = make_v2(std::nullopt, std::nullopt);
  EXPECT_EQ(local, std::string(v2_signature) + bin({0x20, 0, 0, 0}));
  EXPECT_FALSE(parse(local).h.has_addresses);
}

TEST(ProxyProtocolWrite, Endpoints) {
  EXPECT_EQ(parse_endpoint("192.0.2.7:80"), ep("192.0.2.7", 80));
  EXPECT_EQ(parse_endpoint("[2001:db8::1]:443"), ep("2001:db8::1", 443));
  EXPECT_FALSE(parse_endpoint("192.0.2.7"));
  EXPECT_FALSE(parse_endpoint("2001:db8::1:443"));
  EXPECT_FALSE(parse_endpoint("example.com:80"));
  EXPECT_FALSE(parse_endpoint("192.0.2.7:65536"));
  EXPECT_EQ(to_string(ep("2001:db8::1", 443)), "[2001:db8::1]:443");
}

}  // namespace
}  // namespace trafficcop::proxy_protocol
