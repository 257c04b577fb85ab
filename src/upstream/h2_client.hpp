// SPDX-License-Identifier: MIT
// HTTP/2 towards upstreams: one connection carries many requests of one worker at once.
//
// An h2_client owns an upstream connection (after ALPN "h2", or prior knowledge on plain TCP)
// and its nghttp2 client session. A request is a stream: its body is pumped from the
// outbound_request's body_reader by a coroutine of its own (HTTP/2 is full duplex: gRPC
// streams the request body while the response streams back), and the response body is read
// from the stream's inbound queue, whose window opens only as the proxy reads it.
//
// h2_pool (a service of the worker's io_context, like pool_service) keeps the live clients by
// pool key; a client leaves it when it closes, receives GOAWAY, or idles out.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/execution_context.hpp>

#include "trafficcop/transport.hpp"
#include "upstream/pool.hpp"

namespace trafficcop::upstream {

class h2_client;

/// Opens the HTTP/2 session on `c` (TLS done, or plain TCP for prior knowledge). Null if
/// nghttp2 cannot make a session.
std::shared_ptr<h2_client> make_h2_client(conn_ptr c, std::uint32_t max_streams,
                                          std::chrono::milliseconds idle_timeout);

/// Sends `req` as a stream of `h`. `retry` is set when the stream was refused before the
/// upstream processed it (GOAWAY, REFUSED_STREAM): the request may go on another connection.
asio::awaitable<round_trip_result> h2_round_trip(h2_client& h, outbound_request& req, bool& retry);

/// True while `h` may take one more stream now.
bool h2_available(const h2_client& h) noexcept;

class h2_pool : public asio::execution_context::service {
 public:
  using key_type = h2_pool;
  static asio::execution_context::id id;
  explicit h2_pool(asio::execution_context& ctx) : service(ctx) {}

  /// A client for `key` with room for one more stream, or null.
  std::shared_ptr<h2_client> find(std::string_view key);
  void add(const std::string& key, std::shared_ptr<h2_client> h);
  /// How many clients are kept for `key` (tests).
  std::size_t count(std::string_view key);

  /// What ALPN said the last time for `key`: the upstream speaks h2 (true) or not (false).
  std::optional<bool> speaks_h2(std::string_view key) const;
  void remember(const std::string& key, bool h2) { alpn_[key] = h2; }

 private:
  void shutdown() override;
  std::unordered_map<std::string, std::vector<std::shared_ptr<h2_client>>> clients_;
  std::unordered_map<std::string, bool> alpn_;
};

}  // namespace trafficcop::upstream
