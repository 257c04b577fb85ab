// SPDX-License-Identifier: MIT
// The downstream HTTP/2 session (h2_session.hpp): its run, drain and close, a handler
// coroutine per stream, and the stream's body reader and response writer. The nghttp2
// callbacks and abuse limits are in h2_callbacks.cpp.
#include "server/h2_server.hpp"

#include <algorithm>
#include <memory>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>

#include "core/failures.hpp"
#include "core/log.hpp"
#include "core/stream_io.hpp"
#include "http/rules.hpp"
#include "server/h2_session.hpp"
#include "server/request_access.hpp"
#include "trafficcop/error.hpp"

namespace trafficcop::detail {
namespace {

using clock = std::chrono::steady_clock;
using stream = h2s::stream;

/// Streams of one connection kept for the next ones (see stream::reset), at most this many.
constexpr std::size_t spare_streams = 32;

}  // namespace

namespace {

// --- the request body, pulled by the handler ------------------------------------------------

class h2_body final : public body_reader {
 public:
  explicit h2_body(stream& st) : st_(st) {}

  asio::awaitable<read_result> read(asio::mutable_buffer out) override {
    auto& in = st_.in;
    if (out.size() == 0) co_return read_result{asio::error::invalid_argument, 0};
    if (!st_.continue_sent && !st_.head_sent && !in.ended && in.unread() == 0 &&
        st_.req.header.has_token("expect", "100-continue")) {
      st_.continue_sent = true;  // RFC 9110 §10.1.1, as on HTTP/1.1 (spec 23)
      header_map none;
      st_.conn.submit_head(st_, 100, none, false);
    }
    for (;;) {
      if (in.unread() > 0) {
        std::size_t n = in.take(static_cast<char*>(out.data()), out.size());
        st_.conn.consume(st_.id, n);  // the client may send this much more
        co_return read_result{{}, n};
      }
      if (in.failed) co_return read_result{in.failed, 0};
      if (in.ended) co_return read_result{};
      if (st_.gone) co_return read_result{make_error_code(errc::client_gone), 0};
      bool woke = co_await st_.ev.wait(st_.conn.opts().read_body_timeout);
      if (io::cancelled(co_await asio::this_coro::cancellation_state))
        co_return read_result{asio::error::operation_aborted, 0};  // the reader gave up
      if (!woke && in.unread() == 0 && !in.ended && !in.failed && !st_.gone)
        co_return read_result{make_error_code(errc::read_body_timeout), 0};
    }
  }
  bool ready() const noexcept override { return st_.in.unread() > 0 || st_.in.ended; }

 private:
  stream& st_;
};

// --- the response writer --------------------------------------------------------------------

class h2_writer final : public response_writer {
 public:
  explicit h2_writer(stream& st) : st_(st) {}

  header_map& header() override { return st_.res_header; }
  header_map& trailer() override { return st_.res_trailer; }
  int status() const noexcept override { return status_; }
  bool head_sent() const noexcept override { return st_.head_sent; }
  std::uint64_t bytes_written() const noexcept override { return bytes_; }
  log_fields& log() override { return st_.log; }
  byte_stream* hijack() override { return nullptr; }  // no protocol switch over HTTP/2

  asio::awaitable<error_code> write_header(int status) override {
    if (aborted_ || st_.gone) co_return asio::error::operation_aborted;
    if (status < 100 || status > 999) co_return asio::error::invalid_argument;
    if (status_ != 0) co_return asio::error::already_started;
    if (status == 101) co_return asio::error::operation_not_supported;  // RFC 9113 §8.6
    if (status < 200) {
      if (status == 100 && st_.continue_sent) co_return error_code{};
      st_.continue_sent = st_.continue_sent || status == 100;
      header_map h = st_.res_header;
      h.erase("content-length");
      st_.conn.submit_head(st_, status, h, false);
      co_return error_code{};
    }
    status_ = status;
    co_return error_code{};
  }

