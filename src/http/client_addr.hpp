// SPDX-License-Identifier: MIT
// Who the client is behind trusted proxies: nginx's real_ip_recursive over X-Forwarded-For.
// Pure functions; the server applies them (src/server/proxy_header.cpp) and the proxy's
// X-Forwarded-For rules (http/rules.hpp: apply_forwarded) follow from the result.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "trafficcop/http.hpp"
#include "trafficcop/ip_network.hpp"

namespace trafficcop::http {

/// One X-Forwarded-For element, trimmed: "203.0.113.7", "2001:db8::1", "203.0.113.7:5000",
/// "[2001:db8::1]:5000" or "[2001:db8::1]"; nullopt for anything else ("unknown", names,
/// obfuscated identifiers). The port, when present, goes to `port`.
std::optional<boost::asio::ip::address> parse_forwarded_element(std::string_view s,
                                                                unsigned& port) noexcept;

/// For a request from a trusted peer: walks the X-Forwarded-For elements of `h` (every line,
/// in order) from the right, skipping those inside `trusted`, and writes the first one that is
/// not as the client, "ip:port" (port 0 when the element had none). When every element is
/// trusted, the leftmost one is the client. An element that is not an address stops the walk:
/// the client is then the hop that named it (the previous element, or `peer` itself). With no
/// X-Forwarded-For at all, the client is `peer`.
void resolve_client(const header_map& h, std::string_view peer,
                    const std::vector<ip_network>& trusted, std::string& client);

/// The address part of "ip:port" / "[v6]:port", parsed; nullopt if it is not one.
std::optional<boost::asio::ip::address> address_of(std::string_view addr) noexcept;

}  // namespace trafficcop::http
