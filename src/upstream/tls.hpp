// SPDX-License-Identifier: MIT
// TLS towards upstreams: one OpenSSL client context per transport, the handshake with SNI and
// verification of the chain and host name, and failures named the way an operator searches
// for them (unknown authority, hostname mismatch, expired certificate).
#pragma once

#include <mutex>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include "trafficcop/transport.hpp"
#include "upstream/pool.hpp"

namespace trafficcop::upstream {

class tls_client {
 public:
  /// Keeps the options; the OpenSSL context is made on first use (a process that never talks
  /// TLS does not initialise OpenSSL, which costs megabytes of resident memory).
  explicit tls_client(const upstream_tls_options& o) : o_(o) {}
  /// "" when the context loads; else what failed, naming the file.
  const std::string& error();
  /// Puts TLS on `c` and runs the handshake for `host` (the URL's host; server_name overrides
  /// it). Returns "" or why it failed. The caller bounds it with c's watchdog.
  /// `alpn`: the protocols offered, in ALPN wire format ("\x02h2\x08http/1.1").
  asio::awaitable<std::string> handshake(conn& c, const std::string& host, std::string_view alpn);

 private:
  upstream_tls_options o_;
  std::once_flag once_;  // workers share the transport
  std::optional<asio::ssl::context> ctx_;
  std::string error_;
};

}  // namespace trafficcop::upstream