  asio::awaitable<error_code> write(asio::const_buffer data) override {
    if (aborted_ || st_.gone) co_return asio::error::operation_aborted;
    if (!st_.head_sent) commit_head(false);
    if (!has_body_ || data.size() == 0) co_return error_code{};
    error_code overflow;
    if (declared_) {
      if (data.size() > remaining_) {
        data = asio::buffer(data.data(), remaining_);  // never more than declared
        overflow = asio::error::message_size;
      }
      remaining_ -= data.size();
    }
    auto& out = st_.out;
    out.buf.append(static_cast<const char*>(data.data()), data.size());
    bytes_ += data.size();
    st_.conn.resume(st_.id, out);
    // Back-pressure: past the bound, wait for the client's window to take bytes.
    while (out.queued() > h2::outbound_high) {
      if (st_.gone || aborted_) co_return asio::error::operation_aborted;
      bool woke = co_await st_.room.wait(st_.conn.opts().idle_timeout);
      if (io::cancelled(co_await asio::this_coro::cancellation_state))
        co_return asio::error::operation_aborted;
      if (!woke && out.queued() > h2::outbound_high && !st_.gone) {
        // The client never opened its window: give the stream up (docs/http2.md).
        st_.log.error = "write to client: flow-control window stalled";
        aborted_ = true;
        st_.conn.reset(st_, NGHTTP2_CANCEL);
        co_return asio::error::timed_out;
      }
    }
    co_return overflow;
  }

  asio::awaitable<error_code> flush() override {
    if (aborted_ || st_.gone) co_return asio::error::operation_aborted;
    if (!st_.head_sent) commit_head(false);
    st_.conn.want_write();
    co_return error_code{};
  }

  void abort() override {
    if (aborted_) return;
    aborted_ = true;
    st_.conn.reset(st_, NGHTTP2_INTERNAL_ERROR);
  }

  /// After the handler: the head if not sent, the end of the body and the trailers.
  void finish() {
    if (aborted_ || st_.gone) return;
    if (declared_ && remaining_ > 0 && st_.head_sent) {
      // Fewer bytes than Content-Length promised: the client must see a failure (spec 47).
      if (st_.log.error.empty()) st_.log.error = "response body shorter than Content-Length";
      abort();
      return;
    }
    st_.out.ended = true;
    if (!st_.head_sent) {
      if (status_ == 0) status_ = 200;
      commit_head(true);
      if (declared_ && remaining_ > 0) {
        if (st_.log.error.empty()) st_.log.error = "response body shorter than Content-Length";
        abort();
      }
      return;
    }
    st_.conn.resume(st_.id, st_.out);
  }

 private:
  void commit_head(bool last) {
    if (status_ == 0) status_ = 200;
    auto& h = st_.res_header;
    has_body_ = status_ != 204 && status_ != 304 && st_.req.method != "HEAD";
    if (status_ == 204) h.erase("content-length");
    if (auto cl = h.get("content-length"); cl && has_body_) {
      declared_ = parse_length(*cl);
      if (!declared_) h.erase("content-length");
    }
    // No DATA at all when there is no body and nothing else to come.
    bool end = !has_body_ || (last && st_.out.queued() == 0 && st_.res_trailer.empty() &&
                              !(declared_ && remaining_ > 0));
    st_.out.trailer = &st_.res_trailer;
    if (end) st_.out.ended = true;  // the stream's end goes with the head: not a reset later
    st_.conn.submit_head(st_, status_, h, end);
  }

  bool parse_length(std::string_view v) {
    auto n = http::parse_content_length(v);
    if (n) remaining_ = *n;
    return n.has_value();
  }

