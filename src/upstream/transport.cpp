// SPDX-License-Identifier: MIT
// The HTTP/1.1 transport: connect or reuse, send the request with its body, read the response
// head (1xx forwarded), and hand back a response whose destructor returns or closes the
// connection.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>

#include "core/log.hpp"
#include "core/splice.hpp"
#include "core/stream_io.hpp"
#include "core/watchdog.hpp"
#include "http/rules.hpp"
#include "http1/parser.hpp"
#include "http1/serialize.hpp"
#include "trafficcop/transport.hpp"
#include "upstream/h2_client.hpp"
#include "upstream/pool.hpp"
#include "upstream/tls.hpp"

namespace trafficcop {
namespace {

using asio::ip::tcp;
using upstream::conn;
using upstream::conn_ptr;
using upstream::is_idle_and_open;
using upstream::pool_service;

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t read_chunk = 32 * 1024;
constexpr std::size_t body_chunk = 32 * 1024;                   // spec 40: a fixed copy buffer
constexpr auto expect_continue_wait = std::chrono::seconds(1);  // Go's ExpectContinueTimeout
constexpr int max_informational = 5;  // 1xx heads per exchange, as Go's Transport allows

/// Time left until `deadline`: 0 = none (wait forever), < 0 = passed.
std::chrono::milliseconds remaining(std::chrono::steady_clock::time_point deadline) {
  if (deadline == std::chrono::steady_clock::time_point::max()) return {};
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() > 0 ? left : std::chrono::milliseconds(-1);
}

/// async_write of `bufs` minus its first `skip` bytes, under the watchdog.
template <class Buffers>
asio::awaitable<error_code> write_rest(conn& c, const Buffers& bufs, std::size_t skip,
                                       std::chrono::milliseconds timeout) {
  std::array<asio::const_buffer, 4> rest{};
  std::size_t k = 0;
  for (auto it = asio::buffer_sequence_begin(bufs); it != asio::buffer_sequence_end(bufs); ++it) {
    asio::const_buffer b = *it;
    std::size_t cut = std::min(skip, b.size());
    b += cut;
    skip -= cut;
    if (b.size() > 0 && k < rest.size()) rest[k++] = b;
  }
  auto& wd = c.wd;
  wd.arm(timeout);
  auto [ec, n] = co_await io::write_all(c.sock, c.tls.get(), rest);
  wd.disarm();
  if (ec == asio::error::operation_aborted && wd.expired()) ec = asio::error::timed_out;
  co_return ec;
}

/// The fast path of a write to an upstream (the socket is in non-blocking mode): true when
/// it is over, with `ec` its result; false when the socket took only `done` bytes and the rest
/// must go through write_rest. A plain function: no coroutine frame when the write fits.
template <class Buffers>
bool write_now(conn& c, const Buffers& bufs, error_code& ec, std::size_t& done) {
  done = 0;
  if (c.tls) return false;  // TLS records go through the asynchronous path
  done = c.sock.write_some(bufs, ec);
  if (ec == asio::error::would_block) ec = {};
  return ec || done == asio::buffer_size(bufs);
}

/// Writes to an upstream under a watchdog: an upstream that stops reading fails the exchange
/// after `timeout` (0 = no limit) instead of holding both connections forever.
template <class Buffers>
asio::awaitable<error_code> write_upstream(conn& c, const Buffers& bufs,
                                           std::chrono::milliseconds timeout) {
  error_code ec;
  std::size_t done = 0;
  if (write_now(c, bufs, ec, done)) co_return ec;
  co_return co_await write_rest(c, bufs, done, timeout);
}

/// RFC 9110 §9.2.2, and Go's Transport rule for replaying a request on a fresh connection.
bool idempotent(const outbound_request& req) {
  return req.method == "GET" || req.method == "HEAD" || req.method == "OPTIONS" ||
         req.method == "TRACE" || req.header.contains("idempotency-key") ||
         req.header.contains("x-idempotency-key");
}

proxy_error upstream_error(errc e, std::string detail) {
  return {make_error_code(e), error_source::upstream, std::move(detail)};
}

/// True once the exchange was cancelled (the client left, spec 49). A cancellation emitted
/// while no operation is pending (one has completed, the coroutine has not resumed yet) reaches
/// no operation, only the coroutine's cancellation state; unless each wait checks it first, the
/// exchange goes on waiting for an upstream answer nobody will read, holding both connections.
///
/// Checked inline (`co_await asio::this_coro::cancellation_state`), not through a helper
/// coroutine: each coroutine call is a frame allocation, and this check runs several times per
/// request.
bool cancelled(const asio::cancellation_state& cs) noexcept {
  return cs.cancelled() != asio::cancellation_type::none;
}

/// Reads from an upstream connection into its buffer, under a watchdog.
asio::awaitable<error_code> fill(conn& c, std::chrono::milliseconds timeout) {
  auto& wd = c.wd;
  if (cancelled(co_await asio::this_coro::cancellation_state))
    co_return asio::error::operation_aborted;
  if (c.buf.size() < read_chunk) c.buf.resize(read_chunk * 2);
  if (c.end == c.buf.size()) {
    if (c.begin == 0)
      c.buf.resize(c.buf.size() * 2);  // a head larger than the buffer
    else {
      std::memmove(c.buf.data(), c.buf.data() + c.begin, c.end - c.begin);
      c.end -= c.begin;
      c.begin = 0;
    }
  }
  wd.arm(timeout);
  auto room = asio::buffer(c.buf.data() + c.end, c.buf.size() - c.end);
  auto [rec, n] = co_await io::read_some(c.sock, c.tls.get(), room);
  error_code ec = io::eof_if_truncated(rec);
  wd.disarm();
  if (ec == asio::error::operation_aborted && wd.expired()) ec = asio::error::timed_out;
  c.end += n;
  co_return ec;
}

class transport_impl;

/// The response: owns the connection until its body is read, then gives it back.
class response_impl final : public upstream_response,
                            public body_reader,
                            public byte_stream,
                            public detail::splice_endpoint {
 public:
  response_impl(transport_impl& t, conn_ptr c, bool reusable)
      : t_(t), c_(std::move(c)), p_(&*c_->parser), reusable_(reusable) {}
  ~response_impl() override;

  // One response object per proxied request: recycled through a per-thread free list rather
  // than the heap (the steady state allocates nothing per request).
  static void* operator new(std::size_t n);
  static void operator delete(void* p, std::size_t n) noexcept;

  body_reader& body() override { return *this; }
  byte_stream* upgraded() override { return status == 101 ? this : nullptr; }

  asio::awaitable<read_result> read(asio::mutable_buffer out) override {
    if (failed_) co_return read_result{failed_, 0};
    if (spliced_done_) co_return read_result{};
    for (;;) {
      auto in = c_->pending();
      if (p_->is_done()) co_return read_result{};  // Beast parsers must not be fed after done
      if (!in.empty()) {
        error_code ec;
        auto step = p_->put_body(in, out, ec);
        c_->consume(step.consumed);
        if (ec) co_return fail(ec);
        if (p_->is_done()) trailer = std::move(p_->trailer());
        delivered_ += step.written;
        if (step.written > 0) co_return read_result{{}, step.written};
        if (p_->is_done()) co_return read_result{};
        if (step.consumed > 0) continue;
      }
      // The upstream owes the rest of the body; a stall as long as the response timeout is
      // a failure too (the same limit nginx's proxy_read_timeout puts between reads).
      auto ec = co_await fill(*c_, read_timeout_);
      if (ec == asio::error::eof) {
        error_code eof_ec;
        p_->put_eof(eof_ec);  // completes a close-delimited body, or says it was cut short
        reusable_ = false;
        if (eof_ec) co_return fail(eof_ec);
        trailer = std::move(p_->trailer());
        co_return read_result{};
      }
      if (ec) co_return fail(ec);
    }
  }

  bool ready() const noexcept override {
    // Pending bytes of a Content-Length body always make progress; with chunked framing they
    // may be only the start of a chunk header, so only the end counts there.
    if (failed_ || spliced_done_ || p_->is_done()) return true;
    return content_length >= 0 && !c_->pending().empty();
  }

  // The zero-copy relay (src/core/splice.hpp): a Content-Length body with nothing buffered.
  detail::splice_endpoint* splice_source() noexcept override { return this; }
  asio::ip::tcp::socket& splice_socket() override { return c_->sock; }
  watchdog& splice_deadline() override { return c_->wd; }
  std::chrono::milliseconds splice_timeout() const override { return read_timeout_; }
  std::uint64_t splice_room() override {
    if (failed_ || spliced_done_ || status == 101 || content_length < 0 || p_->is_done() ||
        !c_->pending().empty() || c_->tls)
      return 0;
    return static_cast<std::uint64_t>(content_length) - delivered_;
  }
  asio::awaitable<error_code> splice_prepare() override { co_return error_code{}; }
  void spliced(std::uint64_t n) override {
    delivered_ += n;
    if (delivered_ >= static_cast<std::uint64_t>(content_length)) spliced_done_ = true;
  }

  // byte_stream, after a 101.
  asio::awaitable<read_result> read_some(asio::mutable_buffer buf) override {
    auto in = c_->pending();
    if (!in.empty()) {
      std::size_t n = asio::buffer_copy(buf, asio::buffer(in.data(), in.size()));
      c_->consume(n);
      co_return read_result{{}, n};
    }
    auto [ec, n] = co_await io::read_some(c_->sock, c_->tls.get(), buf);
    co_return read_result{io::eof_if_truncated(ec), n};
  }
  asio::awaitable<error_code> write_all(asio::const_buffer buf) override {
    auto [ec, n] = co_await io::write_all(c_->sock, c_->tls.get(), buf);
    co_return ec;
  }
  void shutdown_send() override {
    error_code ignored;
    c_->sock.shutdown(tcp::socket::shutdown_send, ignored);
  }
  void close() override {
    error_code ignored;
    c_->sock.close(ignored);
  }

  /// Copies the parsed head into the public fields.
  void take_head(std::chrono::milliseconds read_timeout) {
    read_timeout_ = read_timeout;
    status = p_->status();
    reason = p_->reason();
    header = std::move(p_->fields());  // storage swapped with the connection's, given back
    auto len = p_->length();
    content_length = len ? static_cast<std::int64_t>(*len) : -1;
    if (len) header.set("Content-Length", std::to_string(*len));  // identical repeats → one
    if (p_->is_done() && status != 101) content_length = len ? content_length : 0;
    peer = c_->peer;
  }

 private:
  read_result fail(error_code ec) {
    failed_ = ec;
    reusable_ = false;
    return {ec, 0};
  }

  transport_impl& t_;
  conn_ptr c_;
  http1::response_parser* p_;  // the connection's, alive while c_ is held
  bool reusable_;
  error_code failed_;
  std::uint64_t delivered_ = 0;  // body bytes handed out, by read() or by the relay
  bool spliced_done_ = false;    // the relay moved the rest: the parser never saw it
  std::chrono::milliseconds read_timeout_{0};
};

class transport_impl final : public transport {
 public:
  explicit transport_impl(http1_transport_options o) : o_(o), tls_(o_.tls) {
    if (o_.tls.insecure_skip_verify)
      log::warn(
          "upstream TLS: insecure_skip_verify is on: any certificate is accepted (tests only)");
  }

