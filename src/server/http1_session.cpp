// SPDX-License-Identifier: MIT
// HTTP/1.1 on a downstream stream: request loop, body reader, response writer, hijack, and the
// hang-up watch (http1_session.hpp).
#include "server/http1_session.hpp"

#include <sys/socket.h>

#include <boost/asio/this_coro.hpp>
#include <boost/beast/http/error.hpp>

#include "core/log.hpp"
#include "core/splice.hpp"
#include "http/rules.hpp"
#include "http1/serialize.hpp"
#include "server/request_access.hpp"
#include "server/worker.hpp"

namespace trafficcop::detail {
namespace {

constexpr std::size_t write_through = 16 * 1024;  // larger writes skip the output buffer
constexpr std::size_t max_discard = 256 * 1024;   // unread body we drain to keep a connection

}  // namespace

// --- the request body, pulled by the handler ------------------------------------------------

class http1_session::request_body final : public body_reader {
 public:
  request_body(http1_session& c, request& r) : c_(c), r_(r) {}

  asio::awaitable<read_result> read(asio::mutable_buffer out) override {
    auto& p = *c_.parser_;
    if (failed_) co_return read_result{failed_, 0};
    if (out.size() == 0) co_return read_result{asio::error::invalid_argument, 0};
    if (p.is_done()) co_return read_result{};
    if (p.expects_continue() && !c_.continue_sent_ && !c_.head_sent_) {
      // RFC 9110 §10.1.1: the client waits for 100 before sending; send it on the first read
      // (Go's rule, spec 23), so a handler that answers without reading never invites a body.
      c_.continue_sent_ = true;
      static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
      if (auto ec =
              co_await c_.io_.write(client_stream::gather(asio::buffer(cont.data(), cont.size()))))
        co_return fail(ec);
    }
    for (;;) {
      auto in = c_.io_.pending();
      if (p.is_done()) co_return read_result{};  // Beast parsers must not be fed after done
      if (!in.empty()) {
        error_code ec;
        auto step = p.put_body(in, out, ec);
        c_.io_.consume(step.consumed);
        if (ec) co_return fail(ec);
        bytes_ += step.written;
        if (p.is_done()) finished();
        if (step.written > 0) co_return read_result{{}, step.written};
        if (p.is_done()) co_return read_result{};
        if (step.consumed > 0) continue;
      }
      if (auto ec = co_await c_.io_.fill(c_.opts_.read_body_timeout)) {
        if (ec == asio::error::eof) ec = boost::beast::http::error::partial_message;
        if (ec == asio::error::timed_out) ec = errc::read_body_timeout;  // → 408
        co_return fail(ec);
      }
    }
  }

  std::uint64_t bytes() const noexcept { return bytes_; }
  bool failed() const noexcept { return static_cast<bool>(failed_); }

 private:
  read_result fail(error_code ec) {
    failed_ = ec;
    return {ec, 0};
  }
  void finished() {
    r_.trailer = std::move(c_.parser_->trailer());
    c_.start_watch();  // nothing more to read: a readable socket now means hang-up or pipelining
  }

  http1_session& c_;
  request& r_;
  std::uint64_t bytes_ = 0;
  error_code failed_;
};

// --- the hijacked connection (upgrades) -----------------------------------------------------

class http1_session::raw final : public byte_stream {
 public:
  explicit raw(http1_session& c) : c_(c) {}

  asio::awaitable<read_result> read_some(asio::mutable_buffer buf) override {
    auto in = c_.io_.pending();
    if (!in.empty()) {  // bytes the client sent after the request head (spec 31, #80875)
      std::size_t n = asio::buffer_copy(buf, asio::buffer(in.data(), in.size()));
      c_.io_.consume(n);
      co_return read_result{{}, n};
    }
    auto [ec, n] = co_await c_.io_.read_some(buf);
    co_return read_result{io::eof_if_truncated(ec), n};
  }
  asio::awaitable<error_code> write_all(asio::const_buffer buf) override {
    auto [ec, n] = co_await c_.io_.write_all(buf);
    co_return ec;
  }
  void shutdown_send() override { c_.io_.shutdown_send(); }
  void close() override { c_.io_.close(); }

 private:
  http1_session& c_;
};

// --- the response writer --------------------------------------------------------------------

class http1_session::writer final : public response_writer, public splice_endpoint {
 public:
  // The header maps, output buffer and log fields are the connection's, reused request after
  // request with their storage.
  writer(http1_session& c, request& r)
      : c_(c),
        r_(r),
        stream_(c),
        header_(c.s_.res_header),
        trailer_(c.s_.res_trailer),
        out_(c.s_.out),
        log_(c.s_.log) {
    header_.clear();
    trailer_.clear();
    out_.clear();
    log_.clear();
  }