  stream& st_;
  int status_ = 0;
  bool has_body_ = true;
  bool declared_ = false;
  bool aborted_ = false;
  std::uint64_t remaining_ = 0;
  std::uint64_t bytes_ = 0;
};

}  // namespace

// --- the session ----------------------------------------------------------------------------

h2_connection::~h2_connection() {
  // nghttp2 is deleted by the base; its stream user data must not outlive it.
  if (ng_) {
    nghttp2_session_del(ng_);
    ng_ = nullptr;
  }
}

bool h2_connection::init() {
  nghttp2_session_callbacks* cb = nullptr;
  if (nghttp2_session_callbacks_new(&cb) != 0) return false;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);  // windows open as handlers read
  nghttp2_option_set_max_continuations(opt, 8);      // CONTINUATION flood (docs/http2.md)
  nghttp2_option_set_max_outbound_ack(opt, 1000);    // SETTINGS / PING floods
  nghttp2_option_set_max_settings(opt, 32);
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
  int rv = nghttp2_session_server_new2(&ng_, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0) return false;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, cfg_.initial_window_size},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<std::uint32_t>(header_limit())},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
  };
  nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, iv, std::size(iv));
  if (cfg_.connection_window_size > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE)
    nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0,
                                          static_cast<std::int32_t>(cfg_.connection_window_size));
  return true;
}

asio::awaitable<void> h2_connection::run(bool draining) {
  if (!init()) co_return;
  // The stream's read buffer is idle from now on: reads land there.
  pump_ = std::make_unique<h2::socket_pump>(*this, io_.socket(), io_.tls(), opts_.idle_timeout,
                                            io_.buffer());
  auto ex = co_await asio::this_coro::executor;
  // The preface and whatever followed it may already be in the connection's buffer.
  bool ok = true;
  if (auto pending = io_.pending(); !pending.empty()) {
    ok = feed(pending);
    io_.consume(pending.size());
  }
  if (ok) pump_->will_read();  // before the writer starts: it stops once nothing is read
  asio::co_spawn(ex, pump_->write_loop(), log_failure{"HTTP/2 server write loop"});
  // Accepted before a drain began and still in its TLS handshake or preface then: the drain
  // reached the HTTP/1 side only. GOAWAY now, as the connections that were already HTTP/2.
  if (ok && draining) drain();
  if (ok) co_await pump_->read_loop(opts_.idle_timeout);
  // The reader is done: the peer left, the session ended, or the connection failed.
  co_await pump_->writer_done();
  peer_gone();
  while (running_ > 0) co_await done_ev_.wait();
  // A GOAWAY we sent (an error, a flood, drain) must reach a client that is still sending.
  // After an error GOAWAY the client may still be sending (a flood): up to a second of it is
  // read and dropped so that the GOAWAY is not destroyed by a reset. A session that ended
  // normally closes at once.
  if (failed() && io_.is_open() && !pump_->peer_left()) co_await io_.linger(16 * 1024 * 1024);
}

void h2_connection::peer_gone() {
  close();
  fail_all(make_error_code(errc::client_gone));
}

void h2_connection::drain() {
  // RFC 9113 §6.8: first a GOAWAY naming the highest stream id, so that requests the client
  // is sending right now are still taken; one round trip later (the PING's answer) the final
  // GOAWAY with the last stream processed.
  if (draining_ || closed()) return;
  draining_ = true;
  nghttp2_submit_shutdown_notice(ng_);
  nghttp2_submit_ping(ng_, NGHTTP2_FLAG_NONE, nullptr);
  want_write();
}

void h2_connection::force_close() {
  draining_ = true;
  fail_all(make_error_code(errc::client_gone));
  close();
}

void h2_connection::close_started_before(clock::time_point t) {
  if (closed()) return;
  for (auto& st : streams_) {
    if (!st->running || st->gone || st->req.received_at >= t) continue;
    // As a reset by the client (on_stream_close): this stream's handler is cancelled.
    st->gone = true;
    if (!st->in.ended && !st->in.failed) st->in.failed = make_error_code(errc::client_gone);
    st->ev.notify();
    st->room.notify();
    st->cancel.emit(asio::cancellation_type::terminal);
    reset(*st, NGHTTP2_CANCEL);
  }
}

