// SPDX-License-Identifier: MIT
// One HTTP/1.1 exchange on an upstream connection (h1_exchange.hpp): the request head and
// body, the response head (1xx forwarded), and a response whose destructor returns the
// connection to the worker's pool or closes it.
#include "upstream/h1_exchange.hpp"

#include <array>
#include <cstring>
#include <new>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "core/splice.hpp"
#include "core/stream_io.hpp"
#include "http/rules.hpp"
#include "http1/parser.hpp"
#include "http1/serialize.hpp"
#include "upstream/connector.hpp"

namespace trafficcop::upstream {
namespace {

using asio::ip::tcp;

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

/// async_write of `bufs` minus its first `skip` bytes, under the watchdog. A plain function:
/// the stream's write_within is the one coroutine.
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
  return c.io.write_within(rest, timeout);
}

/// The fast path of a write to an upstream (the socket is in non-blocking mode): true when
/// it is over, with `ec` its result; false when the socket took only `done` bytes and the rest
/// must go through write_rest. A plain function: no coroutine frame when the write fits.
template <class Buffers>
bool write_now(conn& c, const Buffers& bufs, error_code& ec, std::size_t& done) {
  return c.io.write_now(bufs, ec, done);  // false on TLS: records go the asynchronous way
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

/// Reads from an upstream connection into its buffer, under a watchdog; nothing once the
/// exchange was cancelled. A plain function: the stream's fill is the one coroutine.
asio::awaitable<error_code> fill(conn& c, std::chrono::milliseconds timeout) {
  return c.io.fill(timeout, true);
}

/// The response: owns the connection until its body is read, then gives it back.
class response_impl final : public upstream_response,
                            public body_reader,
                            public byte_stream,
                            public detail::splice_endpoint {
 public:
  response_impl(const h1_options& o, conn_ptr c, bool reusable)
      : o_(o), c_(std::move(c)), p_(&*c_->parser), reusable_(reusable) {}
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
  asio::ip::tcp::socket& splice_socket() override { return c_->io.socket(); }
  watchdog& splice_deadline() override { return c_->io.deadline(); }
  std::chrono::milliseconds splice_timeout() const override { return read_timeout_; }
  std::uint64_t splice_room() override {
    if (failed_ || spliced_done_ || status == 101 || content_length < 0 || p_->is_done() ||
        !c_->pending().empty() || c_->io.is_tls())
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
    auto [ec, n] = co_await c_->io.read_some(buf);
    co_return read_result{io::eof_if_truncated(ec), n};
  }
  asio::awaitable<error_code> write_all(asio::const_buffer buf) override {
    auto [ec, n] = co_await c_->io.write_all(buf);
    co_return ec;
  }
  void shutdown_send() override { c_->io.shutdown_send(); }
  void close() override { c_->io.close(); }

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

  const h1_options& o_;  // the transport's, which outlives its responses
  conn_ptr c_;
  http1::response_parser* p_;  // the connection's, alive while c_ is held
  bool reusable_;
  error_code failed_;
  std::uint64_t delivered_ = 0;  // body bytes handed out, by read() or by the relay
  bool spliced_done_ = false;    // the relay moved the rest: the parser never saw it
  std::chrono::milliseconds read_timeout_{0};
};

/// The request and response heads and the request body of one exchange on one connection.
class exchange {
 public:
  explicit exchange(const h1_options& o) : o_(o) {}

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

  asio::awaitable<round_trip_result> run(outbound_request& req, conn_ptr c) {
    bool has_body = req.content_length != 0 && req.body != nullptr;
    std::string& head = c->head;
    head.clear();
    header_map& h = req.header;
    set_framing(req, h);
    http1::append_request_head(head, req.method, req.target, h);
    bool expect = has_body && h.has_token("expect", "100-continue");
    if (io::cancelled(co_await asio::this_coro::cancellation_state))
      co_return fail_io(asio::error::operation_aborted, "");
    error_code wec;
    std::size_t wrote = 0;
    if (!write_now(*c, asio::buffer(head), wec, wrote))
      wec = co_await write_rest(*c, asio::buffer(head), wrote, req.response_timeout);
    if (wec) {
      // A pooled connection the upstream closed meanwhile fails here, before any answer.
      auto res = fail_io(wec, "write request");
      if (wec != asio::error::timed_out && wec != asio::error::operation_aborted)
        res.error.retry = retry_class::reset_before_response;
      co_return res;
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
        auto r = co_await read_head(req, *c, req.head_deadline(), false);
        if (r.error || !r.final) co_return round_trip_result{nullptr, std::move(*err)};
        co_return finish(req, std::move(c), false);
      }
    }
    auto r = co_await read_head(req, *c, req.head_deadline(), false);
    if (r.error) {
      // The upstream closed or reset before any answer (on a pooled connection, often one it
      // closed under us): the request may have been seen, or not. A client that left (the
      // exchange was cancelled) or a timeout is not that.
      if (!r.got_bytes && r.error->ec == make_error_code(errc::upstream_closed))
        r.error->retry = retry_class::reset_before_response;
      co_return round_trip_result{nullptr, std::move(*r.error)};
    }
    co_return finish(req, std::move(c), true);
  }

  round_trip_result finish(outbound_request& req, conn_ptr c, bool reusable) {
    auto res = std::make_unique<response_impl>(o_, std::move(c), reusable);
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
          // message (fed after its end it takes nothing), so the next head needs a new one,
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
      if (io::cancelled(co_await asio::this_coro::cancellation_state))
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

 private:
  const h1_options& o_;
};

}  // namespace

response_impl::~response_impl() {
  if (!c_) return;
  // Bytes left in the buffer (a body on a HEAD answer, junk after a response) would be read
  // as the next request's response, maybe another client's: such a connection is closed.
  // After a relay the proxy never read past the body: bytes the upstream sent beyond it are
  // still in the socket, so a spliced connection is peeked before it may be pooled.
  if (reusable_ && !failed_ &&
      (p_->is_done() || (spliced_done_ && is_idle_and_open(c_->io.socket()))) && p_->keep_alive() &&
      status != 101 && c_->pending().empty()) {
    c_->res_header = std::move(header);  // the field storage goes back with the connection
    c_->parser.reset();
    give_back(std::move(c_), o_);
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
    } catch (const std::bad_alloc&) {
      // No room to keep the block (out of memory): not a failure, it is freed below.
    }
  }
  ::operator delete(p);
}

void give_back(conn_ptr c, const h1_options& o) {
  auto& ctx = asio::query(c->io.socket().get_executor(), asio::execution::context);
  asio::use_service<pool_service>(ctx).put(std::move(c), o.idle_timeout, o.max_idle);
}

asio::awaitable<round_trip_result> h1_round_trip(outbound_request& req, conn_ptr c,
                                                 const h1_options& o) {
  exchange x(o);
  co_return co_await x.run(req, std::move(c));
}

}  // namespace trafficcop::upstream