  header_map& header() override { return header_; }
  header_map& trailer() override { return trailer_; }
  int status() const noexcept override { return status_; }
  bool head_sent() const noexcept override { return head_committed_; }
  std::uint64_t bytes_written() const noexcept override { return bytes_; }
  log_fields& log() override { return log_; }
  bool keep_alive() const noexcept { return keep_alive_ && !aborted_ && !hijacked_; }
  bool hijacked() const noexcept { return hijacked_; }
  bool aborted() const noexcept { return aborted_; }

  asio::awaitable<error_code> write_header(int status) override {
    if (aborted_ || hijacked_) co_return asio::error::operation_aborted;
    if (status < 100 || status > 999) co_return asio::error::invalid_argument;
    if (status_ != 0) co_return asio::error::already_started;  // final status already given
    if (status < 200 && status != 101) co_return co_await write_informational(status);
    status_ = status;
    co_return error_code{};
  }

  asio::awaitable<error_code> write(asio::const_buffer data) override {
    if (aborted_ || hijacked_) co_return asio::error::operation_aborted;
    if (!head_committed_) commit_head();
    if (framing_ == framing::none || data.size() == 0) co_return error_code{};
    error_code overflow;
    if (framing_ == framing::length) {
      if (data.size() > remaining_) {
        data = asio::buffer(data.data(), remaining_);  // never send more than declared
        overflow = asio::error::message_size;
      }
      remaining_ -= data.size();
    }
    bytes_ += data.size();
    if (framing_ == framing::chunked) http1::append_chunk_header(out_, data.size());
    std::string_view suffix = framing_ == framing::chunked ? "\r\n" : "";
    if (out_.size() + data.size() < write_through) {
      out_.append(static_cast<const char*>(data.data()), data.size());
      out_ += suffix;
      co_return overflow;
    }
    // Large write: gather the buffered bytes and the caller's, no copy.
    auto ec = co_await send(client_stream::gather(asio::buffer(out_), data,
                                                  asio::buffer(suffix.data(), suffix.size())));
    co_return ec ? ec : overflow;
  }

  asio::awaitable<error_code> flush() override {
    if (aborted_ || hijacked_) co_return asio::error::operation_aborted;
    if (!head_committed_) commit_head();
    if (out_.empty()) co_return error_code{};
    co_return co_await send(client_stream::gather(asio::buffer(out_)));
  }

  // The zero-copy relay (src/core/splice.hpp): raw bytes of a Content-Length body.
  asio::ip::tcp::socket& splice_socket() override { return c_.io_.socket(); }
  watchdog& splice_deadline() override { return c_.io_.deadline(); }
  std::chrono::milliseconds splice_timeout() const override { return c_.opts_.idle_timeout; }
  std::uint64_t splice_room() override {
    if (aborted_ || hijacked_ || c_.io_.is_tls()) return 0;  // TLS records are written by OpenSSL
    if (!head_committed_) commit_head();
    return framing_ == framing::length ? remaining_ : 0;
  }
  asio::awaitable<error_code> splice_prepare() override { co_return co_await flush(); }
  void spliced(std::uint64_t n) override {
    remaining_ -= std::min(n, remaining_);
    bytes_ += n;
  }

  byte_stream* hijack() override {
    if (status_ != 101 || !head_committed_ || !out_.empty() || hijacked_ || aborted_)
      return nullptr;
    c_.stop_watch();
    hijacked_ = true;
    return &stream_;
  }

  void abort() override {
    if (aborted_) return;
    aborted_ = true;
    c_.io_.close();
  }

  /// After the handler: complete the framing (or abort a short body) and send what is left.
  asio::awaitable<void> finish() {
    if (aborted_ || hijacked_) co_return;
    if (!head_committed_) {
      if (status_ == 0) status_ = 200;
      // A handler that wrote nothing sends an empty body with a length (as Go does).
      if (!header_.contains("content-length") && has_body(status_))
        header_.set("Content-Length", "0");
      commit_head();
    }
    if (framing_ == framing::chunked) {
      http::remove_hop_by_hop(trailer_);
      http1::append_last_chunk(out_, trailer_);
    } else if (framing_ == framing::length && remaining_ > 0) {
      // Fewer bytes than Content-Length promised: the client must see a failure (spec 47).
      log_.error = log_.error.empty() ? "response body shorter than Content-Length" : log_.error;
      abort();
      co_return;
    }
    if (!out_.empty()) co_await send(client_stream::gather(asio::buffer(out_)));
    if (framing_ == framing::close) keep_alive_ = false;
  }

