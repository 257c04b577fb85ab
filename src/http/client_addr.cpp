// SPDX-License-Identifier: MIT
// ip_network and the client address behind trusted proxies (client_addr.hpp).
#include "http/client_addr.hpp"

#include <charconv>
#include <cstring>
#include <iterator>

#include "http/rules.hpp"

namespace trafficcop {
namespace {

using boost::asio::ip::address;

std::optional<address> parse_ip(std::string_view s) noexcept {
  if (s.empty() || s.size() > 45 || s.find('%') != std::string_view::npos) return std::nullopt;
  char buf[46];
  std::memcpy(buf, s.data(), s.size());
  buf[s.size()] = '\0';
  // The family from the text: make_address would try IPv6 first, and most peers are IPv4.
  boost::system::error_code ec;
  address a = s.find(':') == std::string_view::npos
                  ? address(boost::asio::ip::make_address_v4(buf, ec))
                  : address(boost::asio::ip::make_address_v6(buf, ec));
  if (ec) return std::nullopt;
  return a;
}

/// v4-mapped IPv6 as the IPv4 address it carries; anything else unchanged.
address unmapped(const address& a) noexcept {
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6());
  return a;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void format(std::string& out, const address& a, unsigned port) {
  out.clear();
  if (a.is_v6()) out += '[';
  out += a.to_string();
  if (a.is_v6()) out += ']';
  out += ':';
  char num[8];
  auto [end, ec] = std::to_chars(num, num + sizeof num, port);
  out.append(num, end);
}

}  // namespace

std::optional<ip_network> ip_network::parse(std::string_view cidr) noexcept {
  auto slash = cidr.find('/');
  auto a = parse_ip(cidr.substr(0, slash));
  if (!a) return std::nullopt;
  const unsigned max = a->is_v4() ? 32 : 128;
  unsigned prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view p = cidr.substr(slash + 1);
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || p.size() > 3 || ec != std::errc{} || end != p.data() + p.size() ||
        prefix > max)
      return std::nullopt;
  }
  // Host bits must be zero: compare with the base masked to the prefix.
  auto masked = [&](auto bytes) {
    for (unsigned i = 0; i < bytes.size(); ++i) {
      unsigned keep = prefix >= 8 * (i + 1) ? 8 : (prefix > 8 * i ? prefix - 8 * i : 0);
      auto mask = static_cast<unsigned char>(keep == 0 ? 0 : 0xff << (8 - keep));
      if ((bytes[i] & ~mask) != 0) return false;
    }
    return true;
  };
  bool clean = a->is_v4() ? masked(a->to_v4().to_bytes()) : masked(a->to_v6().to_bytes());
  if (!clean) return std::nullopt;
  if (a->is_v6() && a->to_v6().is_v4_mapped() && prefix >= 96)  // "::ffff:10.0.0.0/104"
    return ip_network{unmapped(*a), prefix - 96};
  return ip_network{*a, prefix};
}

bool ip_network::contains(const address& in) const noexcept {
  address a = unmapped(in);
  if (a.is_v4() != base.is_v4()) return false;
  auto match = [&](auto x, auto y) {
    unsigned bits = prefix;
    for (std::size_t i = 0; i < x.size() && bits > 0; ++i, bits = bits >= 8 ? bits - 8 : 0) {
      unsigned keep = bits >= 8 ? 8 : bits;
      auto mask = static_cast<unsigned char>(0xff << (8 - keep));
      if ((x[i] & mask) != (y[i] & mask)) return false;
    }
    return true;
  };
  return a.is_v4() ? match(a.to_v4().to_bytes(), base.to_v4().to_bytes())
                   : match(a.to_v6().to_bytes(), base.to_v6().to_bytes());
}

bool contains(const std::vector<ip_network>& nets, const address& a) noexcept {
  for (const auto& n : nets)
    if (n.contains(a)) return true;
  return false;
}

namespace http {

std::optional<address> parse_forwarded_element(std::string_view s, unsigned& port) noexcept {
  s = trim(s);
  port = 0;
  std::string_view host = s, port_text;
  if (s.starts_with('[')) {
    auto close = s.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = s.substr(1, close - 1);
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port_text = rest.substr(1);
      if (port_text.empty()) return std::nullopt;
    }
    auto a = parse_ip(host);
    if (!a || !a->is_v6()) return std::nullopt;
  } else if (auto colon = s.find(':');
             colon != std::string_view::npos && s.find(':', colon + 1) == std::string_view::npos) {
    host = s.substr(0, colon);  // IPv4 with a port; a bare IPv6 address has several colons
    port_text = s.substr(colon + 1);
    if (port_text.empty()) return std::nullopt;
  }
  auto a = parse_ip(host);
  if (!a) return std::nullopt;
  if (!port_text.empty()) {
    unsigned p = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), p);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || p > 65535)
      return std::nullopt;
    port = p;
  }
  return unmapped(*a);
}

std::optional<address> address_of(std::string_view addr) noexcept {
  return parse_ip(host_of(addr));
}

void resolve_client(const header_map& h, std::string_view peer,
                    const std::vector<ip_network>& trusted, std::string& client) {
  // The client so far: the peer until an element names an earlier hop. Formatted once, at
  // the end: a chain of trusted hops costs a parse per element, not a string each.
  std::optional<address> found;
  unsigned found_port = 0;
  auto done = [&] {
    if (found)
      format(client, *found, found_port);
    else
      client.assign(peer);
  };
  // Right to left over every line's elements: the last line holds the nearest hops.
  for (auto it = std::make_reverse_iterator(h.end()); it != std::make_reverse_iterator(h.begin());
       ++it) {
    if (!iequals(it->name, "x-forwarded-for")) continue;
    std::string_view line = it->value;
    while (!line.empty()) {
      auto comma = line.rfind(',');
      std::string_view element = comma == std::string_view::npos ? line : line.substr(comma + 1);
      line = comma == std::string_view::npos ? std::string_view() : line.substr(0, comma);
      if (trim(element).empty()) continue;  // "a,,b": an empty element names nobody
      unsigned port = 0;
      auto a = parse_forwarded_element(element, port);
      if (!a) return done();  // not an address: the hop that wrote it is the client
      found = a;
      found_port = port;
      if (!contains(trusted, *a)) return done();
    }
  }
  done();
}

}  // namespace http
}  // namespace trafficcop
