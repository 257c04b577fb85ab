// SPDX-License-Identifier: MIT
// An IPv4 or IPv6 network ("10.0.0.0/8", "::1/128"; a bare address is one host), and whether
// an address is in it. Header-only and allocation-free: the config loader validates with it
// and the admin listener checks clients with it.
#pragma once

#include <arpa/inet.h>

#include <array>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trafficcop {

struct cidr {
  bool v6 = false;
  std::array<std::uint8_t, 16> net{};
  unsigned bits = 0;

  /// nullopt unless `s` is an address with an optional /prefix within its family's length.
  static std::optional<cidr> parse(std::string_view s) {
    cidr c;
    auto slash = s.find('/');
    std::string addr(s.substr(0, slash));
    c.v6 = addr.find(':') != std::string::npos;
    if (inet_pton(c.v6 ? AF_INET6 : AF_INET, addr.c_str(), c.net.data()) != 1) return std::nullopt;
    unsigned max = c.v6 ? 128 : 32;
    c.bits = max;
    if (slash != std::string_view::npos) {
      auto p = s.substr(slash + 1);
      auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), c.bits);
      if (p.empty() || ec != std::errc{} || end != p.data() + p.size() || c.bits > max)
        return std::nullopt;
    }
    return c;
  }

  /// Whether the IP literal `ip` (no brackets, no port) is in this network. An IPv4-mapped
  /// IPv6 address (::ffff:a.b.c.d) counts as its IPv4 address.
  bool contains(std::string_view ip) const {
    std::array<std::uint8_t, 16> a{};
    std::string s(ip);
    bool is6 = s.find(':') != std::string::npos;
    if (inet_pton(is6 ? AF_INET6 : AF_INET, s.c_str(), a.data()) != 1) return false;
    static constexpr std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (is6 && !v6 && std::equal(mapped, mapped + 12, a.begin())) {
      std::copy(a.begin() + 12, a.end(), a.begin());
      is6 = false;
    }
    if (is6 != v6) return false;
    unsigned full = bits / 8, rest = bits % 8;
    for (unsigned i = 0; i < full; ++i)
      if (a[i] != net[i]) return false;
    if (rest == 0) return true;
    auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
  }
};

}  // namespace trafficcop