 private:
  enum class framing { none, length, chunked, close };

  bool has_body(int status) const {
    return status >= 200 && status != 204 && status != 304 && r_.method != "HEAD";
  }

  asio::awaitable<error_code> write_informational(int status) {
    if (status == 100) {
      // One 100 per request: the body reader may already have sent it (spec 23).
      if (c_.continue_sent_ || !c_.parser_->expects_continue()) co_return error_code{};
      c_.continue_sent_ = true;
    }
    if (r_.version < 11) co_return error_code{};  // RFC 9110 §15.2: no 1xx to 1.0 clients
    header_map h = header_;
    h.erase("content-length");
    h.erase("transfer-encoding");
    http1::append_response_head(out_, status, h);
    co_return co_await send(client_stream::gather(asio::buffer(out_)));
  }

  void commit_head() {
    if (status_ == 0) status_ = 200;
    head_committed_ = true;
    c_.head_sent_ = true;
    keep_alive_ = c_.parser_->keep_alive() && !c_.draining_;
    if (status_ == 101) {
      framing_ = framing::none;
      keep_alive_ = false;
    } else if (status_ == 204 || (status_ >= 100 && status_ < 200)) {
      // RFC 9110 §8.6: no Content-Length in a 204 (spec 39).
      header_.erase("content-length");
      header_.erase("transfer-encoding");
      framing_ = framing::none;
    } else if (!has_body(status_)) {
      header_.erase("transfer-encoding");  // HEAD and 304 keep the upstream's length
      framing_ = framing::none;
    } else if (auto cl = header_.get("content-length"); cl && parse_length(*cl)) {
      header_.erase("transfer-encoding");
      framing_ = framing::length;
    } else {
      header_.erase("content-length");
      if (r_.version >= 11) {
        header_.set("Transfer-Encoding", "chunked");
        framing_ = framing::chunked;
      } else {
        header_.erase("transfer-encoding");
        framing_ = framing::close;  // an HTTP/1.0 client reads to EOF
        keep_alive_ = false;
      }
    }
    if (status_ != 101) {
      header_.erase("connection");
      if (!keep_alive_)
        header_.add("Connection", "close");
      else if (r_.version < 11)
        header_.add("Connection", "keep-alive");
    }
    // Not on a 101: the final response comes after the protocol switch, if ever.
    http1::append_response_head(out_, status_, header_, 11,
                                status_ >= 200 ? c_.io_.hsts_line(header_) : std::string_view());
  }

  bool parse_length(std::string_view v) {
    auto n = http::parse_content_length(v);
    if (n) remaining_ = *n;
    return n.has_value();
  }

  asio::awaitable<error_code> send(client_stream::buffers bufs) {
    error_code ec;
    if (!c_.io_.write_now(bufs, ec)) ec = co_await c_.io_.write_slow(bufs);
    out_.clear();
    if (ec) {
      aborted_ = true;
      if (log_.error.empty()) log_.error = "write to client: " + ec.message();
    }
    co_return ec;
  }

