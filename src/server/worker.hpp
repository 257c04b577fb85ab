// SPDX-License-Identifier: MIT
// A server worker: one thread, one io_context, its own acceptors and connections. Its
// methods (worker.cpp): request ids, the hang-up sweep, the end of a connection, memory after
// a burst, and the server's listener changes, shutdown and reload cut-off on its thread.
#pragma once

#include <atomic>
#include <list>
#include <memory>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/fd_budget.hpp"
#include "trafficcop/server.hpp"

namespace trafficcop::detail {

class connection;

/// A listener's connection counters, shared by the workers (bumped per connection, not per
/// request).
struct listener_stats {
  std::atomic<std::uint64_t> accepted{0}, open_http1{0}, open_http2{0}, tls_ok{0}, tls_failed{0};
};

/// A connection's listener: its id (request::listener; an index in server_options::listen
/// until a reload changes the listeners, see server::update_listeners), counters and PROXY
/// protocol setting. The counters outlive every connection (the server never frees them).
struct listener_ref {
  std::size_t id = 0;
  listener_stats* stats = nullptr;
  bool proxy_protocol = false;
};

/// An accepting socket of a worker and the id of its listener.
struct worker_acceptor {
  std::size_t listener;
  asio::ip::tcp::acceptor acc;
};

struct worker {
  worker(const server_options& o, const handler& h, unsigned i) : opts(o), handle(h), index(i) {}

  const server_options& opts;
  const handler& handle;
  unsigned index;
  // Declared before ioc: connections still owned by a stopped ioc's handlers touch it when
  // the ioc is destroyed.
  std::atomic<std::size_t> open{0};
  // One thread runs this context and every socket and timer on it is used from that thread
  // only (other threads just post), so the reactor's per-descriptor locks are not needed.
  asio::io_context ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  /// A list: accept loops hold references while a reload appends (on this thread only, once
  /// the worker runs).
  std::list<worker_acceptor> acceptors;
  std::unordered_set<connection*> conns;  // touched on this worker's thread only
  bool draining = false;
  /// Parked accept loops wait here while the worker is at max_connections.
  std::unique_ptr<asio::steady_timer> capacity;
  class client_limit* per_client = nullptr;  // the server's; null without the limit
  /// The worker's descriptor budget (core/fd_budget.hpp, issue 14.5): at `fd_plan.connections`
  /// open connections new ones are shed; `spare` sheds one when accept fails with EMFILE.
  fd_plan fds{SIZE_MAX, 64};
  spare_descriptor spare;
  std::uint64_t next_request = 0;
  std::uint64_t id_seed = 0;
  std::thread thread;

  /// Hang-up watches are started by a sweep every `watch_period` for connections whose handler
  /// has run at least one whole period (http1_session::start_watch). Returns the current tick.
  std::uint64_t want_watch();
  static constexpr std::chrono::milliseconds watch_period{50};
  std::unique_ptr<asio::steady_timer> watch_timer;
  std::uint64_t watch_tick = 0;
  bool watch_sweeping = false;

  /// A request id unique across workers and restarts: seed + worker + sequence, in hex.
  void make_request_id(std::string& out);
  void sweep_watches();
  /// Called when a connection ends; stops the loop once draining and nothing is left.
  void connection_done(connection* c);

  // The server's requests, each run on this worker's thread (posted by server.cpp).
  /// Listener `id` is gone: its sockets close (the new process or nobody has them); its
  /// connections finish the request in flight, then close.
  void stop_listener(std::size_t id);
  /// Graceful shutdown: acceptors close, connections drain; at `drain` the rest are
  /// force-closed, and a second later the loop stops regardless.
  void shut_down(std::chrono::milliseconds drain);
  /// At `deadline`, the requests received before `started_before` are cancelled
  /// (connection::close_started_before).
  void close_started_before(std::chrono::steady_clock::time_point started_before,
                            std::chrono::steady_clock::time_point deadline);

  /// Memory after a burst (issue 14.6, worker.cpp): the most connections open since the last
  /// trim; once `trim_after_closed` of them closed and at most half remain, the thread's caches
  /// keep `trim_keep` spares each and malloc_trim returns free pages to the kernel.
  std::size_t peak = 0;
  static constexpr std::size_t trim_after_closed = 64;
  static constexpr std::size_t trim_keep = 16;
  std::unique_ptr<asio::steady_timer> trim_timer;
  bool trim_pending = false;
  void release_memory_after_burst();
};

}  // namespace trafficcop::detail
