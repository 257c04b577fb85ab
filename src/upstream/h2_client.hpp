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
// pool key; a client leaves it when it closes, receives GOAWAY, or idles out, or when its
// endpoint leaves the upstream (a sweep every second retires it: it ends with its last stream).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/execution_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "trafficcop/transport.hpp"
#include "upstream/pool.hpp"

namespace trafficcop::h2 {
class session;
}

namespace trafficcop::upstream {

class h2_client;

/// Opens the HTTP/2 session on `c` (TLS done, or plain TCP for prior knowledge). Null if
/// nghttp2 cannot make a session. The session closes its socket when it ends (GOAWAY, idle,
/// the peer's close) and then leaves the worker's h2_pool.
std::shared_ptr<h2_client> make_h2_client(conn_ptr c, std::uint32_t max_streams,
                                          std::chrono::milliseconds idle_timeout);

/// In memory, without a socket (tests, fuzz/h2_client_fuzz.cpp): the session over `c` (which
/// may be unopened: only its executor and peer name are used) with its SETTINGS queued and no
/// loop running. The caller feeds what the upstream sends and pulls what the client sends
/// through h2_session(), runs the io_context's ready handlers in between, and ends it with
/// h2_connection_lost() (the upstream's close). Null if nghttp2 cannot make a session.
std::shared_ptr<h2_client> make_h2_client_in_memory(conn_ptr c, std::uint32_t max_streams,
                                                    std::chrono::milliseconds idle_timeout);
/// The sans-I/O session of `h` (feed, pull, finished).
h2::session& h2_session(h2_client& h);
/// The connection is gone, as when the socket ends: the session closes, every stream fails.
void h2_connection_lost(h2_client& h);

/// Sends `req` as a stream of `h`. A stream refused before the upstream processed it (GOAWAY,
/// REFUSED_STREAM, a closing connection) fails with retry_class::refused: the request may go
/// on another connection.
asio::awaitable<round_trip_result> h2_round_trip(h2_client& h, outbound_request& req);

/// Waits (up to `timeout`) for the upstream's first SETTINGS: until then its stream limit is
/// not known, and streams sent beyond it would be refused. False if it did not come.
asio::awaitable<bool> h2_wait_settings(h2_client& h, std::chrono::milliseconds timeout);

class h2_pool : public asio::execution_context::service {
 public:
  using key_type = h2_pool;
  static asio::execution_context::id id;
  explicit h2_pool(asio::execution_context& ctx) : service(ctx) {}

  /// A client for `key` with room for one more stream, other than `not_this`, or null.
  std::shared_ptr<h2_client> find(std::string_view key, const h2_client* not_this = nullptr);
  void add(const std::string& key, std::shared_ptr<h2_client> h);
  void remove(const h2_client* h);

  /// Requests that find no room while a connection for their key is being made wait for it
  /// instead of each making one (a burst on a cold pool would open one per request).
  /// connecting() counts the connects under way; a connect_guard marks one for its lifetime.
  std::size_t connecting(const std::string& key) const;
  asio::awaitable<void> wait_connect(const std::string& key);
  class connect_guard {
   public:
    connect_guard(h2_pool& p, std::string key);
    ~connect_guard();
    connect_guard(const connect_guard&) = delete;
    connect_guard& operator=(const connect_guard&) = delete;

   private:
    h2_pool& p_;
    std::string key_;
  };

  /// What ALPN said the last time for `key`: the upstream speaks h2 (true) or not (false).
  std::optional<bool> speaks_h2(std::string_view key) const;
  void remember(const std::string& key, bool h2) { alpn_[key] = h2; }

 private:
  void shutdown() override;
  void arm_sweep();
  void sweep();
  std::unique_ptr<asio::steady_timer> timer_;  // the sweep, while a client watches retirement
  bool sweeping_ = false;
  struct pending {
    std::size_t connects = 0;
    std::unique_ptr<asio::steady_timer> done;  // waiters park on it; cancelled per connect
  };
  // Looked up by string_view (transparent hash): no key string is made per request.
  struct key_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  template <class V>
  using by_key = std::unordered_map<std::string, V, key_hash, std::equal_to<>>;
  by_key<std::vector<std::shared_ptr<h2_client>>> clients_;
  by_key<bool> alpn_;
  by_key<pending> pending_;
};

class connector;
struct h1_options;

/// The pool policy of one HTTP/2 attempt (h2_pooling.cpp): a pooled connection of `key` with
/// room for one more stream, other than `avoid`; else the connection another request is
/// making; else a new one (TLS with ALPN per `mode`, then the upstream's SETTINGS awaited
/// before it takes requests). `used` says which connection the attempt went on.
struct h2_attempt {
  /// Unset when ALPN (`automatic`) chose HTTP/1.1, now or before: the connection made, if
  /// any, was given to the HTTP/1.1 pool.
  std::optional<round_trip_result> result;
  const h2_client* used = nullptr;
};
struct h2_policy {
  http2_mode mode = http2_mode::automatic;
  std::uint32_t max_concurrent_streams = 100;
  std::chrono::milliseconds idle_timeout{90'000};
};
/// A connection it makes watches `retired` (its endpoint's, when load balanced).
asio::awaitable<h2_attempt> h2_pooled_round_trip(outbound_request& req, const std::string& key,
                                                 connector& connect, const h2_policy& policy,
                                                 const h1_options& h1, const h2_client* avoid,
                                                 const retired_flag* retired);

}  // namespace trafficcop::upstream