void h2_connection::fail_all(error_code ec) {
  for (auto& st : streams_) {
    if (st->gone) continue;
    st->gone = true;
    if (!st->in.ended && !st->in.failed) st->in.failed = ec;
    st->ev.notify();
    st->room.notify();
    if (st->running) st->cancel.emit(asio::cancellation_type::terminal);
  }
}

void h2_connection::submit_head(stream& st, int status, const header_map& h, bool end) {
  if (st.closed || closed()) return;
  auto& nv = h2::nv_list::scratch();
  char code[4];
  std::snprintf(code, sizeof code, "%03d", status % 1000);
  nv.add(":status", std::string_view(code, 3));
  nv.add_fields(h);
  // The listener's HSTS on final responses; the view stays valid: the connection holds the
  // tls_server, and nghttp2 copies the list before submit returns.
  if (auto hsts = status >= 200 ? io_.hsts_value(h) : std::string_view(); !hsts.empty())
    nv.add("strict-transport-security", hsts);
  if (status < 200) {
    nghttp2_submit_headers(ng_, NGHTTP2_FLAG_NONE, st.id, nullptr, nv.data(), nv.size(), nullptr);
  } else {
    st.head_sent = true;
    auto prov = h2::session::provider(st.out);
    nghttp2_submit_response(ng_, st.id, nv.data(), nv.size(), end ? nullptr : &prov);
  }
  want_write();
}

void h2_connection::reset(stream& st, std::uint32_t code) {
  if (!st.closed && !closed()) nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, st.id, code);
  want_write();
}

void h2_connection::start(stream& st) {
  request& req = st.req;
  req.version = 20;
  req.received_at = clock::now();
  io_.set_client(req, opts_.trusted_proxies);  // remote_addr, peer_addr, forwarded_trusted
  req.local_addr = io_.local();
  req.listener = listener_;
  req.tls = io_.is_tls();
  req.tls_client = io_.tls_client();
  req.tls_version = io_.tls_version();
  request_access::set_client_gone(req, &st.gone);
  if (auto h = req.header.get("host")) {
    // RFC 9113 §8.3.1: a Host naming another entity than :authority makes it malformed.
    if (req.host.empty())
      req.host.assign(*h);
    else if (!iequals(*h, req.host) || req.header.joined("host").size() != h->size())
      st.bad = "Host differs from :authority";
  }
  // As on HTTP/1.1: a valid uri-host [":" port], and routes see the normalised path.
  if (!st.bad && !req.host.empty() && !http::is_valid_host(req.host)) st.bad = "invalid host";
  if (!st.bad && req.host.empty() && req.header.contains("host")) st.bad = "empty Host";
  req.raw_target.assign(req.target);
  if (!st.bad && !http::normalize_target(req.target)) st.bad = "invalid path";
  // RFC 9113 §8.2.3: cookie crumbs become one field for HTTP/1.1 semantics.
  if (req.header.size() > 1) {
    std::string cookies = req.header.joined("cookie");
    if (!cookies.empty()) {
      std::size_t pos = 0;
      while ((pos = cookies.find(", ", pos)) != std::string::npos) cookies.replace(pos, 2, "; ");
      req.header.set("cookie", cookies);
    }
  }
  auto rid = req.header.get("x-request-id");
  if (rid && !rid->empty() && rid->size() <= 128 && http::is_token(*rid))
    req.id.assign(*rid);
  else
    w_.make_request_id(req.id);
  if (auto cl = req.header.get("content-length")) {
    // nghttp2 has checked it is digits (else the stream was reset as malformed).
    req.content_length = static_cast<std::int64_t>(http::parse_content_length(*cl).value_or(0));
  } else {
    // END_STREAM with the head: no body. The body may also have arrived whole already.
    req.content_length = st.in.ended && st.in.unread() == 0 ? 0 : -1;
  }
  st.running = true;
  ++running_;
  auto self_stream = &st;
  asio::co_spawn(
      executor(), run_stream(st),
      asio::bind_cancellation_slot(st.cancel.slot(), [this, self_stream](std::exception_ptr e) {
        note_coroutine_failure("HTTP/2 stream", e);  // a handler's own throw is caught inside
        stream_done(*self_stream);
      }));
}