  asio::awaitable<round_trip_result> round_trip(outbound_request& req) override {
    if (o_.http2 != http2_mode::never) {
      bool upgrade = req.header.contains("upgrade");
      if (upgrade && o_.http2 == http2_mode::always)
        co_return round_trip_result{
            nullptr, proxy_error{make_error_code(errc::upgrade_needs_http1), error_source::internal,
                                 "protocol upgrade to an HTTP/2-only upstream"}};
      if (!upgrade && (req.scheme == "https" || o_.http2 == http2_mode::always)) {
        auto r = co_await round_trip_h2(req);
        if (r) co_return std::move(*r);  // else the upstream chose HTTP/1.1
      }
    }
    auto ex = co_await asio::this_coro::executor;
    auto& pool = asio::use_service<pool_service>(asio::query(ex, asio::execution::context));
    // The pool key: this transport, host and port. Built in a per-thread buffer; a new
    // connection keeps its own copy (once per connection, not per request).
    thread_local std::string key;
    // A pooled connection may have been closed by the upstream a moment ago; if the request
    // fails on it before anything came back and the body was not started, retry once on a
    // fresh connection (Go's Transport does the same).
    for (int attempt = 0;; ++attempt) {
      if (cancelled(co_await asio::this_coro::cancellation_state))
        co_return round_trip_result{
            nullptr, proxy_error{make_error_code(errc::client_gone), error_source::downstream,
                                 "client went away"}};
      // A request that can be replayed skips the liveness peek: if the upstream closed the
      // connection meanwhile, the exchange fails before any answer and is retried below.
      bool replayable = idempotent(req) && (req.content_length == 0 || req.body == nullptr);
      conn_ptr c = nullptr;
      if (attempt == 0) {
        key.clear();
        append_key(key, req);
        c = pool.take(key, !replayable);
      }
      bool reused = c != nullptr;
      if (!c) {
        auto r = co_await connect(req);
        if (!r.c) co_return round_trip_result{nullptr, std::move(r.err)};
        c = std::move(r.c);
        append_key(c->key, req);
        if (req.scheme == "https") {
          if (auto err = co_await start_tls(*c, req))
            co_return round_trip_result{nullptr, std::move(*err)};
        }  // not `key`: other coroutines used the buffer meanwhile
      }
      bool stale = false;  // the upstream closed a pooled connection before answering
      auto res = co_await exchange(req, std::move(c), stale);
      if (res.response || !reused || !stale) co_return res;
    }
  }

