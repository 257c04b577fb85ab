// SPDX-License-Identifier: MIT
// The downstream HTTP/2 session's class and its per-stream state, shared by h2_server.cpp
// (the session, the handlers' body reader and response writer) and h2_callbacks.cpp (nghttp2's
// callbacks and the abuse limits of docs/http2.md). Internal to src/server: not an API.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include <boost/asio/cancellation_signal.hpp>

#include "http2/session.hpp"
#include "http2/socket_pump.hpp"
#include "server/client_session.hpp"
#include "server/client_stream.hpp"
#include "server/worker.hpp"
#include "trafficcop/http.hpp"
#include "trafficcop/server.hpp"

namespace trafficcop::detail {

class h2_connection;

namespace h2s {

/// One request stream: its request, response state and byte queues. Kept for reuse.
struct stream {
  stream(h2_connection& s, std::int32_t i, const asio::any_io_executor& ex)
      : conn(s), id(i), ev(ex), room(ex) {
    out.room = &room;
  }
  h2_connection& conn;
  std::int32_t id;
  request req;
  header_map res_header;
  header_map res_trailer;
  response_writer::log_fields log;
  h2::inbound in;
  h2::outbound out;
  // Two events: the body reader and the writer may wait at once (a proxy streaming both ways).
  h2::event ev;    // body bytes, the body's end, the stream's end
  h2::event room;  // the response queue went below its bound, or the stream ended
  asio::cancellation_signal cancel;
  std::size_t header_bytes = 0;
  bool too_large = false;
  const char* bad = nullptr;  // malformed beyond what nghttp2 checks (why): answered 400
  bool headers_done = false;  // the request head is complete; later HEADERS are trailers
  bool running = false;       // the handler coroutine has not returned
  bool finished = false;      // the handler returned: unread body bytes are dropped
  bool closed = false;        // nghttp2 closed the stream
  bool gone = false;          // reset by the client, or the connection lost: cancel
  bool continue_sent = false;
  bool head_sent = false;
  std::uint64_t received = 0;

  /// Ready for stream `i`: everything cleared, storage (strings, maps, buffers) kept.
  void reset(std::int32_t i) {
    id = i;
    req.method.clear();
    req.target.clear();
    req.header.clear();
    req.host.clear();
    req.trailer.clear();
    req.content_length = 0;
    req.body = nullptr;
    res_header.clear();
    res_trailer.clear();
    log.clear();
    in.buf.clear();
    in.off = 0;
    in.ended = false;
    in.failed = {};
    out.buf.clear();
    out.off = 0;
    out.ended = out.deferred = false;
    out.trailer = nullptr;
    out.taken = 0;
    header_bytes = 0;
    bad = nullptr;
    too_large = headers_done = running = finished = closed = gone = false;
    continue_sent = head_sent = false;
    received = 0;
  }
};

}  // namespace h2s

class h2_connection final : public h2::session, public client_session {
 public:
  using clock = std::chrono::steady_clock;
  using stream = h2s::stream;

  /// The session of `io`, on its executor. Nothing is read or written until run(), or, in
  /// memory, open(). Of `io` the session uses its executor, its read buffer (run() only) and
  /// the request facts (addresses, TLS facts, HSTS): an unopened client_stream serves the
  /// in-memory case.
  h2_connection(client_stream& io, worker& w, std::size_t listener, const listener_http2& cfg)
      : h2::session(io.socket().get_executor()),
        io_(io),
        w_(w),
        opts_(w.opts),
        listener_(listener),
        cfg_(cfg),
        done_ev_(executor()) {}
  ~h2_connection() override;

  /// Serves the connection through a socket_pump over `io`'s socket until it ends.
  /// `draining`: the drain began before the session started.
  asio::awaitable<void> run(bool draining);

  // --- in memory, without a socket (tests, fuzz/h2_server_fuzz.cpp). The caller feeds what
  // the client sends (feed()), pulls what the server sends (pull()), and runs the executor's
  // ready handlers (io_context::poll) in between: handlers start in feed() and run there.

  /// Makes the nghttp2 session and queues the server's SETTINGS; false if nghttp2 cannot.
  bool open() { return init(); }
  /// The client is gone (its end of the stream): the session closes and every handler is
  /// cancelled, as when the socket ends. The owner then waits for running() to reach 0
  /// before destroying the session.
  void peer_gone();
  /// Handlers that have not returned.
  std::size_t running() const noexcept { return running_; }
  void drain() override;
  void force_close() override;
  void close_started_before(clock::time_point t) override;

  // Used by the stream's reader and writer (h2_server.cpp).
  const server_options& opts() const noexcept { return opts_; }
  void submit_head(stream& st, int status, const header_map& h, bool end);
  void reset(stream& st, std::uint32_t code);

 private:
  bool init();
  stream* find(std::int32_t id) const noexcept {
    auto* st = static_cast<stream*>(nghttp2_session_get_stream_user_data(ng_, id));
    return st && st->id == id ? st : nullptr;
  }
  void start(stream& st);
  void after_feed() override;
  asio::awaitable<void> run_stream(stream& st);
  void stream_done(stream& st);
  void release(stream& st);
  void fail_all(error_code ec);
  bool idle() const noexcept override { return streams_.empty(); }
  std::size_t header_limit() const noexcept {
    return cfg_.max_header_list_size ? cfg_.max_header_list_size : opts_.max_header_bytes;
  }

  // nghttp2 callbacks (user data: this).
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame*, void*);
  static int on_header(nghttp2_session*, const nghttp2_frame*, const std::uint8_t*, std::size_t,
                       const std::uint8_t*, std::size_t, std::uint8_t, void*);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame*, void*);
  static int on_data_chunk(nghttp2_session*, std::uint8_t, std::int32_t, const std::uint8_t*,
                           std::size_t, void*);
  static int on_stream_close(nghttp2_session*, std::int32_t, std::uint32_t, void*);
  static int on_frame_send(nghttp2_session*, const nghttp2_frame*, void*);
  static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd*, void*);
  bool count_empty_frame();
  bool count_reset();

  client_stream& io_;
  worker& w_;
  const server_options& opts_;
  std::size_t listener_;  // listener_ref::id
  const listener_http2& cfg_;
  std::vector<std::unique_ptr<stream>> streams_;  // open or running; at most a few hundred
  std::vector<std::unique_ptr<stream>> spare_;    // released, for reuse
  stream* by_id(std::int32_t id) const noexcept {
    for (auto& s : streams_)
      if (s->id == id) return s.get();
    return nullptr;
  }
  std::vector<std::int32_t> to_start_;  // complete request heads, started after the feed
  std::size_t running_ = 0;
  std::size_t empty_frames_ = 0;
  clock::time_point empty_since_{};
  std::int32_t max_stream_id_ = 0;          // the highest client stream id seen in a HEADERS frame
  std::array<std::int32_t, 256> opened_{};  // the last stream ids opened, a ring
  std::size_t opened_count_ = 0;
  bool goaway_sent_ = false;  // the final GOAWAY of a drain
  std::size_t resets_ = 0;
  clock::time_point reset_since_{};
  bool draining_ = false;
  h2::event done_ev_;                      // a handler returned
  std::unique_ptr<h2::socket_pump> pump_;  // run() only
};

}  // namespace trafficcop::detail
