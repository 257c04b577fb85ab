// SPDX-License-Identifier: MIT
// The HTTP/2 upstream connection: nghttp2 client callbacks, a stream per request, the
// request-body pump, the response body reader, and the per-worker pool of such connections.
#include "upstream/h2_client.hpp"

#include <algorithm>
#include <array>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>

#include "core/failures.hpp"
#include "core/log.hpp"
#include "core/stream_io.hpp"
#include "http/rules.hpp"
#include "http2/session.hpp"
#include "http2/socket_pump.hpp"
#include "upstream/connector.hpp"

namespace trafficcop::upstream {
namespace {

using clock = std::chrono::steady_clock;
constexpr std::uint32_t stream_window = 256 * 1024;  // what an upstream may send ahead per stream

/// One request/response exchange. Shared by the connection (until nghttp2 closes the
/// stream), the response object and the body pump.
struct cstream {
  explicit cstream(const asio::any_io_executor& ex) : ev_read(ex), ev_room(ex), ev_pump(ex) {
    out.room = &ev_room;
  }
  std::int32_t id = -1;
  h2::inbound in;
  h2::outbound out;
  h2::event ev_read;  // response head, body bytes, the stream's end
  h2::event ev_room;  // the request queue went below its bound, or the stream ended
  h2::event ev_pump;  // the pump stopped
  asio::cancellation_signal pump_cancel;
  int cur_status = 0;  // of the head being received
  header_map cur;      // its fields
  std::vector<std::pair<int, header_map>> informational;
  int status = 0;
  header_map header;
  header_map trailer;
  std::size_t header_bytes = 0;
  bool head_done = false;
  bool closed = false;
  bool pumping = false;
  bool body_started = false;  // the pump read from the request body: no replay possible
  bool abandoned = false;     // the response was dropped: DATA is consumed and discarded
  bool malformed = false;
  std::uint32_t close_code = 0;
};

}  // namespace

class h2_client final : public h2::session, public std::enable_shared_from_this<h2_client> {
 public:
  /// The session of `c`, on its socket's executor. Nothing is read or written until start()
  /// (a socket_pump over `c`) or, in memory, the caller's feed() and pull(): then `c` may be
  /// unopened, only its executor and peer name are used.
  h2_client(conn_ptr c, std::uint32_t max_streams, std::chrono::milliseconds idle)
      : h2::session(c->io.socket().get_executor()),
        c_(std::move(c)),
        max_streams_(max_streams),
        idle_(idle),
        settings_ev_(executor()) {}
  ~h2_client() override {
    if (ng_) {
      nghttp2_session_del(ng_);
      ng_ = nullptr;
    }
  }

  bool init();
  /// Runs the session over its connection (a socket_pump), until the session or the socket
  /// ends; then the socket closes and the client leaves the worker's h2_pool.
  void start();
  /// The connection is over (the read side ended; in memory, the caller's end): every stream
  /// fails, waiters wake.
  void connection_lost();
  bool available() const noexcept {
    if (closed() || goaway_ || ng_ == nullptr) return false;
    auto remote = nghttp2_session_get_remote_settings(ng_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    return streams_.size() < std::min<std::uint32_t>(max_streams_, remote);
  }
  bool alive() const noexcept { return !closed() && !goaway_; }
  /// Its endpoint left the upstream: no new stream; closed (GOAWAY) once the last one ends.
  bool drained() const noexcept { return c_->drained(); }
  bool watches_retirement() const noexcept { return c_->retired != nullptr; }
  void retire() {
    goaway_ = true;
    retiring_ = true;
    if (streams_.empty()) terminate(NGHTTP2_NO_ERROR);
  }
  asio::awaitable<bool> wait_settings(std::chrono::milliseconds timeout) {
    auto deadline = clock::now() + timeout;
    while (!settings_seen_ && alive()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
      if (left.count() <= 0) break;
      co_await settings_ev_.wait(left);
    }
    if (!settings_seen_) close();  // not an HTTP/2 server, or a stuck one: give up
    co_return settings_seen_&& alive();
  }
  const std::string& peer() const noexcept { return c_->peer; }

  /// A stream refused before the upstream processed it fails with retry_class::refused.
  asio::awaitable<round_trip_result> round_trip(outbound_request& req);
  /// Nobody will read `st` any more: what it received but was not read goes back to the
  /// connection window (closed or not: else each abandoned stream shrinks the window for
  /// good, until the connection wedges), and an open stream is reset.
  void abandon(cstream& st) {
    st.abandoned = true;
    if (st.in.unread() > 0) {
      consume(st.id, st.in.unread());
      st.in.buf.clear();
      st.in.off = 0;
    }
    if (!st.closed) reset(st, NGHTTP2_CANCEL);
  }
  void reset(cstream& st, std::uint32_t code) {
    if (!st.closed && !closed()) nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, st.id, code);
    want_write();
  }
  static asio::awaitable<void> stop_pump(cstream& st) {
    if (!st.pumping) co_return;
    st.pump_cancel.emit(asio::cancellation_type::terminal);
    while (st.pumping) co_await st.ev_pump.wait();
  }
  std::size_t max_response_header_bytes = 64 * 1024;

