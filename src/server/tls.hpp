// SPDX-License-Identifier: MIT
// TLS on listeners: an OpenSSL server context per certificate, chosen by SNI, ALPN http/1.1.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "trafficcop/server.hpp"

namespace trafficcop::detail {

class tls_server {
 public:
  /// Null with `error` set (naming the file) if a certificate or key does not load.
  static std::unique_ptr<tls_server> make(const listener_tls& t, std::string& error);
  /// The context new connections start with (the default certificate's); SNI may switch.
  asio::ssl::context& context() noexcept { return *contexts_.front(); }

 private:
  static int on_server_name(SSL* ssl, int* alert, void* arg);
  std::vector<std::unique_ptr<asio::ssl::context>> contexts_;  // by certificate
};

}  // namespace trafficcop::detail