  /// HTTP/2: a stream on a pooled connection, or on a new one. Nullopt when ALPN (auto)
  /// chose HTTP/1.1: the connection made is pooled for the HTTP/1.1 path.
  asio::awaitable<std::optional<round_trip_result>> round_trip_h2(outbound_request& req) {
    auto ex = co_await asio::this_coro::executor;
    auto& pool = asio::use_service<upstream::h2_pool>(asio::query(ex, asio::execution::context));
    std::string key;
    append_key(key, req);
    bool tls = req.scheme == "https";
    const upstream::h2_client* refused_by = nullptr;  // a refused stream goes elsewhere
    for (int attempt = 0; attempt < 3;) {
      // auto: an upstream that chose HTTP/1.1 in ALPN is not asked again.
      if (o_.http2 == http2_mode::automatic && pool.speaks_h2(key) == false) co_return std::nullopt;
      if (cancelled(co_await asio::this_coro::cancellation_state))
        co_return round_trip_result{
            nullptr, proxy_error{make_error_code(errc::client_gone), error_source::downstream,
                                 "client went away"}};
      auto h = pool.find(key, refused_by);
      if (!h && pool.connecting(key) > 0) {
        co_await pool.wait_connect(key);  // a connection is on its way: share it
        continue;
      }
      if (!h) {
        upstream::h2_pool::connect_guard connecting(pool, key);
        auto r = co_await connect(req);
        if (!r.c) co_return round_trip_result{nullptr, std::move(r.err)};
        conn_ptr c = std::move(r.c);
        c->key = key;
        if (tls) {
          static constexpr std::string_view both = "\x02h2\x08http/1.1", h2_only = "\x02h2";
          auto alpn = o_.http2 == http2_mode::always ? h2_only : both;
          if (auto err = co_await start_tls(*c, req, alpn))
            co_return round_trip_result{nullptr, std::move(*err)};
          const unsigned char* p = nullptr;
          unsigned len = 0;
          SSL_get0_alpn_selected(c->tls->native_handle(), &p, &len);
          bool h2 = len == 2 && p[0] == 'h' && p[1] == '2';
          if (!h2 && o_.http2 == http2_mode::always)
            co_return round_trip_result{
                nullptr,
                upstream_error(errc::upstream_protocol_error,
                               "upstream did not agree to HTTP/2 in ALPN (http2: always)")};
          pool.remember(key, h2);
          if (!h2) {
            give_back(std::move(c));  // the HTTP/1.1 path takes it from the pool
            co_return std::nullopt;
          }
        }
        h = upstream::make_h2_client(std::move(c), o_.max_concurrent_streams, o_.idle_timeout);
        if (!h)
          co_return round_trip_result{
              nullptr, upstream_error(errc::upstream_protocol_error, "HTTP/2 session setup")};
        // Its stream limit comes with its SETTINGS: requests waiting for this connection
        // must not all be sent before it is known (the excess would be refused).
        if (!co_await upstream::h2_wait_settings(*h, o_.connect_timeout))
          co_return round_trip_result{nullptr,
                                      upstream_error(errc::upstream_connect_timeout,
                                                     "HTTP/2: no SETTINGS from " + req.host + ":" +
                                                         std::to_string(req.port))};
        pool.add(key, h);
      }
      bool retry = false;
      auto res = co_await upstream::h2_round_trip(*h, req, retry);
      if (res.response || !retry) co_return std::move(res);
      refused_by = h.get();
      ++attempt;
    }
    co_return round_trip_result{
        nullptr, upstream_error(errc::upstream_closed, "HTTP/2 streams refused by the upstream")};
  }