 private:
  static asio::awaitable<void> pump(std::shared_ptr<h2_client> self, std::shared_ptr<cstream> st,
                                    body_reader* body, const header_map* trailer);
  bool idle() const noexcept override { return streams_.empty(); }
  void fail_all();
  cstream* find(std::int32_t id) const noexcept {
    return static_cast<cstream*>(nghttp2_session_get_stream_user_data(ng_, id));
  }
  static int on_header(nghttp2_session*, const nghttp2_frame*, const std::uint8_t*, std::size_t,
                       const std::uint8_t*, std::size_t, std::uint8_t, void*);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame*, void*);
  static int on_data_chunk(nghttp2_session*, std::uint8_t, std::int32_t, const std::uint8_t*,
                           std::size_t, void*);
  static int on_stream_close(nghttp2_session*, std::int32_t, std::uint32_t, void*);

  conn_ptr c_;
  std::uint32_t max_streams_;
  std::chrono::milliseconds idle_;
  std::unordered_map<std::int32_t, std::shared_ptr<cstream>> streams_;
  bool goaway_ = false;
  bool retiring_ = false;       // retire(): ends with its last stream
  bool settings_seen_ = false;  // the upstream's first SETTINGS arrived
  h2::event settings_ev_;
  std::unique_ptr<h2::socket_pump> pump_;  // start() only
};

namespace {

// --- the response, its body read from the stream --------------------------------------------

class h2_response final : public upstream_response, public body_reader {
 public:
  h2_response(std::shared_ptr<h2_client> h, std::shared_ptr<cstream> st,
              std::chrono::milliseconds timeout)
      : h_(std::move(h)), st_(std::move(st)), timeout_(timeout) {
    status = st_->status;
    header = std::move(st_->header);
    peer = h_->peer();
    content_length = -1;
    if (auto cl = header.get("content-length"))
      if (auto n = http::parse_content_length(*cl); n && *n <= INT64_MAX)
        content_length = static_cast<std::int64_t>(*n);
  }
  ~h2_response() override {
    if (st_->pumping) st_->pump_cancel.emit(asio::cancellation_type::terminal);  // see release()
    h_->abandon(*st_);
  }

  body_reader& body() override { return *this; }
  byte_stream* upgraded() override { return nullptr; }
  bool request_pending() const noexcept override { return st_->pumping; }
  asio::awaitable<void> release() override { co_await h2_client::stop_pump(*st_); }

  asio::awaitable<read_result> read(asio::mutable_buffer out) override {
    auto& in = st_->in;
    for (;;) {
      if (in.unread() > 0) {
        std::size_t n = in.take(static_cast<char*>(out.data()), out.size());
        h_->consume(st_->id, n);
        co_return read_result{{}, n};
      }
      if (in.ended) {
        trailer = std::move(st_->trailer);
        co_return read_result{};
      }
      if (st_->closed)
        co_return read_result{make_error_code(st_->close_code == NGHTTP2_PROTOCOL_ERROR
                                                  ? errc::upstream_protocol_error
                                                  : errc::upstream_closed),
                              0};
      bool woke = co_await st_->ev_read.wait(timeout_);
      if (io::cancelled(co_await asio::this_coro::cancellation_state))
        co_return read_result{asio::error::operation_aborted, 0};
      if (!woke && in.unread() == 0 && !in.ended && !st_->closed)
        co_return read_result{make_error_code(errc::upstream_timeout), 0};
    }
  }
  bool ready() const noexcept override { return st_->in.unread() > 0 || st_->in.ended; }

