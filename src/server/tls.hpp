// SPDX-License-Identifier: MIT
// TLS on listeners: an OpenSSL server context per certificate, chosen by SNI; ALPN h2 or
// http/1.1.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "trafficcop/server.hpp"

namespace trafficcop::detail {

class tls_server {
 public:
  /// Null with `error` set (naming the file) if a certificate or key does not load.
  /// `h2`: ALPN prefers "h2" when the client offers it.
  static std::unique_ptr<tls_server> make(const listener_tls& t, bool h2, std::string& error);
  /// The context new connections start with (the default certificate's); SNI may switch.
  asio::ssl::context& context() noexcept { return *contexts_.front(); }
  /// The listener's Strict-Transport-Security as an HTTP/1.1 field line
  /// ("Strict-Transport-Security: max-age=N...\r\n"), or "" when it has no hsts.
  std::string_view hsts_line() const noexcept { return hsts_line_; }
  /// The same field's value alone (for HTTP/2), or "".
  std::string_view hsts_value() const noexcept;

 private:
  static int on_server_name(SSL* ssl, int* alert, void* arg);
  std::vector<std::unique_ptr<asio::ssl::context>> contexts_;  // by certificate
  std::string hsts_line_;  // formatted once here, so responses only copy bytes
};

/// The subject (RFC 2253) of the verified client certificate of `ssl`, or "".
std::string client_subject(SSL* ssl);

/// One listener's certificates, replaced whole on reload (server::reload_tls). A connection
/// keeps the generation it was accepted with, so a reload drops nothing.
class tls_listener {
 public:
  explicit tls_listener(std::shared_ptr<tls_server> s) : cur_(std::move(s)) {}
  std::shared_ptr<tls_server> current() const {
    std::lock_guard lock(mu_);
    return cur_;
  }
  void replace(std::shared_ptr<tls_server> s) {
    std::lock_guard lock(mu_);
    cur_ = std::move(s);
  }

 private:
  mutable std::mutex mu_;  // the reload runs on the signal thread, accepts on workers
  std::shared_ptr<tls_server> cur_;
};

}  // namespace trafficcop::detail
