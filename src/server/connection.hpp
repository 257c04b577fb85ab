// SPDX-License-Identifier: MIT
// One downstream connection, from accept to close: the thin owner of its client_stream and of
// the session that speaks HTTP on it.
//
//   accept → [PROXY header] → [TLS handshake] → pick the protocol (ALPN h2, or the h2c
//   preface) → run the HTTP/1.1 session (http1_session.hpp) or the HTTP/2 one (h2_server.hpp)
//   → close.
// The worker's calls (drain, force close, close what started before a reload, the hang-up
// sweep) go to the active session (client_session.hpp); before one runs, the connection
// answers them itself.
#pragma once

#include <memory>
#include <optional>

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "server/client_session.hpp"
#include "server/client_stream.hpp"
#include "server/http1_session.hpp"
#include "server/worker.hpp"
#include "trafficcop/server.hpp"

namespace trafficcop::detail {

struct worker;
class tls_server;

class connection : public std::enable_shared_from_this<connection> {
 public:
  /// `remote`/`local`: the addresses if the caller knows them (from accept and the listener),
  /// which saves a system call each; empty ones are asked of the socket.
  /// `tls`: the listener's certificates (the handshake runs first), or null for plain TCP.
  /// `http2`: the listener's HTTP/2 settings (ALPN h2 on TLS, prior knowledge if h2c).
  /// `listener`: the listener's id (request::listener), counters and PROXY protocol setting.
  connection(asio::ip::tcp::socket sock, worker& w, const asio::ip::tcp::endpoint& remote = {},
             const asio::ip::tcp::endpoint& local = {}, std::shared_ptr<tls_server> tls = nullptr,
             const listener_http2* http2 = nullptr, listener_ref listener = {});
  ~connection();

  asio::awaitable<void> run();
  /// The id of the listener it came on (listener_ref::id).
  std::size_t listener_id() const noexcept { return listener_; }
  /// As client_session (client_session.hpp), forwarded to the active session.
  void drain();
  void force_close();
  void close_started_before(std::chrono::steady_clock::time_point t);
  /// The worker's hang-up sweep (worker::sweep_watches): true while a watch is still wanted.
  bool sweep_watch(std::uint64_t tick) { return session_ && session_->sweep_watch(tick); }

  /// Terminal cancellation of the connection's coroutine (server.cpp binds it): the client
  /// hung up, or the drain deadline passed.
  asio::cancellation_signal cancel_signal;

 private:
  /// proxy_protocol listeners: reads the PROXY header before anything else; false (close)
  /// without a valid one (proxy_header.cpp). A header naming the client sets the addresses.
  asio::awaitable<bool> read_proxy_header();
  /// True if the client speaks HTTP/2: ALPN chose h2, or (h2c) it sent the preface.
  asio::awaitable<bool> wants_http2();

  worker& w_;
  const server_options& opts_;
  std::unique_ptr<http1_session::scratch> s_;  // recycled; declared before io_, which uses buf
  client_stream io_;
  const listener_http2* http2_;  // null: HTTP/1.1 only
  std::size_t listener_;         // listener_ref::id
  listener_stats* listener_stats_;
  bool proxy_protocol_;
  bool draining_ = false;
  std::optional<http1_session> h1_;    // a member: a pending hang-up watch holds the owner
  client_session* session_ = nullptr;  // the active session, if any
};

}  // namespace trafficcop::detail
