// SPDX-License-Identifier: MIT
// What both ends of HTTP/2 share: the sans-I/O session over nghttp2 (bytes in, events and
// bytes out), and the per-stream byte queues that flow control runs through.
//
// nghttp2 is sans-I/O: bytes the peer sent go in with mem_recv (feed(); callbacks fire inside
// it), frames to send come out of mem_send (pull()). No socket, no timer here: on a connection
// a socket_pump (socket_pump.hpp) reads and feeds, pulls and writes, and owns the watchdogs;
// tests and the fuzz targets feed and pull in memory. Everything else (handlers on the server,
// callers on the client) only queues work in the session and calls want_write(). All of it
// runs on one worker thread.
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

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

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

/// What carries a session's bytes, as the session sees it: socket_pump on a connection, nothing
/// in memory (tests, fuzz targets). The session calls it; it never calls back inside these.
class driver {
 public:
  /// The session was closed (close()): stop reading and writing, cancel pending I/O.
  virtual void stop() noexcept = 0;
  /// idle() may have changed (streams came or went): re-arm or disarm an idle deadline.
  virtual void idle_changed() noexcept = 0;

 protected:
  ~driver() = default;
};

/// The sans-I/O core of both ends: an nghttp2 session that takes bytes in (feed) and gives
/// bytes out (pull), with the flow-control helpers both sides use. It owns no socket and no
/// timer: a driver (socket_pump.hpp) or a test moves the bytes. Subclasses make the nghttp2
/// session (server or client callbacks) and own the streams.
class session {
 public:
  /// `ex`: where the session's events (and the subclass's coroutines) run.
  explicit session(const asio::any_io_executor& ex);
  virtual ~session();
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  nghttp2_session* ng() const noexcept { return ng_; }
  const asio::any_io_executor& executor() const noexcept { return ex_; }

  // --- bytes in, bytes out

  /// Feeds `bytes` (what the peer sent) to nghttp2; false when the session must end (the
  /// error is logged and a GOAWAY queued).
  bool feed(std::string_view bytes);
  /// Appends what nghttp2 has queued to send to `out`, whole frames, until `out` holds at
  /// least `batch` bytes or nothing is left. False on a fatal error: the session is over.
  bool pull(std::string& out, std::size_t batch);
  /// Notified when frames were queued (want_write()) or the session closed: the writer of a
  /// driver waits on it before pulling again.
  event& write_wanted() noexcept { return write_ev_; }

  // --- state

  /// Nothing more to read nor to write (or closed): the driver may stop.
  bool finished() const noexcept;
  bool wants_read() const noexcept { return ng_ && !closed_ && nghttp2_session_want_read(ng_); }
  bool wants_write() const noexcept { return ng_ && !closed_ && nghttp2_session_want_write(ng_); }
  /// The session ended itself with an error GOAWAY (a fatal error, a flood, a bad peer).
  bool failed() const noexcept { return failed_; }
  /// No stream in flight: an idle deadline may run (the driver's).
  virtual bool idle() const noexcept { return false; }
  bool closed() const noexcept { return closed_; }

  // --- what the glue and the driver call

  /// Frames are queued: wake the writer.
  void want_write() noexcept { write_ev_.notify(); }
  /// Sends the DATA of a deferred stream again once its queue has bytes (or ended).
  void resume(std::int32_t stream_id, outbound& out);
  /// Marks `n` received bytes of `stream_id` consumed: opens the windows again.
  void consume(std::int32_t stream_id, std::size_t n);
  /// Ends the session with GOAWAY(`code`): the writer flushes it, then the loops stop.
  void terminate(std::uint32_t code);
  /// The transport is done (error, timeout, or the end of the session): nothing more is
  /// read or written; the driver stops (its owner closes the socket).
  void close() noexcept;
  /// `d` drives this session from now on (null: none). It must outlive the session or be
  /// detached first.
  void attach(driver* d) noexcept { driver_ = d; }

  /// nghttp2's data provider source for `out`; the read callback below serves it.
  static nghttp2_data_provider provider(outbound& out);

 protected:
  /// Runs after each successful feed, outside nghttp2's callbacks: work the callbacks queued
  /// (starting handlers) must not run inside mem_recv.
  virtual void after_feed() {}
  /// The idle deadline follows idle(): call when streams come or go.
  void idle_changed() noexcept {
    if (driver_) driver_->idle_changed();
  }

  nghttp2_session* ng_ = nullptr;

 private:
  static ssize_t read_data(nghttp2_session*, std::int32_t stream_id, std::uint8_t* buf,
                           std::size_t length, std::uint32_t* flags, nghttp2_data_source* src,
                           void* user);

  asio::any_io_executor ex_;
  event write_ev_;
  driver* driver_ = nullptr;
  bool closed_ = false;
  bool failed_ = false;  // we ended the session with an error GOAWAY
};

}  // namespace trafficcop::h2