  void give_back(conn_ptr c) {
    auto& ctx = asio::query(c->sock.get_executor(), asio::execution::context);
    asio::use_service<pool_service>(ctx).put(std::move(c), o_.idle_timeout, o_.max_idle_per_host);
  }

 private:
  struct connect_result {
    conn_ptr c;
    proxy_error err;
  };

  asio::awaitable<connect_result> connect(const outbound_request& req) {
    auto ex = co_await asio::this_coro::executor;
    tcp::socket sock(ex);
    tcp::resolver resolver(ex);
    // One deadline for resolving and connecting together.
    watchdog wd(ex, [&sock, &resolver] {
      resolver.cancel();
      error_code ignored;
      sock.close(ignored);
    });
    error_code ec;
    auto addr = asio::ip::make_address(req.host, ec);
    std::vector<tcp::endpoint> eps;
    wd.arm(o_.connect_timeout);
    if (!ec) {
      eps.emplace_back(addr, req.port);
    } else {
      auto [rec, results] =
          co_await resolver.async_resolve(req.host, std::to_string(req.port), use_nothrow);
      if (rec && wd.expired()) {
        co_return connect_result{nullptr, upstream_error(errc::upstream_connect_timeout,
                                                         "resolve " + req.host + ": timed out")};
      }
      if (rec) {
        co_return connect_result{nullptr,
                                 upstream_error(errc::upstream_connect_failed,
                                                "resolve " + req.host + ": " + rec.message())};
      }
      for (auto& r : results) eps.push_back(r.endpoint());
    }
    auto [cec, ep] = co_await asio::async_connect(sock, eps, use_nothrow);
    bool timed_out = wd.expired();
    wd.disarm();
    std::string where = req.host + ":" + std::to_string(req.port);
    if (timed_out)
      co_return connect_result{nullptr, upstream_error(errc::upstream_connect_timeout,
                                                       "connect " + where + ": timed out")};
    if (cec)
      co_return connect_result{nullptr, upstream_error(errc::upstream_connect_failed,
                                                       "connect " + where + ": " + cec.message())};
    sock.set_option(tcp::no_delay(true), ec);
    sock.non_blocking(true, ec);  // write_upstream tries a synchronous write first
    auto c = std::make_unique<conn>(std::move(sock));
    auto a = ep.address();
    c->peer =
        (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
    co_return connect_result{std::move(c), {}};
  }

  /// Framing fields from the body length (RFC 9112 §6); the proxy never forwards the client's.
  static void set_framing(outbound_request& req, header_map& h) {
    h.erase("content-length");
    h.erase("transfer-encoding");
    if (req.content_length > 0)
      h.add("Content-Length", std::to_string(req.content_length));
    else if (req.content_length < 0)
      h.add("Transfer-Encoding", "chunked");
    else if (req.method == "POST" || req.method == "PUT" || req.method == "PATCH")
      h.add("Content-Length", "0");  // spec 19: a GET gets none
  }

  asio::awaitable<round_trip_result> exchange(outbound_request& req, conn_ptr c, bool& stale) {
    bool has_body = req.content_length != 0 && req.body != nullptr;
    std::string& head = c->head;
    head.clear();
    header_map& h = req.header;
    set_framing(req, h);
    http1::append_request_head(head, req.method, req.target, h);
    bool expect = has_body && h.has_token("expect", "100-continue");
    if (cancelled(co_await asio::this_coro::cancellation_state))
      co_return fail_io(asio::error::operation_aborted, "");
    error_code wec;
    std::size_t wrote = 0;
    if (!write_now(*c, asio::buffer(head), wec, wrote))
      wec = co_await write_rest(*c, asio::buffer(head), wrote, req.response_timeout);
    if (wec) {
      stale =
          wec != asio::error::operation_aborted && wec != asio::error::timed_out && idempotent(req);
      co_return fail_io(wec, "write request");
    }
    ++c->requests;

    new_parser(req, *c);
    bool body_sent = !has_body;
    if (has_body && expect) {
      // Wait for 100 Continue (or an early final answer) before sending the body (spec 23).
      auto r = co_await read_head(req, *c, expect_continue_wait, true);
      if (r.error) co_return round_trip_result{nullptr, std::move(*r.error)};
      if (r.final) {
        // The upstream answered without wanting the body: the connection is out of step.
        co_return finish(req, std::move(c), false);
      }
    }
    if (!body_sent) {
      if (auto err = co_await send_body(req, *c)) {
        // The upstream may have answered early and closed; prefer its response if there is one.
        if (err->source == error_source::downstream)
          co_return round_trip_result{nullptr, std::move(*err)};
        auto r = co_await read_head(req, *c, req.response_timeout, false);
        if (r.error || !r.final) co_return round_trip_result{nullptr, std::move(*err)};
        co_return finish(req, std::move(c), false);
      }
    }
    auto r = co_await read_head(req, *c, req.response_timeout, false);
    if (r.error) {
      // Only a pooled connection the upstream closed under us is worth a retry; a client that
      // left (the exchange was cancelled), a timeout, or a request whose body was sent is not.
      stale = !r.got_bytes && c->requests > 1 && !has_body && idempotent(req) &&
              r.error->ec == make_error_code(errc::upstream_closed);
      co_return round_trip_result{nullptr, std::move(*r.error)};
    }
    co_return finish(req, std::move(c), true);
  }

  round_trip_result finish(outbound_request& req, conn_ptr c, bool reusable) {
    auto res = std::make_unique<response_impl>(*this, std::move(c), reusable);
    res->take_head(req.response_timeout);
    return {std::move(res), {}};
  }

  struct head_result {
    std::optional<proxy_error> error;
    bool final = false;
    bool got_100 = false;
    bool got_bytes = false;
  };

  /// Reads response heads until a final one (or, with `until_100`, a 100 or a timeout).
  asio::awaitable<head_result> read_head(outbound_request& req, conn& c,
                                         std::chrono::milliseconds timeout, bool until_100) {
    head_result r;
    // One deadline for the whole head, however it trickles in; and a bound on 1xx heads, so
    // an upstream cannot keep the exchange alive with informational answers alone.
    auto deadline = timeout.count() > 0 ? std::chrono::steady_clock::now() + timeout
                                        : std::chrono::steady_clock::time_point::max();
    int informational = 0;
    for (;;) {
      auto* cur = &*c.parser;
      auto in = c.pending();
      if (!in.empty()) {
        r.got_bytes = true;
        error_code ec;
        std::size_t n = cur->put_head(in, ec);
        if (ec) {
          r.error =
              upstream_error(errc::upstream_protocol_error, "malformed response: " + ec.message());
          co_return r;
        }
        if (cur->is_header_done()) {
          c.consume(n);
          int status = cur->status();
          if (status >= 200 || status == 101) {
            r.final = true;
            co_return r;
          }
          if (status == 100) r.got_100 = true;
          if (++informational > max_informational) {
            r.error = upstream_error(errc::upstream_protocol_error, "too many 1xx responses");
            co_return r;
          }
          if (req.on_informational) {
            if (auto ec2 = co_await req.on_informational(status, cur->fields())) {
              r.error = proxy_error{ec2, error_source::downstream, "writing 1xx to client"};
              co_return r;
            }
          }
          // The final head follows the 1xx on the same connection; a parser parses one
          // message (Beast asserts when fed after the end), so the next head needs a new one,
          // also when we return to send the body after the 100.
          new_parser(req, c);
          if (until_100 && status == 100) co_return r;
          continue;
        }
      }
      auto left = remaining(deadline);
      auto ec = left.count() < 0 ? error_code(asio::error::timed_out) : co_await fill(c, left);
      if (ec == asio::error::timed_out && until_100) co_return r;  // send the body anyway
      if (ec == asio::error::timed_out) {
        r.error = upstream_error(errc::upstream_timeout, "response header timeout");
        co_return r;
      }
      if (ec == asio::error::operation_aborted) {
        r.error = proxy_error{make_error_code(errc::client_gone), error_source::downstream,
                              "client went away"};
        co_return r;
      }
      if (ec == asio::error::eof || ec == asio::error::connection_reset) {
        r.error = upstream_error(errc::upstream_closed,
                                 r.got_bytes ? "upstream closed mid-response head"
                                             : "upstream closed the connection without a response");
        co_return r;
      }
      if (ec) {
        r.error = upstream_error(errc::upstream_protocol_error, "read response: " + ec.message());
        co_return r;
      }
    }
  }

  /// Streams the request body upstream with a fixed buffer (spec 20, 40), re-framing it.
  asio::awaitable<std::optional<proxy_error>> send_body(outbound_request& req, conn& c) {
    if (c.scratch.size() < body_chunk) c.scratch.resize(body_chunk);
    bool chunked = req.content_length < 0;
    std::uint64_t sent = 0;
    char size_line[24];
    for (;;) {
      if (cancelled(co_await asio::this_coro::cancellation_state))
        co_return proxy_error{make_error_code(errc::client_gone), error_source::downstream,
                              "client went away"};
      auto r = co_await req.body->read(asio::buffer(c.scratch));
      if (r.ec) {
        co_return proxy_error{r.ec, error_source::downstream,
                              "reading request body: " + r.ec.message()};
      }
      if (r.n == 0) break;
      sent += r.n;
      error_code ec;
      if (chunked) {
        int len = std::snprintf(size_line, sizeof size_line, "%zx\r\n", r.n);
        std::array<asio::const_buffer, 3> bufs{
            asio::buffer(size_line, static_cast<std::size_t>(len)),
            asio::buffer(c.scratch.data(), r.n), asio::buffer("\r\n", 2)};
        ec = co_await write_upstream(c, bufs, req.response_timeout);
      } else {
        ec = co_await write_upstream(c, asio::buffer(c.scratch.data(), r.n), req.response_timeout);
      }
      if (ec == asio::error::operation_aborted)
        co_return proxy_error{make_error_code(errc::client_gone), error_source::downstream,
                              "client went away"};
      if (ec == asio::error::timed_out)
        co_return upstream_error(errc::upstream_timeout, "upstream stopped reading the body");
      if (ec)
        co_return upstream_error(errc::upstream_closed, "write request body: " + ec.message());
    }
    if (!chunked && sent != static_cast<std::uint64_t>(req.content_length))
      co_return proxy_error{make_error_code(errc::bad_request), error_source::downstream,
                            "request body shorter than Content-Length"};
    if (chunked) {
      // RFC 9110 §6.5.1: framing, routing and hop-by-hop fields never travel as trailers.
      header_map trailer;
      if (req.trailer) trailer = *req.trailer;
      http::remove_forbidden_trailers(trailer);
      std::string last;
      http1::append_last_chunk(last, trailer);
      auto ec = co_await write_upstream(c, asio::buffer(last), req.response_timeout);
      if (ec)
        co_return upstream_error(errc::upstream_closed, "write request body: " + ec.message());
    }
    co_return std::nullopt;
  }

  round_trip_result fail_io(error_code ec, std::string_view what) {
    if (ec == asio::error::operation_aborted)
      return {nullptr, proxy_error{make_error_code(errc::client_gone), error_source::downstream,
                                   "client went away"}};
    std::string d = std::string(what) + ": " + ec.message();
    return {nullptr, upstream_error(errc::upstream_closed, d)};
  }

  /// A parser for the next response head on `c`, filling the connection's field map.
  void new_parser(const outbound_request& req, conn& c) const {
    c.parser.emplace(req.method == "HEAD",
                     http1::parser_limits{o_.max_response_header_bytes, 1000, 0, 0}, &c.res_header);
  }

  void append_key(std::string& key, const outbound_request& req) const {
    char num[24];
    auto at = [&](std::uint64_t v) {
      char* e = num + sizeof num;
      char* b = e;
      do *--b = static_cast<char>('0' + v % 10);
      while ((v /= 10) != 0);
      key.append(b, e);
    };
    at(reinterpret_cast<std::uintptr_t>(this));
    key += req.scheme == "https" ? "|s|" : "|";
    key += req.host;
    key += ':';
    at(req.port);
  }

  /// The TLS handshake on a fresh connection, bounded by the connect timeout.
  asio::awaitable<std::optional<proxy_error>> start_tls(conn& c, const outbound_request& req,
                                                        std::string_view alpn = "\x08http/1.1") {
    c.wd.arm(o_.connect_timeout);
    if (!tls_.error().empty())
      co_return upstream_error(errc::upstream_connect_failed, "upstream TLS: " + tls_.error());
    std::string why = co_await tls_.handshake(c, req.host, alpn);
    bool timed_out = c.wd.expired();
    c.wd.disarm();
    if (why.empty()) co_return std::nullopt;
    std::string where = req.host + ":" + std::to_string(req.port);
    if (timed_out)
      co_return upstream_error(errc::upstream_connect_timeout,
                               "TLS handshake with " + where + ": timed out");
    log::error("TLS handshake with {} failed: {}", where, why);
    co_return upstream_error(errc::upstream_connect_failed,
                             "TLS handshake with " + where + ": " + why);
  }

  http1_transport_options o_;
  upstream::tls_client tls_;
};

response_impl::~response_impl() {
  if (!c_) return;
  // Bytes left in the buffer (a body on a HEAD answer, junk after a response) would be read
  // as the next request's response, maybe another client's: such a connection is closed.
  // After a relay the proxy never read past the body: bytes the upstream sent beyond it are
  // still in the socket, so a spliced connection is peeked before it may be pooled.
  if (reusable_ && !failed_ && (p_->is_done() || (spliced_done_ && is_idle_and_open(c_->sock))) &&
      p_->keep_alive() && status != 101 && c_->pending().empty()) {
    c_->res_header = std::move(header);  // the field storage goes back with the connection
    c_->parser.reset();
    t_.give_back(std::move(c_));
  }
}

namespace {
struct response_free_list {
  std::vector<void*> blocks;
  ~response_free_list() {
    for (void* p : blocks) ::operator delete(p);
  }
};
thread_local response_free_list response_blocks;
constexpr std::size_t max_free_responses = 256;
}  // namespace

void* response_impl::operator new(std::size_t n) {
  auto& b = response_blocks.blocks;
  if (n == sizeof(response_impl) && !b.empty()) {
    void* p = b.back();
    b.pop_back();
    return p;
  }
  return ::operator new(n);
}

void response_impl::operator delete(void* p, std::size_t n) noexcept {
  auto& b = response_blocks.blocks;
  if (n == sizeof(response_impl) && b.size() < max_free_responses) {
    try {
      b.push_back(p);
      return;
    } catch (...) {
    }
  }
  ::operator delete(p);
}

}  // namespace

std::shared_ptr<transport> make_http1_transport(http1_transport_options opts) {
  return std::make_shared<transport_impl>(opts);
}

}  // namespace trafficcop