  http1_session& c_;
  request& r_;
  raw stream_;
  header_map& header_;
  header_map& trailer_;
  std::string& out_;
  int status_ = 0;
  framing framing_ = framing::none;
  std::uint64_t remaining_ = 0;
  std::uint64_t bytes_ = 0;
  bool head_committed_ = false;
  bool keep_alive_ = true;
  bool aborted_ = false;
  bool hijacked_ = false;
  log_fields& log_;
};

// --- the session ----------------------------------------------------------------------------

http1_session::http1_session(client_stream& io, worker& w, std::size_t listener,
                             asio::cancellation_signal& cancel, scratch& s,
                             std::weak_ptr<void> owner, bool draining)
    : io_(io),
      w_(w),
      opts_(w.opts),
      listener_(listener),
      cancel_(cancel),
      s_(s),
      owner_(std::move(owner)),
      draining_(draining) {}

asio::awaitable<void> http1_session::run() {
  while ((!draining_ || requests_ == 0) && co_await serve_one()) {
  }
  bool unread =
      !io_.pending().empty() || (parser_ && parser_->is_header_done() && !parser_->is_done());
  if (unread && !client_gone_ && io_.is_open()) co_await io_.linger();
  io_.close();
}

void http1_session::drain() {
  draining_ = true;
  // Between two requests of a kept-alive connection: close now (its client retries on a new
  // connection, RFC 9112 §9.3.1). A new connection that has not sent its first request yet is
  // served once (with Connection: close) if that request comes within a short grace: the
  // client connected before the drain began and may have nothing to retry on; after a binary
  // upgrade the new process accepts the rest. One that stays silent (a preconnect, a probe)
  // is closed after the grace rather than holding the drain for read_header_timeout.
  if (!idle_) return;
  if (requests_ > 0) return io_.close();
  io_.deadline().arm(std::min<std::chrono::steady_clock::duration>(opts_.read_header_timeout,
                                                                   first_request_grace));
}

void http1_session::force_close() {
  draining_ = true;
  client_gone_ = true;
  cancel_.emit(asio::cancellation_type::terminal);
  io_.close();
}

void http1_session::close_started_before(std::chrono::steady_clock::time_point t) {
  // A request is in flight from its complete head (received_at) until the next read_head
  // makes a new parser: between two requests the old time stamp is never looked at.
  if (parser_ && parser_->is_header_done() && s_.req.received_at < t) force_close();
}

bool http1_session::sweep_watch(std::uint64_t tick) {
  if (!want_watch_) return false;
  if (watch_mark_ + 2 > tick) return true;
  begin_watch();
  return false;
}

void http1_session::start_watch() {
  // With the next request already buffered the client is plainly still there.
  if (want_watch_ || watching_ || client_gone_ || !io_.pending().empty()) return;
  // Most handlers finish within milliseconds: arming a readiness wait and cancelling it for
  // each of them would cost a system call and a completion per request. The worker's sweep
  // starts the real watch once the handler has been running for a sweep period or two.
  want_watch_ = true;
  watch_mark_ = w_.want_watch();
}

void http1_session::begin_watch() {
  want_watch_ = false;
  if (watching_ || client_gone_ || !io_.pending().empty() || !io_.is_open()) return;
  watching_ = true;
  // The owner (the connection) keeps this session alive until the wait completes.
  io_.socket().async_wait(asio::socket_base::wait_read, [owner = owner_.lock(), self = this,
                                                         gen = watch_gen_](error_code ec) {
    // A stopped watch completes later; by then the next request may have
    // started its own, which this one must not disturb.
    if (gen != self->watch_gen_) return;
    self->watching_ = false;
    if (ec) return;
    char c;
    ssize_t n = ::recv(self->io_.socket().native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)))
      return;  // pipelining: the next request is already coming
    self->client_gone_ = true;
    self->cancel_.emit(asio::cancellation_type::terminal);
  });
}

void http1_session::stop_watch() {
  want_watch_ = false;
  if (!watching_) return;
  watching_ = false;
  ++watch_gen_;
  // Only the watch can be pending on this socket now: the handler is not using it.
  error_code ignored;
  io_.socket().cancel(ignored);
}

asio::awaitable<error_code> http1_session::read_head(request& req) {
  parser_.emplace(
      http1::parser_limits{opts_.max_header_bytes, opts_.max_headers, opts_.max_uri_bytes,
                           opts_.max_body_bytes, opts_.headers_with_underscores},
      req);  // method, target and fields land in req directly
  idle_ = true;
  // The head must be complete read_header_timeout after its first byte, however slowly it
  // trickles in (slowloris): one deadline for the whole head, not one per read.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  for (;;) {
    auto in = io_.pending();
    if (!in.empty()) {
      idle_ = false;
      if (!deadline) deadline = std::chrono::steady_clock::now() + opts_.read_header_timeout;
      error_code ec;
      std::size_t n = parser_->put_head(in, ec);
      if (ec) co_return ec;
      if (parser_->is_header_done()) {
        io_.consume(n);
        break;
      }
    }
    // Before the first byte: a kept-alive connection may idle between requests; a new one
    // gets the head timeout (a connection that never speaks is a slowloris too).
    std::chrono::milliseconds timeout =
        requests_ > 0 ? opts_.idle_timeout : opts_.read_header_timeout;
    if (draining_ && requests_ == 0) timeout = std::min(timeout, first_request_grace);
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          *deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) co_return make_error_code(errc::read_header_timeout);
      timeout = left;
    }
    if (auto ec = co_await io_.fill(timeout)) {
      if (ec == asio::error::timed_out && !idle_)
        co_return make_error_code(errc::read_header_timeout);
      co_return ec;
    }
    if (draining_ && io_.pending().empty()) co_return asio::error::shut_down;
  }
  req.received_at = std::chrono::steady_clock::now();
  req.version = parser_->version();
  req.local_addr.assign(io_.local());
  req.listener = listener_;
  if (auto h = req.header.get("host")) req.host.assign(*h);
  io_.set_client(req, opts_.trusted_proxies);
  if (auto ec = normalize_target(req)) co_return ec;
  auto len = parser_->length();
  req.content_length = parser_->is_done() ? 0 : (len ? static_cast<std::int64_t>(*len) : -1);
  auto rid = req.header.get("x-request-id");
  if (rid && !rid->empty() && rid->size() <= 128 && http::is_token(*rid))
    req.id.assign(*rid);
  else
    w_.make_request_id(req.id);
  co_return error_code{};
}

