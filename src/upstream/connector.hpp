// SPDX-License-Identifier: MIT
// The connector: from an outbound request's host and port to a connected upstream `conn`
// (resolve, connect, TCP options), and TLS with SNI, verification and ALPN on top of it. One
// deadline covers resolving and connecting; the handshake has its own, of the same length.
// Failures are proxy_errors that name the step and the address, and are classified
// connect_failure (nothing was sent, so any request may go elsewhere).
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "trafficcop/transport.hpp"
#include "upstream/pool.hpp"
#include "upstream/tls.hpp"

namespace trafficcop::upstream {

/// ALPN offers in wire format.
inline constexpr std::string_view alpn_http1 = "\x08http/1.1";
inline constexpr std::string_view alpn_h2_only = "\x02h2";
inline constexpr std::string_view alpn_h2_or_http1 = "\x02h2\x08http/1.1";

/// A proxy_error of the upstream side.
proxy_error upstream_error(errc e, std::string detail, retry_class retry = retry_class::none);

struct breaker_options;
struct breaker_state;

class connector {
 public:
  /// With `limits` and `counts` (an upstream with circuit breakers), connect() fails with
  /// errc::circuit_open at max_connections open or max_pending connects under way, and
  /// counts the connections it makes until they close.
  /// `send_proxy_protocol` (1, 2; 0 = off): every new connection starts with a PROXY header
  /// for the request's inbound client (http1_transport_options::send_proxy_protocol).
  connector(std::chrono::milliseconds connect_timeout, const upstream_tls_options& tls,
            const breaker_options* limits = nullptr, breaker_state* counts = nullptr,
            std::uint8_t send_proxy_protocol = 0);

  struct result {
    conn_ptr c;       // set on success
    proxy_error err;  // set on failure
  };
  /// A new TCP connection to req.host:req.port (a name is resolved), non-blocking, no delay.
  asio::awaitable<result> connect(const outbound_request& req);
  /// The TLS handshake on a fresh connection, offering `alpn`.
  asio::awaitable<std::optional<proxy_error>> start_tls(conn& c, const outbound_request& req,
                                                        std::string_view alpn = alpn_http1);
  /// After start_tls: whether the upstream chose h2 in ALPN.
  static bool chose_h2(const conn& c);

  std::chrono::milliseconds connect_timeout() const noexcept { return timeout_; }

 private:
  asio::awaitable<result> dial(const outbound_request& req);

  std::chrono::milliseconds timeout_;
  tls_client tls_;
  const breaker_options* limits_;
  breaker_state* counts_;
  std::uint8_t send_proxy_;
};

}  // namespace trafficcop::upstream
