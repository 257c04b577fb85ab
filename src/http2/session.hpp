// SPDX-License-Identifier: MIT
// What both ends of HTTP/2 share: an nghttp2 session driven over a socket (or TLS) by two
// coroutines, and the per-stream byte queues that flow control runs through.
//
// nghttp2 is sans-I/O: bytes read from the socket go in with mem_recv (callbacks fire inside
// it), frames to send come out of mem_send. One coroutine reads and feeds, another drains and
// writes; everything else (handlers on the server, callers on the client) only queues work in
// the session and calls want_write(). All of it runs on one worker thread.
//
// Flow control is manual (NO_AUTO_WINDOW_UPDATE): received DATA is acknowledged only when the
// consumer reads it (inbound::read), so a slow consumer stops the peer after one window.
// Outbound bytes wait in an outbound queue the data provider pulls from; the producer waits
// when the queue is over its bound, so a peer that never opens its window stops the producer.
#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/stream_io.hpp"
#include "core/watchdog.hpp"
#include "trafficcop/http.hpp"

namespace trafficcop::h2 {

/// Wakes one coroutine waiting for a condition that another changes (same thread). The waiter
/// checks its condition, then waits; the changer calls notify(). Nothing is lost between the
/// check and the wait because nothing else runs in between.
class event {
 public:
  explicit event(const asio::any_io_executor& ex) : t_(ex) {}
  void notify() noexcept { t_.cancel(); }
  /// True when woken (or cancelled), false when `timeout` (0 = none) passed first.
  asio::awaitable<bool> wait(std::chrono::milliseconds timeout = {});

 private:
  asio::steady_timer t_;
};

/// Bytes received on a stream, waiting for the consumer.
struct inbound {
  std::string buf;
  std::size_t off = 0;
  bool ended = false;  // END_STREAM seen; what is in buf is the rest
  error_code failed;   // the stream was reset or the connection lost
  std::size_t unread() const noexcept { return buf.size() - off; }
  /// Takes up to `n` bytes into `out`; returns how many.
  std::size_t take(char* out, std::size_t n) noexcept;
};

/// Drops the consumed front of a queue that is read from the front while it is appended to:
/// without this a stream that never runs dry would keep every byte it ever carried.
void compact(std::string& buf, std::size_t& off) noexcept;

/// Bytes queued to send on a stream; the data provider takes them.
struct outbound {
  std::string buf;
  std::size_t off = 0;
  bool ended = false;                   // no more bytes will be queued
  bool deferred = false;                // the provider said DEFERRED: resume_data() when bytes come
  const header_map* trailer = nullptr;  // sent as HEADERS after the data, if non-empty
  event* room = nullptr;    // notified when the provider took bytes (a producer may wait)
  std::uint64_t taken = 0;  // bytes the provider has taken so far: progress
  std::size_t queued() const noexcept { return buf.size() - off; }
};

/// Queue bound per stream before a producer waits (a window's worth in flight, about).
inline constexpr std::size_t outbound_high = 256 * 1024;

/// Field lines for nghttp2_submit_*: views into strings that live until the call returns
/// (nghttp2 copies them, no NO_COPY flags). One per thread, reused (scratch()): its storage
/// stays, so a head costs no allocation; fill it and submit without awaiting in between.
class nv_list {
 public:
  static nv_list& scratch() noexcept;  // cleared
  void add(std::string_view name, std::string_view value);
  /// Adds `h`'s fields as HTTP/2 allows them (RFC 9113 §8.2.2): names lower-cased (kept in
  /// this list's arena), connection-specific fields and TE other than "trailers" left out;
  /// with `trailer`, also the fields a trailer section must not carry (RFC 9110 §6.5.1).
  void add_fields(const header_map& h, bool trailer = false);
  nghttp2_nv* data() noexcept { return nv_.data(); }
  std::size_t size() const noexcept { return nv_.size(); }
  void clear() noexcept {
    nv_.clear();
    names_.clear();
  }

 private:
  std::vector<nghttp2_nv> nv_;
  std::string names_;  // lower-cased names; reserved whole before the views are taken
};

/// A session's transport and its two loops. Subclasses make the nghttp2 session (server or
/// client callbacks) and own the streams.
class session {
 public:
  session(asio::ip::tcp::socket& sock, io::tls_stream* tls,
          std::chrono::milliseconds write_timeout);
  virtual ~session();
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  nghttp2_session* ng() const noexcept { return ng_; }
  /// Frames are queued: wake the writer.
  void want_write() noexcept { write_ev_.notify(); }
  /// Sends the DATA of a deferred stream again once its queue has bytes (or ended).
  void resume(std::int32_t stream_id, outbound& out);
  /// Marks `n` received bytes of `stream_id` consumed: opens the windows again.
  void consume(std::int32_t stream_id, std::size_t n);
  /// Ends the session with GOAWAY(`code`): the writer flushes it, then the loops stop.
  void terminate(std::uint32_t code);
  /// The socket is done (error, timeout, or the end of the session): both loops stop. The
  /// owner closes it.
  void close_socket() noexcept;
  bool closed() const noexcept { return closed_; }

  /// nghttp2's data provider source for `out`; the read callback below serves it.
  static nghttp2_data_provider provider(outbound& out);

 protected:
  /// Feeds `bytes` to nghttp2; false when the session must end (the error is logged).
  bool feed(std::string_view bytes);
  /// Reads and feeds until the session or the socket ends. `idle` bounds a read while
  /// idle_check() says nothing is in flight (0 = unbounded); expiry calls on_idle().
  asio::awaitable<void> read_loop(std::chrono::milliseconds idle);
  /// Sends what nghttp2 has queued until the session has nothing left to do.
  asio::awaitable<void> write_loop();
  /// Runs after each successful feed, outside nghttp2's callbacks: work the callbacks queued
  /// (starting handlers) must not run inside mem_recv.
  virtual void after_feed() {}
  virtual bool idle_check() const noexcept { return false; }
  /// The idle deadline follows idle_check(): call when streams come or go.
  void idle_changed();
  /// Both loops have ended; `event` for the owner to wait on.
  bool loops_done() const noexcept { return !reading_ && !writing_; }
  event done_ev_;

  asio::ip::tcp::socket& sock_;
  io::tls_stream* tls_;
  nghttp2_session* ng_ = nullptr;
  bool reading_ = false;
  bool writing_ = false;
  bool peer_left_ = false;  // the read side saw EOF or an error
  bool failed_ = false;     // we ended the session with an error GOAWAY
  /// Where reads land; the owner may lend a buffer it has (else one is made).
  asio::mutable_buffer read_buf_;

 private:
  static ssize_t read_data(nghttp2_session*, std::int32_t stream_id, std::uint8_t* buf,
                           std::size_t length, std::uint32_t* flags, nghttp2_data_source* src,
                           void* user);
  bool finished() const noexcept;

  void on_idle();

  event write_ev_;
  std::chrono::milliseconds write_timeout_;
  std::chrono::milliseconds idle_{0};
  watchdog read_wd_;
  watchdog write_wd_;
  bool closed_ = false;
  std::string wbuf_;
  std::unique_ptr<char[]> rbuf_;
};

}  // namespace trafficcop::h2