error_code http1_session::normalize_target(request& req) {
  // RFC 9112 §3.2: a Host that is not uri-host [":" port] (or is empty) is a 400, before it
  // can reach X-Forwarded-Host, a route or the upstream's Host.
  if (req.header.contains("host") && !http::is_valid_host(req.host)) return errc::bad_request;
  // RFC 9112 §3.2.2: in absolute-form ("GET http://h/p") the target's authority is the host
  // and any Host field is ignored; handlers and routers then see origin-form like any other.
  std::string& t = req.target;
  if (!t.empty() && t.front() != '/' && t != "*") {
    auto authority = http::split_absolute_form(t);
    if (!authority) return errc::bad_request;
    req.host = std::move(*authority);
  }
  req.raw_target.assign(t);
  // Routes match, and the upstream gets, the path with its dot segments resolved, so that
  // "/public/../internal" cannot reach a route that "/public" alone was meant to expose.
  if (!http::normalize_target(t)) return errc::bad_request;
  return {};
}

asio::awaitable<void> http1_session::reply_error(error_code ec) {
  // A request we could not parse: answer once and close (RFC 9112 §6.1 for framing errors,
  // and no upstream ever sees it, spec 60).
  int status = http1::status_for(ec);
  std::string body = std::string(reason_phrase(status)) + "\n";
  std::string out;
  header_map h;
  h.add("Content-Type", "text/plain; charset=utf-8");
  h.add("Content-Length", std::to_string(body.size()));
  h.add("Connection", "close");
  http1::append_response_head(out, status, h, 11, io_.hsts_line(h));
  out += body;
  co_await io_.write(client_stream::gather(asio::buffer(out)));
  log::debug("{} request rejected: {} ({})", io_.remote(), status, ec.message());
}

asio::awaitable<bool> http1_session::discard_body() {
  // The handler left body bytes unread: read and drop a little to keep the connection, else
  // close. Without a 100 Continue the client may never send it, so close at once.
  if (parser_->is_done()) co_return true;
  if (parser_->expects_continue() && !continue_sent_) co_return false;
  request dummy;
  request_body body(*this, dummy);
  continue_sent_ = true;  // never invite a body just to drop it
  std::uint64_t dropped = 0;
  char scratch[8192];
  bool ok = false;
  while (dropped < max_discard) {
    auto r = co_await body.read(asio::buffer(scratch));
    if (r.ec) break;
    if (r.n == 0) {
      ok = true;
      break;
    }
    dropped += r.n;
  }
  stop_watch();  // the body's end armed the hang-up watch; the next request is read directly
  co_return ok;
}

asio::awaitable<bool> http1_session::serve_one() {
  request& req = s_.req;  // reused: its strings and maps keep their storage
  req.host.clear();
  req.trailer.clear();
  req.body = nullptr;
  req.content_length = 0;
  req.tls = io_.is_tls();
  req.tls_client.assign(io_.tls_client());
  req.tls_version = io_.tls_version();
  request_access::set_client_gone(req, &client_gone_);
  req.values.clear();  // a middleware's values are the request's, not the connection's
  continue_sent_ = head_sent_ = false;
  if (auto ec = co_await read_head(req)) {
    bool silent = ec == asio::error::eof || ec == asio::error::operation_aborted ||
                  ec == asio::error::timed_out || ec == asio::error::connection_reset ||
                  ec == asio::error::shut_down || ec == asio::error::bad_descriptor;
    if (!silent) co_await reply_error(ec);
    co_return false;
  }
  ++requests_;
  request_body body(*this, req);
  req.body = &body;
  writer w(*this, req);
  if (parser_->is_done()) start_watch();
  bool threw = false;
  try {
    co_await w_.handle(w, req);
  } catch (const std::exception& e) {
    // A handler must not throw (the data plane uses error codes); if one does, the request
    // fails alone: 500 if nothing was sent yet, else the connection is aborted.
    log::error("handler threw: {}", e.what());
    w.log().error = std::string("handler threw: ") + e.what();
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
  stop_watch();
  if (w.hijacked()) co_return false;
  if (client_gone_) co_return false;
  co_await w.finish();
  if (!w.keep_alive() || body.failed()) co_return false;
  if (parser_->is_done()) co_return true;  // no coroutine frame for the common case
  co_return co_await discard_body();
}

}  // namespace trafficcop::detail
