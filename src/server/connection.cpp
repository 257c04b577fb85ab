// SPDX-License-Identifier: MIT
// The downstream connection: accept-time state, PROXY header (proxy_header.cpp), TLS
// handshake, the choice of protocol, and the session that runs on the stream.
#include "server/connection.hpp"

#include <boost/asio/this_coro.hpp>

#include "core/recycler.hpp"
#include "server/h2_server.hpp"
#include "server/worker.hpp"

namespace trafficcop::detail {
namespace {

constexpr std::size_t read_chunk = 16 * 1024;  // bytes asked of the socket per read

/// Recycled scratch blocks of this worker thread (http1_session::scratch): 128 x ~34 KiB per
/// worker at most.
using scratch_recycler = recycler<http1_session::scratch, 128>;

std::unique_ptr<http1_session::scratch> take_scratch(const server_options& o) {
  std::size_t want = std::max<std::size_t>(o.max_header_bytes + read_chunk, 2 * read_chunk);
  auto s = scratch_recycler::take();
  if (s->buf_size != want) {
    s->buf = std::make_unique_for_overwrite<char[]>(want);
    s->buf_size = want;
  }
  return s;
}

}  // namespace

connection::connection(asio::ip::tcp::socket sock, worker& w, const asio::ip::tcp::endpoint& remote,
                       const asio::ip::tcp::endpoint& local, std::shared_ptr<tls_server> tls,
                       const listener_http2* http2, listener_ref listener)
    : w_(w),
      opts_(w.opts),
      s_(take_scratch(w.opts)),
      io_(std::move(sock), std::move(tls), remote, local, s_->buf.get(), s_->buf_size,
          w.opts.idle_timeout),
      http2_(http2),
      listener_(listener.id),
      listener_stats_(listener.stats),
      proxy_protocol_(listener.proxy_protocol) {
  w_.open.fetch_add(1, std::memory_order_relaxed);
}

connection::~connection() {
  w_.open.fetch_sub(1, std::memory_order_relaxed);
  h1_.reset();
  scratch_recycler::give(std::move(s_));
}

void connection::drain() {
  draining_ = true;
  if (session_) return session_->drain();
  // Still in the PROXY header, the TLS handshake or the h2c preface: as a new HTTP/1.1
  // connection waiting for its first request (http1_session::drain).
  io_.deadline().arm(std::min<std::chrono::steady_clock::duration>(
      opts_.read_header_timeout, http1_session::first_request_grace));
}

void connection::force_close() {
  draining_ = true;
  if (session_) return session_->force_close();
  cancel_signal.emit(asio::cancellation_type::terminal);
  io_.close();
}

void connection::close_started_before(std::chrono::steady_clock::time_point t) {
  if (session_) session_->close_started_before(t);  // no request before a session runs
}

asio::awaitable<void> connection::run() {
  co_await asio::this_coro::throw_if_cancelled(false);
  // The PROXY header comes first, before TLS (proxy_header.cpp).
  if (proxy_protocol_ && !co_await read_proxy_header()) {
    io_.close();
    co_return;
  }
  auto& stats = *listener_stats_;
  if (io_.is_tls()) {
    bool ok = co_await io_.handshake(opts_.read_header_timeout);
    (ok ? stats.tls_ok : stats.tls_failed).fetch_add(1, std::memory_order_relaxed);
    if (!ok) {
      io_.close();
      co_return;
    }
  }
  // Open connections by protocol, from here to the end of run() (on any exit).
  struct open_while {
    std::atomic<std::uint64_t>* n;
    explicit open_while(std::atomic<std::uint64_t>& c) : n(&c) {
      n->fetch_add(1, std::memory_order_relaxed);
    }
    void move_to(std::atomic<std::uint64_t>& c) {
      n->fetch_sub(1, std::memory_order_relaxed);
      n = &c;
      n->fetch_add(1, std::memory_order_relaxed);
    }
    ~open_while() { n->fetch_sub(1, std::memory_order_relaxed); }
  } open(stats.open_http1);
  if (http2_ && co_await wants_http2()) {
    open.move_to(stats.open_http2);
    co_await serve_http2(io_, w_, listener_, *http2_, draining_, session_);
    io_.close();
    co_return;
  }
  h1_.emplace(io_, w_, listener_, cancel_signal, *s_, weak_from_this(), draining_);
  session_ = &*h1_;
  co_await h1_->run();
}

asio::awaitable<bool> connection::wants_http2() {
  if (io_.is_tls()) co_return io_.alpn_h2();
  if (!http2_->h2c) co_return false;
  // Prior knowledge: the preface is 24 bytes; read until they tell one way or the other.
  while (io_.pending().size() < h2_preface.size()) {
    auto in = io_.pending();
    if (h2_preface.substr(0, in.size()) != in) co_return false;
    if (draining_) co_return false;
    if (co_await io_.fill(opts_.read_header_timeout)) co_return false;
  }
  co_return io_.pending().substr(0, h2_preface.size()) == h2_preface;
}

}  // namespace trafficcop::detail