asio::awaitable<void> h2_connection::run_stream(stream& st) {
  co_await asio::this_coro::throw_if_cancelled(false);
  h2_body body(st);
  st.req.body = &body;
  h2_writer w(st);
  auto& opts = opts_;
  if (st.too_large) {
    co_await write_text(w, 431, "Request Header Fields Too Large\n");
  } else if (st.bad) {
    st.log.error = st.bad;
    co_await write_text(w, 400, "Bad Request\n");
  } else if (opts.max_body_bytes > 0 && st.req.content_length > 0 &&
             static_cast<std::uint64_t>(st.req.content_length) > opts.max_body_bytes) {
    co_await write_text(w, 413, "Content Too Large\n");
  } else if (st.req.method == "CONNECT") {
    co_await write_text(w, 405, "Method Not Allowed\n");  // no tunnels (RFC 9113 §8.5)
  } else {
    bool threw = false;
    try {
      co_await w_.handle(w, st.req);
    } catch (const std::exception& e) {
      log::error("handler threw: {}", e.what());
      st.log.error = std::string("handler threw: ") + e.what();
      threw = true;
    }
    if (threw) {
      if (!w.head_sent()) {
        w.header().clear();
        co_await write_text(w, 500, "Internal Server Error\n");
      } else {
        w.abort();
      }
    }
  }
  w.finish();
  st.finished = true;
  st.req.body = nullptr;
  // The response may still wait for the client's window (up to the queue bound): that wait is
  // bounded like a write's, else a client that never opens it holds the stream for ever.
  auto idle = opts_.idle_timeout;
  while (!st.closed && !st.gone && st.out.queued() > 0) {
    auto taken = st.out.taken;
    bool woke = co_await st.room.wait(idle);
    if (!woke && st.out.taken == taken && !st.closed && !st.gone) {
      if (st.log.error.empty()) st.log.error = "write to client: flow-control window stalled";
      reset(st, NGHTTP2_CANCEL);
      break;
    }
  }
}

void h2_connection::after_feed() {
  // Handlers start here, not inside nghttp2's callbacks: co_spawn may run them inline.
  for (std::size_t i = 0; i < to_start_.size(); ++i) {
    stream* st = by_id(to_start_[i]);
    if (st && !st->closed && !st->running) start(*st);
  }
  to_start_.clear();
}

void h2_connection::stream_done(stream& st) {
  st.running = false;
  st.finished = true;
  if (!st.in.ended && st.in.unread() > 0 && !closed()) {
    consume(st.id, st.in.unread());  // nobody will read the rest
    st.in.buf.clear();
    st.in.off = 0;
  }
  --running_;
  if (st.closed) release(st);
  done_ev_.notify();
}

void h2_connection::release(stream& st) {
  // Bytes received but never read still count against the connection window.
  if (st.in.unread() > 0 && !closed()) nghttp2_session_consume_connection(ng_, st.in.unread());
  nghttp2_session_set_stream_user_data(ng_, st.id, nullptr);  // if nghttp2 still keeps it
  for (std::size_t i = 0; i < streams_.size(); ++i) {
    if (streams_[i].get() != &st) continue;
    auto p = std::move(streams_[i]);
    streams_[i] = std::move(streams_.back());
    streams_.pop_back();
    if (spare_.size() < spare_streams) spare_.push_back(std::move(p));
    break;
  }
  if (streams_.empty()) idle_changed();
}

// --- entry points ---------------------------------------------------------------------------

asio::awaitable<void> serve_http2(client_stream& io, worker& w, std::size_t listener,
                                  const listener_http2& cfg, bool draining,
                                  client_session*& active) {
  h2_connection h(io, w, listener, cfg);
  active = &h;
  co_await h.run(draining);
  active = nullptr;
}

}  // namespace trafficcop::detail
