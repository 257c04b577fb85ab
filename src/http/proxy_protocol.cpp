// SPDX-License-Identifier: MIT
// The PROXY protocol v1/v2 parser and writers (proxy_protocol.hpp). Section numbers are those
// of HAProxy's doc/proxy-protocol.txt.
#include "http/proxy_protocol.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstring>

namespace trafficcop::proxy_protocol {
namespace {

using asio::ip::address;
using asio::ip::address_v4;
using asio::ip::address_v6;
using asio::ip::tcp;

constexpr std::string_view v1_prefix = "PROXY ";

result fail(std::string_view why) noexcept { return {status::invalid, {}, why}; }

/// True if `in` is a proper prefix of `whole` (so more bytes may complete it).
bool is_prefix(std::string_view in, std::string_view whole) noexcept {
  return in.size() < whole.size() && whole.substr(0, in.size()) == in;
}

std::optional<std::uint16_t> parse_port(std::string_view s) noexcept {
  if (s.empty() || s.size() > 5) return std::nullopt;
  unsigned v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size() || v > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(v);
}

/// A v1 address of the family the protocol word names: dotted quad or RFC 4291 text, no
/// scope id (asio would take "fe80::1%eth0").
std::optional<address> parse_address(std::string_view s, bool v6) noexcept {
  if (s.empty() || s.size() > 45 || s.find('%') != std::string_view::npos) return std::nullopt;
  char buf[46];
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  boost::system::error_code ec;
  address a = v6 ? address(asio::ip::make_address_v6(buf, ec))
                 : address(asio::ip::make_address_v4(buf, ec));
  if (ec) return std::nullopt;
  return a;
}

/// §2.1: "PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport CRLF, or "PROXY UNKNOWN"
/// followed by anything up to CRLF. Single spaces; at most 107 bytes with the CRLF.
result parse_v1(std::string_view in) noexcept {
  if (is_prefix(in, v1_prefix)) return {};
  if (!in.starts_with(v1_prefix)) return fail("not a PROXY protocol header");
  // The CR is at index 105 at the latest, so that the header with its LF is 107 bytes.
  const std::size_t limit = std::min(in.size(), max_v1_bytes - 1);
  std::size_t cr = std::string_view::npos;
  for (std::size_t i = 0; i < limit; ++i) {
    auto c = static_cast<unsigned char>(in[i]);
    if (c == '\r') {
      cr = i;
      break;
    }
    if (c < 0x20 || c > 0x7e) return fail("v1: a control or non-ASCII byte");
  }
  if (cr == std::string_view::npos)
    return limit == max_v1_bytes - 1 ? fail("v1: no CRLF within 107 bytes") : result{};
  if (cr + 1 >= in.size()) return {};  // the LF may follow
  if (in[cr + 1] != '\n') return fail("v1: CR not followed by LF");
  header h;
  h.version = 1;
  h.size = cr + 2;
  std::string_view line = in.substr(v1_prefix.size(), cr - v1_prefix.size());
  if (line == "UNKNOWN" || line.starts_with("UNKNOWN ")) return {status::done, h, {}};
  std::array<std::string_view, 5> f;
  for (std::size_t i = 0; i < f.size(); ++i) {
    auto sp = i + 1 < f.size() ? line.find(' ') : line.size();
    if (sp == std::string_view::npos) return fail("v1: too few fields");
    f[i] = line.substr(0, sp);
    line.remove_prefix(std::min(line.size(), sp + 1));
  }
  if (f[4].find(' ') != std::string_view::npos) return fail("v1: too many fields");
  if (f[0] != "TCP4" && f[0] != "TCP6") return fail("v1: protocol is not TCP4, TCP6 or UNKNOWN");
  bool v6 = f[0] == "TCP6";
  auto src = parse_address(f[1], v6), dst = parse_address(f[2], v6);
  if (!src || !dst) return fail("v1: an address is not of the protocol's family");
  auto sport = parse_port(f[3]), dport = parse_port(f[4]);
  if (!sport || !dport) return fail("v1: a port is not a number from 0 to 65535");
  h.has_addresses = true;
  h.source = tcp::endpoint(*src, *sport);
  h.destination = tcp::endpoint(*dst, *dport);
  return {status::done, h, {}};
}

std::uint16_t be16(const unsigned char* p) noexcept {
  return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

/// §2.2: signature, version/command, family/protocol, length, address block, TLVs.
result parse_v2(std::string_view in, std::size_t max_size) noexcept {
  if (in.size() < v2_signature.size())
    return is_prefix(in, v2_signature) ? result{} : fail("not a PROXY protocol header");
  if (!in.starts_with(v2_signature)) return fail("not a PROXY protocol header");
  if (in.size() < 16) {
    // Reject a wrong version or command as soon as the byte is there.
    if (in.size() > 12 && (in[12] != '\x20' && in[12] != '\x21'))
      return fail("v2: unknown version or command");
    return {};
  }
  auto* p = reinterpret_cast<const unsigned char*>(in.data());
  const unsigned ver_cmd = p[12], fam = p[13];
  if ((ver_cmd >> 4) != 2) return fail("v2: version is not 2");
  const unsigned cmd = ver_cmd & 0xf;
  if (cmd > 1) return fail("v2: command is not LOCAL or PROXY");
  const std::size_t len = be16(p + 14);
  if (16 + len > max_size) return fail("v2: header larger than the limit");
  if (in.size() < 16 + len) return {};
  header h;
  h.version = 2;
  h.size = 16 + len;
  // LOCAL (the balancer speaking for itself, e.g. a health check): whatever follows is
  // skipped and the connection's addresses apply.
  if (cmd == 0) return {status::done, h, {}};
  const unsigned family = fam >> 4, proto = fam & 0xf;
  if (family > 3 || proto > 2) return fail("v2: unknown address family or protocol");
  std::size_t block = 0;
  switch (family) {
    case 0:  // UNSPEC: no address block; the receiver uses the connection's (§2.2)
      return {status::done, h, {}};
    case 1:  // INET
      block = 12;
      break;
    case 2:  // INET6
      block = 36;
      break;
    case 3:  // UNIX: two 108-byte paths
      block = 216;
      break;
  }
  if (len < block) return fail("v2: length shorter than the address block");
  // TLVs (§2.2.7): type, 16-bit length, value. None is used; each must fit in the header.
  for (std::size_t at = 16 + block; at < h.size;) {
    if (h.size - at < 3) return fail("v2: truncated TLV");
    const std::size_t tlv = be16(p + at + 1);
    if (h.size - at - 3 < tlv) return fail("v2: TLV longer than the header");
    at += 3 + tlv;
  }
  // Only TCP over IP names a client of this stream; UDP and UNIX are accepted and ignored.
  if (proto != 1 || family == 3) return {status::done, h, {}};
  const unsigned char* a = p + 16;
  if (family == 1) {
    address_v4::bytes_type s, d;
    std::memcpy(s.data(), a, 4);
    std::memcpy(d.data(), a + 4, 4);
    h.source = tcp::endpoint(address_v4(s), be16(a + 8));
    h.destination = tcp::endpoint(address_v4(d), be16(a + 10));
  } else {
    address_v6::bytes_type s, d;
    std::memcpy(s.data(), a, 16);
    std::memcpy(d.data(), a + 16, 16);
    h.source = tcp::endpoint(address_v6(s), be16(a + 32));
    h.destination = tcp::endpoint(address_v6(d), be16(a + 34));
  }
  h.has_addresses = true;
  return {status::done, h, {}};
}

/// Both as IPv4 when both are, else both as IPv6 (v4-mapped).
bool same_family_v4(tcp::endpoint& s, tcp::endpoint& d) {
  if (s.address().is_v4() && d.address().is_v4()) return true;
  auto to6 = [](tcp::endpoint& e) {
    if (e.address().is_v4())
      e.address(asio::ip::make_address_v6(asio::ip::v4_mapped, e.address().to_v4()));
  };
  to6(s);
  to6(d);
  return false;
}

void put16(std::string& out, std::uint16_t v) {
  out += static_cast<char>(v >> 8);
  out += static_cast<char>(v & 0xff);
}

}  // namespace

result parse(std::string_view in, std::size_t max_size) noexcept {
  if (in.empty()) return {};
  if (in[0] == 'P') return parse_v1(in);
  if (in[0] == '\r') return parse_v2(in, max_size);
  return fail("not a PROXY protocol header");
}

std::string make_v1(const std::optional<tcp::endpoint>& source,
                    const std::optional<tcp::endpoint>& destination) {
  if (!source || !destination) return "PROXY UNKNOWN\r\n";
  tcp::endpoint s = *source, d = *destination;
  bool v4 = same_family_v4(s, d);
  std::string out = v4 ? "PROXY TCP4 " : "PROXY TCP6 ";
  out += s.address().to_string();
  out += ' ';
  out += d.address().to_string();
  out += ' ';
  out += std::to_string(s.port());
  out += ' ';
  out += std::to_string(d.port());
  out += "\r\n";
  return out;
}

std::string make_v2(const std::optional<tcp::endpoint>& source,
                    const std::optional<tcp::endpoint>& destination) {
  std::string out(v2_signature);
  if (!source || !destination) {
    out += '\x20';  // version 2, LOCAL
    out += '\x00';  // UNSPEC
    put16(out, 0);
    return out;
  }
  tcp::endpoint s = *source, d = *destination;
  bool v4 = same_family_v4(s, d);
  out += '\x21';                // version 2, PROXY
  out += v4 ? '\x11' : '\x21';  // TCP over IPv4 / IPv6
  put16(out, v4 ? 12 : 36);
  auto bytes = [&](const address& a) {
    if (v4) {
      auto b = a.to_v4().to_bytes();
      out.append(reinterpret_cast<const char*>(b.data()), b.size());
    } else {
      auto b = a.to_v6().to_bytes();
      out.append(reinterpret_cast<const char*>(b.data()), b.size());
    }
  };
  bytes(s.address());
  bytes(d.address());
  put16(out, s.port());
  put16(out, d.port());
  return out;
}

std::optional<tcp::endpoint> parse_endpoint(std::string_view addr) noexcept {
  auto colon = addr.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view host = addr.substr(0, colon);
  bool v6 = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (v6) host = host.substr(1, host.size() - 2);
  auto port = parse_port(addr.substr(colon + 1));
  auto a = parse_address(host, v6);
  if (!port || !a) return std::nullopt;
  return tcp::endpoint(*a, *port);
}

std::string to_string(const tcp::endpoint& ep) {
  auto a = ep.address();
  std::string s = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
  return s + ":" + std::to_string(ep.port());
}

}  // namespace trafficcop::proxy_protocol
