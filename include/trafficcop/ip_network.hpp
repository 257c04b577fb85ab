// SPDX-License-Identifier: MIT
// An IP network in CIDR notation, for lists of trusted peers (server_options::trusted_proxies).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>

namespace trafficcop {

struct ip_network {
  boost::asio::ip::address base;  // the host bits are zero
  unsigned prefix = 0;            // 0..32 (IPv4), 0..128 (IPv6)

  /// "10.0.0.0/8", "2001:db8::/32"; a bare address is a /32 or /128. Nullopt for anything
  /// else, for a prefix longer than the family allows, and for host bits set after the '/'
  /// ("10.0.0.1/8" is most likely a typo of the network, not a network).
  static std::optional<ip_network> parse(std::string_view cidr) noexcept;
  /// Whether `a` is inside. An IPv4-mapped IPv6 address (a dual-stack socket's view of an
  /// IPv4 client, "::ffff:10.1.2.3") is compared as the IPv4 address it carries.
  bool contains(const boost::asio::ip::address& a) const noexcept;
};

/// True if any network of `nets` contains `a`.
bool contains(const std::vector<ip_network>& nets, const boost::asio::ip::address& a) noexcept;

}  // namespace trafficcop
