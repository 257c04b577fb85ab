// SPDX-License-Identifier: MIT
// The PROXY protocol, versions 1 (text) and 2 (binary), as HAProxy's proxy-protocol.txt
// specifies it: a header a load balancer sends before the first byte of the client's stream,
// naming the client's address (source) and the address it connected to (destination).
//
// Sans-I/O: parse() looks at the bytes received so far and says whether they are a whole
// header (and how long), could still become one, or never will; make_v1()/make_v2() build the
// header trafficcop sends to upstreams (upstreams[].send_proxy_protocol). The server's
// reader (src/server/proxy_header.cpp) owns the socket, the size bound and the timeout.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/ip/tcp.hpp>

namespace trafficcop::proxy_protocol {

namespace asio = boost::asio;

/// Largest header accepted, TLVs included. A v1 header is at most 107 bytes (spec §2.1); a v2
/// one is 16 + its length field, which allows 64 KiB, but real senders add a few TLVs to an
/// address block of at most 216 bytes (AWS, GCP and Azure's ids, HAProxy's SSL fields).
inline constexpr std::size_t max_header_bytes = 4096;
/// The v1 limit of the spec: "PROXY UNKNOWN" + two IPv6 addresses and ports + CRLF.
inline constexpr std::size_t max_v1_bytes = 107;
/// The v2 signature (spec §2.2), 12 bytes.
inline constexpr std::string_view v2_signature{"\r\n\r\n\0\r\nQUIT\n", 12};

enum class status {
  need_more,  // a prefix of a header that may still become valid: read more
  done,       // a whole valid header of `header::size` bytes
  invalid,    // not a PROXY header, malformed, or larger than the bound: close
};

struct header {
  int version = 0;  // 1 or 2
  /// True when the header names the client: v1 TCP4/TCP6, v2 PROXY over TCP/IPv4 or IPv6.
  /// False for v1 UNKNOWN, v2 LOCAL (the balancer's own health check) and v2 families other
  /// than TCP over IP (UNIX, UDP, UNSPEC): the connection's own addresses apply (spec §2.2).
  bool has_addresses = false;
  asio::ip::tcp::endpoint source;       // the client
  asio::ip::tcp::endpoint destination;  // the address the client connected to
  std::size_t size = 0;                 // bytes of `in` the header takes, TLVs included
};

struct result {
  status st = status::need_more;
  header h;                // set when st == done
  std::string_view error;  // why, when st == invalid (static text, for logs)
};

/// Parses the first bytes a connection sent. `max_size` bounds a v2 header (v1 has its own
/// 107-byte limit). Returns as soon as the input tells: garbage is `invalid` from its first
/// byte that cannot start a header, not after `max_size` bytes.
result parse(std::string_view in, std::size_t max_size = max_header_bytes) noexcept;

/// "PROXY TCP4 1.2.3.4 5.6.7.8 1234 80\r\n", or "PROXY UNKNOWN\r\n" without addresses.
/// Addresses of different families are both sent as IPv6 (v4-mapped), as the spec asks.
std::string make_v1(const std::optional<asio::ip::tcp::endpoint>& source,
                    const std::optional<asio::ip::tcp::endpoint>& destination);
/// The binary header: PROXY over TCP with the two addresses, or LOCAL (no address block)
/// when either is missing. No TLVs.
std::string make_v2(const std::optional<asio::ip::tcp::endpoint>& source,
                    const std::optional<asio::ip::tcp::endpoint>& destination);

/// "ip:port" / "[v6]:port" → endpoint; nullopt for anything else (a port is required).
std::optional<asio::ip::tcp::endpoint> parse_endpoint(std::string_view addr) noexcept;
/// The inverse: "1.2.3.4:80", "[2001:db8::1]:443".
std::string to_string(const asio::ip::tcp::endpoint& ep);

}  // namespace trafficcop::proxy_protocol