 private:
  std::shared_ptr<h2_client> h_;
  std::shared_ptr<cstream> st_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

// --- the connection -------------------------------------------------------------------------

bool h2_client::init() {
  nghttp2_session_callbacks* cb = nullptr;
  if (nghttp2_session_callbacks_new(&cb) != 0) return false;
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);  // windows open as the proxy reads
  nghttp2_option_set_peer_max_concurrent_streams(opt, max_streams_);
  nghttp2_option_set_max_continuations(opt, 8);
  int rv = nghttp2_session_client_new2(&ng_, cb, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0) return false;
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       static_cast<std::uint32_t>(max_response_header_bytes)},
  };
  nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, iv, std::size(iv));
  // The connection window must not be what stops streams: a few slow downstream clients, each
  // leaving a stream window unread, would otherwise stall every other stream on this
  // connection. Memory stays bounded by the stream windows.
  std::uint64_t conn_window = std::uint64_t{max_streams_} * stream_window;
  conn_window = std::clamp<std::uint64_t>(conn_window, 4u << 20, 0x7fffffffu);
  nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<std::int32_t>(conn_window));
  return true;
}

void h2_client::start() {
  auto ex = executor();
  auto self = shared_from_this();
  auto& sock = c_->io.socket();
  // Each write is bounded like an idle connection, and never by less than 30 s.
  pump_ = std::make_unique<h2::socket_pump>(*this, sock, c_->io.tls(),
                                            std::max(idle_, std::chrono::milliseconds(30'000)));
  pump_->will_read();  // before the writer starts: it stops once nothing is read any more
  asio::co_spawn(
      ex,
      [self]() -> asio::awaitable<void> {
        co_await self->pump_->read_loop(self->idle_);
        self->connection_lost();
        co_await self->pump_->writer_done();  // the GOAWAY goes out first
        error_code ignored;
        self->c_->io.socket().close(ignored);  // now, not when the last response lets go of it
        auto& ctx = asio::query(self->executor(), asio::execution::context);
        asio::use_service<h2_pool>(ctx).remove(self.get());
      },
      log_failure{"HTTP/2 client read loop"});
  asio::co_spawn(
      ex, [self]() -> asio::awaitable<void> { co_await self->pump_->write_loop(); },
      log_failure{"HTTP/2 client write loop"});
}

void h2_client::connection_lost() {
  fail_all();
  settings_ev_.notify();
}

void h2_client::fail_all() {
  goaway_ = true;
  for (auto& [id, st] : streams_) {
    st->closed = true;
    if (st->close_code == 0) st->close_code = NGHTTP2_INTERNAL_ERROR;
    st->ev_read.notify();
    st->ev_room.notify();
  }
  streams_.clear();
}

asio::awaitable<round_trip_result> h2_client::round_trip(outbound_request& req) {
  if (!alive()) {
    co_return round_trip_result{
        nullptr,
        upstream_error(errc::upstream_closed, "HTTP/2 connection closing", retry_class::refused)};
  }
  auto ex = co_await asio::this_coro::executor;
  auto st = std::make_shared<cstream>(ex);
  // The request head: pseudo-fields from the request line and Host (RFC 9113 §8.3.1).
  req.header.erase("content-length");  // framing is the transport's (RFC 9113 §8.1.1)
  auto& nv = h2::nv_list::scratch();
  std::string built;  // only without a Host field (an embedder's request)
  std::string_view authority;
  if (auto h = req.header.get("host")) {
    authority = *h;
  } else {
    built = req.host + ":" + std::to_string(req.port);
    authority = built;
  }
  std::string_view path = req.target.empty() ? std::string_view("/") : req.target;
  nv.add(":method", req.method);
  nv.add(":scheme", req.scheme);
  nv.add(":authority", authority);
  nv.add(":path", path);
  nv.add_fields(req.header);  // after the erase above: views into req.header stay put
  std::string length;
  if (req.content_length > 0) {
    length = std::to_string(req.content_length);
    nv.add("content-length", length);
  }
  bool has_body = req.content_length != 0 && req.body != nullptr;
  auto prov = h2::session::provider(st->out);
  std::int32_t id = nghttp2_submit_request(ng_, nullptr, nv.data(), nv.size(),
                                           has_body ? &prov : nullptr, st.get());
  if (id < 0) {
    bool exhausted = id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE;  // nothing was sent
    goaway_ = goaway_ || exhausted;
    co_return round_trip_result{
        nullptr, upstream_error(errc::upstream_protocol_error,
                                std::string("HTTP/2 request: ") + nghttp2_strerror(id),
                                exhausted ? retry_class::refused : retry_class::none)};
  }
  st->id = id;
  streams_[id] = st;
  if (streams_.size() == 1) idle_changed();
  want_write();
  if (has_body) {
    st->pumping = true;
    asio::co_spawn(ex, pump(shared_from_this(), st, req.body, req.trailer),
                   asio::bind_cancellation_slot(st->pump_cancel.slot(), [st](std::exception_ptr e) {
                     note_coroutine_failure("HTTP/2 client request body pump", e);
                     st->pumping = false;
                     st->ev_pump.notify();
                   }));
  }
  // Wait for the final head, passing 1xx on (spec 38).
  auto deadline = req.head_deadline().count() > 0 ? clock::now() + req.head_deadline()
                                                  : clock::time_point::max();
  std::optional<proxy_error> err;
  while (!err) {
    while (!st->informational.empty()) {
      auto info = std::move(st->informational.front());
      st->informational.erase(st->informational.begin());
      if (info.first == 101 || !req.on_informational) continue;
      if (auto ec = co_await req.on_informational(info.first, info.second))
        err = proxy_error{ec, error_source::downstream, "writing 1xx to the client"};
    }
    if (err || st->head_done) break;
    if (st->closed) {
      // RFC 9113 §8.7: a refused stream was not processed, safe to send again unless the
      // pump already consumed some of the body.
      bool refused = st->close_code == NGHTTP2_REFUSED_STREAM && !st->body_started;
      err = upstream_error(st->malformed || st->close_code == NGHTTP2_PROTOCOL_ERROR
                               ? errc::upstream_protocol_error
                               : errc::upstream_closed,
                           "HTTP/2 stream closed before the response head (" +
                               std::string(nghttp2_http2_strerror(st->close_code)) + ")",
                           refused ? retry_class::refused : retry_class::none);
      break;
    }
    if (io::cancelled(co_await asio::this_coro::cancellation_state)) {
      err = proxy_error{make_error_code(errc::client_gone), error_source::downstream,
                        "client went away"};
      break;
    }
    auto left =
        deadline == clock::time_point::max()
            ? std::chrono::milliseconds(0)
            : std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
    if (deadline != clock::time_point::max() && left.count() <= 0) {
      err = upstream_error(errc::upstream_timeout, "response header timeout");
      break;
    }
    co_await st->ev_read.wait(left);
  }
  if (err) {
    abandon(*st);
    co_await stop_pump(*st);
    co_return round_trip_result{nullptr, std::move(*err)};
  }
  co_return round_trip_result{
      std::make_unique<h2_response>(shared_from_this(), st, req.response_timeout), {}};
}

asio::awaitable<void> h2_client::pump(std::shared_ptr<h2_client> self, std::shared_ptr<cstream> st,
                                      body_reader* body, const header_map* trailer) {
  co_await asio::this_coro::throw_if_cancelled(false);
  std::array<char, 16 * 1024> buf;
  for (;;) {
    while (st->out.queued() > h2::outbound_high && !st->closed) {
      co_await st->ev_room.wait();
      if (io::cancelled(co_await asio::this_coro::cancellation_state)) co_return;
    }
    if (st->closed) co_return;
    // From the first read on, a refused stream cannot be replayed: bytes read here and then
    // dropped (the stream closed meanwhile) would be missing from the retry.
    st->body_started = true;
    auto r = co_await body->read(asio::buffer(buf));
    if (io::cancelled(co_await asio::this_coro::cancellation_state) || st->closed) co_return;
    if (r.ec) {
      self->reset(*st, NGHTTP2_CANCEL);  // the client's body failed: so does this request
      co_return;
    }
    if (r.n == 0) {
      st->out.trailer = trailer;
      st->out.ended = true;
      self->resume(st->id, st->out);
      co_return;
    }
    st->out.buf.append(buf.data(), r.n);
    self->resume(st->id, st->out);
  }
}

int h2_client::on_header(nghttp2_session*, const nghttp2_frame* f, const std::uint8_t* name,
                         std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                         std::uint8_t, void* user) {
  auto* self = static_cast<h2_client*>(user);
  cstream* st = self->find(f->hd.stream_id);
  if (!st) return 0;
  st->header_bytes += namelen + valuelen + 32;
  if (st->header_bytes > self->max_response_header_bytes) {
    st->malformed = true;
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // the stream is reset
  }
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  if (st->head_done) {
    st->trailer.add(n, v);
  } else if (n == ":status") {
    st->cur_status = 0;
    for (char c : v) st->cur_status = st->cur_status * 10 + (c - '0');  // nghttp2 checked it
    // nghttp2 checks three digits only: "003" or "700" would reach the proxy, whose writer
    // refuses them and then answers a 200 of its own. RFC 9110 §15 says 100 to 599, as the
    // HTTP/1.1 parser does: anything else is a malformed response (a 502).
    if (st->cur_status < 100 || st->cur_status > 599) {
      st->malformed = true;
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // the stream is reset
    }
  } else if (n.empty() || n.front() != ':') {
    st->cur.add(n, v);
  }
  return 0;
}

int h2_client::on_frame_recv(nghttp2_session*, const nghttp2_frame* f, void* user) {
  auto* self = static_cast<h2_client*>(user);
  if (f->hd.type == NGHTTP2_GOAWAY) {
    self->goaway_ = true;  // in-flight streams finish; new ones go to another connection
    self->settings_ev_.notify();
    return 0;
  }
  if (f->hd.type == NGHTTP2_SETTINGS && (f->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
    self->settings_seen_ = true;
    self->settings_ev_.notify();
    return 0;
  }
  if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) return 0;
  cstream* st = self->find(f->hd.stream_id);
  if (!st) return 0;
  if (f->hd.type == NGHTTP2_HEADERS && !st->head_done) {
    if (st->cur_status >= 100 && st->cur_status < 200) {
      st->informational.emplace_back(st->cur_status, std::move(st->cur));
      st->cur.clear();
    } else {
      st->status = st->cur_status;
      st->header = std::move(st->cur);
      st->head_done = true;
    }
  }
  if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) st->in.ended = true;
  st->ev_read.notify();
  return 0;
}

int h2_client::on_data_chunk(nghttp2_session*, std::uint8_t, std::int32_t id,
                             const std::uint8_t* data, std::size_t len, void* user) {
  auto* self = static_cast<h2_client*>(user);
  cstream* st = self->find(id);
  if (!st || st->abandoned) {
    self->consume(id, len);
    return 0;
  }
  st->in.buf.append(reinterpret_cast<const char*>(data), len);
  st->ev_read.notify();
  return 0;
}

int h2_client::on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t code, void* user) {
  auto* self = static_cast<h2_client*>(user);
  auto it = self->streams_.find(id);
  if (it == self->streams_.end()) return 0;
  auto st = it->second;
  st->closed = true;
  st->close_code = code;
  if (st->abandoned && st->in.unread() > 0) {
    nghttp2_session_consume_connection(self->ng_, st->in.unread());
    st->in.buf.clear();
    st->in.off = 0;
  }
  st->ev_read.notify();
  st->ev_room.notify();
  self->streams_.erase(it);
  if (self->streams_.empty() && self->retiring_)
    self->terminate(NGHTTP2_NO_ERROR);
  else if (self->streams_.empty())
    self->idle_changed();
  return 0;
}

// --- entry points and the pool --------------------------------------------------------------

std::shared_ptr<h2_client> make_h2_client(conn_ptr c, std::uint32_t max_streams,
                                          std::chrono::milliseconds idle_timeout) {
  auto h = std::make_shared<h2_client>(std::move(c), max_streams, idle_timeout);
  if (!h->init()) return nullptr;
  h->start();
  return h;
}

std::shared_ptr<h2_client> make_h2_client_in_memory(conn_ptr c, std::uint32_t max_streams,
                                                    std::chrono::milliseconds idle_timeout) {
  auto h = std::make_shared<h2_client>(std::move(c), max_streams, idle_timeout);
  if (!h->init()) return nullptr;
  return h;
}

h2::session& h2_session(h2_client& h) { return h; }

void h2_connection_lost(h2_client& h) {
  h.close();
  h.connection_lost();
}

asio::awaitable<round_trip_result> h2_round_trip(h2_client& h, outbound_request& req) {
  return h.round_trip(req);
}

asio::awaitable<bool> h2_wait_settings(h2_client& h, std::chrono::milliseconds timeout) {
  return h.wait_settings(timeout);
}

asio::execution_context::id h2_pool::id;

std::shared_ptr<h2_client> h2_pool::find(std::string_view key, const h2_client* not_this) {
  auto it = clients_.find(key);
  if (it == clients_.end()) return nullptr;
  auto& v = it->second;
  std::erase_if(v, [](const std::shared_ptr<h2_client>& h) {
    if (h->alive() && h->drained()) h->retire();
    return !h->alive();
  });
  for (auto& h : v)
    if (h.get() != not_this && h->available()) return h;
  return nullptr;
}

void h2_pool::remove(const h2_client* h) {
  for (auto& [key, v] : clients_)
    std::erase_if(v, [h](const std::shared_ptr<h2_client>& x) { return x.get() == h; });
}

std::size_t h2_pool::connecting(const std::string& key) const {
  auto it = pending_.find(key);
  return it == pending_.end() ? 0 : it->second.connects;
}

asio::awaitable<void> h2_pool::wait_connect(const std::string& key) {
  auto& p = pending_[key];
  if (!p.done) {
    p.done = std::make_unique<asio::steady_timer>(co_await asio::this_coro::executor);
    p.done->expires_at(asio::steady_timer::time_point::max());
  }
  // Bounded by the connect itself (connect and handshake timeouts): its guard wakes us.
  co_await p.done->async_wait(asio::as_tuple(asio::use_awaitable));
}

h2_pool::connect_guard::connect_guard(h2_pool& p, std::string key) : p_(p), key_(std::move(key)) {
  ++p_.pending_[key_].connects;
}

h2_pool::connect_guard::~connect_guard() {
  auto& p = p_.pending_[key_];
  --p.connects;
  if (p.done) p.done->cancel();  // waiters look again: the new connection, or their own
}

void h2_pool::add(const std::string& key, std::shared_ptr<h2_client> h) {
  bool watch = h->watches_retirement();
  clients_[key].push_back(std::move(h));
  if (watch) arm_sweep();
}

void h2_pool::arm_sweep() {
  if (sweeping_) return;
  if (!timer_)
    timer_ = std::make_unique<asio::steady_timer>(static_cast<asio::io_context&>(context()));
  sweeping_ = true;
  timer_->expires_after(std::chrono::seconds(1));
  timer_->async_wait([this](error_code ec) {
    sweeping_ = false;
    if (!ec) sweep();
  });
}

void h2_pool::sweep() {
  bool watching = false;
  for (auto it = clients_.begin(); it != clients_.end();) {
    std::erase_if(it->second, [&](const std::shared_ptr<h2_client>& h) {
      if (h->alive() && h->drained()) h->retire();
      watching = watching || (h->alive() && h->watches_retirement());
      return !h->alive();
    });
    it = it->second.empty() ? clients_.erase(it) : std::next(it);
  }
  if (watching) arm_sweep();
}

std::optional<bool> h2_pool::speaks_h2(std::string_view key) const {
  auto it = alpn_.find(key);
  if (it == alpn_.end()) return std::nullopt;
  return it->second;
}

void h2_pool::shutdown() {
  timer_.reset();
  pending_.clear();
  for (auto& [key, v] : clients_)
    for (auto& h : v) h->close();
  clients_.clear();
}

}  // namespace trafficcop::upstream
