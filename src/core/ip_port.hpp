// SPDX-License-Identifier: MIT
// "ip", "ip:port", "[v6]" or "[v6]:port" (a DNS server's address): the config loader
// validates with it, service discovery dials with it. Header-only, no Asio.
#pragma once

#include <arpa/inet.h>

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trafficcop {

struct ip_port {
  std::string ip;  // without brackets
  std::uint16_t port = 0;
};

/// nullopt unless `s` is an IP literal (IPv6 in brackets when a port follows) with an
/// optional port 1-65535; `default_port` when there is none.
inline std::optional<ip_port> parse_ip_port(std::string_view s, std::uint16_t default_port) {
  ip_port r;
  std::string_view port;
  bool v6 = false;
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    r.ip = s.substr(1, close - 1);
    v6 = true;
    if (close + 1 < s.size()) {
      if (s[close + 1] != ':' || close + 2 == s.size()) return std::nullopt;
      port = s.substr(close + 2);
    }
  } else if (auto colon = s.find(':'); colon != std::string_view::npos) {
    if (colon + 1 == s.size()) return std::nullopt;
    r.ip = s.substr(0, colon);
    port = s.substr(colon + 1);
  } else {
    r.ip = s;
  }
  unsigned char buf[16];
  if (inet_pton(v6 ? AF_INET6 : AF_INET, r.ip.c_str(), buf) != 1) return std::nullopt;
  r.port = default_port;
  if (!port.empty()) {
    unsigned v = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc{} || end != port.data() + port.size() || v == 0 || v > 65535)
      return std::nullopt;
    r.port = static_cast<std::uint16_t>(v);
  }
  return r;
}

}  // namespace trafficcop
