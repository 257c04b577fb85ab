// SPDX-License-Identifier: MIT
// Upstream connections and the per-worker keep-alive pool.
//
// The pool is an Asio service of the worker's io_context: one per thread, no locks, and it is
// destroyed (closing every idle socket) with the io_context. Idle connections are kept LIFO
// (the warmest first); a connection is checked for a peer close with a non-blocking peek when
// taken, and a sweep closes those idle too long or closed by the upstream, so no descriptor
// lingers.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/execution_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/buffered_stream.hpp"
#include "http1/parser.hpp"

namespace trafficcop::upstream {

namespace asio = boost::asio;

/// Raised when the endpoint a connection goes to left its upstream (service discovery): the
/// connection is then drained, closed when idle rather than pooled.
using retired_flag = std::shared_ptr<const std::atomic<bool>>;

/// One upstream TCP connection with its read buffer (bytes read but not yet parsed) and its
/// deadline: one watchdog per connection, reused by every exchange it carries while pooled.
struct conn {
  /// The read buffer (owned, made on the first read) starts at `read_buffer` bytes and doubles
  /// for a larger head.
  explicit conn(asio::ip::tcp::socket s, std::size_t read_buffer = 64 * 1024)
      : io(std::move(s), read_buffer) {}
  ~conn() {
    if (open_count) open_count->fetch_sub(1, std::memory_order_relaxed);
    set_idle(false);
  }
  conn(const conn&) = delete;
  conn& operator=(const conn&) = delete;
  /// The socket, TLS over it for https:// upstreams (upstream/tls.hpp), the read buffer and
  /// the deadline: the same buffered stream as the client side's (core/buffered_stream.hpp).
  io::buffered_stream io;
  std::vector<char> scratch;  // request-body copy buffer, kept across requests
  // Per-exchange state whose storage the connection keeps from one request to the next, so a
  // pooled connection carries steady traffic without allocating.
  std::string head;                              // the request head being written
  header_map res_header;                         // where the response parser puts fields
  std::optional<http1::response_parser> parser;  // one per response head: it parses one message
  std::string key;                               // the pool it belongs to, set once
  std::string peer;
  std::chrono::steady_clock::time_point expires;     // while idle
  std::chrono::steady_clock::time_point idle_since;  // when it was put back
  std::uint64_t requests = 0;
  /// The upstream's count of open connections (circuit breaker), decremented on close.
  std::atomic<std::uint32_t>* open_count = nullptr;
  /// The upstream's count of idle pooled connections (metrics), kept by set_idle().
  std::atomic<std::uint32_t>* idle_count = nullptr;
  bool idle = false;
  void set_idle(bool now) noexcept {
    if (idle == now) return;
    idle = now;
    if (idle_count) idle_count->fetch_add(now ? 1u : ~0u, std::memory_order_relaxed);
  }
  retired_flag retired;  // null for an address that never leaves

  bool drained() const noexcept { return retired && retired->load(std::memory_order_relaxed); }

  std::string_view pending() const noexcept { return io.pending(); }
  void consume(std::size_t n) noexcept { io.consume(n); }
};
using conn_ptr = std::unique_ptr<conn>;

class pool_service : public asio::execution_context::service {
 public:
  using key_type = pool_service;
  static asio::execution_context::id id;

  explicit pool_service(asio::execution_context& ctx);

  /// An idle live connection for `key`, or null. The connection is first peeked (a system
  /// call) for a close or for bytes nobody asked for (an upstream's 408 at its idle timeout).
  /// With `check` false (a request that can be retried on a fresh connection) the peek is
  /// skipped for a connection put back less than `recent` ago: under load that is every
  /// reuse, and an upstream that closes or talks unasked does so after idling, not within
  /// milliseconds of an answer.
  conn_ptr take(std::string_view key, bool check = true);
  static constexpr std::chrono::milliseconds recent{50};
  /// Keeps `c` idle in the pool named by `c->key` for `idle_timeout`, dropping the oldest
  /// beyond `max_idle`; a drained connection is closed instead.
  void put(conn_ptr c, std::chrono::milliseconds idle_timeout, std::size_t max_idle);
  /// Idle connections held now (tests).
  std::size_t idle_count() const;

 private:
  void shutdown() override;
  void arm_sweep();
  void sweep();

  struct key_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  std::unordered_map<std::string, std::vector<conn_ptr>, key_hash, std::equal_to<>> idle_;
  std::unique_ptr<asio::steady_timer> timer_;
  bool sweeping_ = false;
};

/// True if the peer has not closed and sent nothing unexpected (non-blocking peek).
bool is_idle_and_open(asio::ip::tcp::socket& s) noexcept;

}  // namespace trafficcop::upstream
