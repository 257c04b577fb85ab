// SPDX-License-Identifier: MIT
// The downstream HTTP/1.1 connection: request loop, body reader, response writer, hijack.
#include "server/connection.hpp"

#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>

#include "core/log.hpp"
#include "core/recycler.hpp"
#include "core/splice.hpp"
#include "http/rules.hpp"
#include "http1/serialize.hpp"
#include "server/h2_server.hpp"
#include "server/request_access.hpp"
#include "server/tls.hpp"
#include "server/worker.hpp"

namespace trafficcop::detail {

/// Draining, a new connection's first request is still served if it comes this soon (drain()).
constexpr std::chrono::milliseconds first_request_grace{1000};
namespace {

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t read_chunk = 16 * 1024;           // bytes asked of the socket per read
constexpr std::size_t write_through = 16 * 1024;        // larger writes skip the output buffer
constexpr std::size_t max_discard = 256 * 1024;         // unread body we drain to keep a connection
constexpr std::chrono::milliseconds linger_time{1000};  // draining before a close, at most

std::string endpoint_string(const asio::ip::tcp::endpoint& ep) {
  auto a = ep.address();
  std::string s = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
  return s + ":" + std::to_string(ep.port());
}

// --- the request body, pulled by the handler ------------------------------------------------

class request_body final : public body_reader {
 public:
  request_body(connection& c, request& r) : c_(c), r_(r) {}

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
      if (auto ec = co_await c_.write(connection::gather(asio::buffer(cont.data(), cont.size()))))
        co_return fail(ec);
    }
    for (;;) {
      auto in = c_.pending();
      if (p.is_done()) co_return read_result{};  // Beast parsers must not be fed after done
      if (!in.empty()) {
        error_code ec;
        auto step = p.put_body(in, out, ec);
        c_.consume(step.consumed);
        if (ec) co_return fail(ec);
        bytes_ += step.written;
        if (p.is_done()) finished();
        if (step.written > 0) co_return read_result{{}, step.written};
        if (p.is_done()) co_return read_result{};
        if (step.consumed > 0) continue;
      }
      if (auto ec = co_await c_.read_more(c_.opts_.read_body_timeout)) {
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

  connection& c_;
  request& r_;
  std::uint64_t bytes_ = 0;
  error_code failed_;
};

// --- the hijacked connection (upgrades) -----------------------------------------------------

class raw_stream final : public byte_stream {
 public:
  explicit raw_stream(connection& c) : c_(c) {}

  asio::awaitable<read_result> read_some(asio::mutable_buffer buf) override {
    auto in = c_.pending();
    if (!in.empty()) {  // bytes the client sent after the request head (spec 31, #80875)
      std::size_t n = asio::buffer_copy(buf, asio::buffer(in.data(), in.size()));
      c_.consume(n);
      co_return read_result{{}, n};
    }
    auto [ec, n] = co_await io::read_some(c_.sock_, c_.tls_.get(), buf);
    co_return read_result{io::eof_if_truncated(ec), n};
  }
  asio::awaitable<error_code> write_all(asio::const_buffer buf) override {
    auto [ec, n] = co_await io::write_all(c_.sock_, c_.tls_.get(), buf);
    co_return ec;
  }
  void shutdown_send() override {
    error_code ignored;
    c_.sock_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
  }
  void close() override { c_.close(); }

 private:
  connection& c_;
};

// --- the response writer --------------------------------------------------------------------

class writer final : public response_writer, public splice_endpoint {
 public:
  // The header maps, output buffer and log fields are the connection's, reused request after
  // request with their storage.
  writer(connection& c, request& r)
      : c_(c),
        r_(r),
        stream_(c),
        header_(c.s_->res_header),
        trailer_(c.s_->res_trailer),
        out_(c.s_->out),
        log_(c.s_->log) {
    header_.clear();
    trailer_.clear();
    out_.clear();
    log_.upstream_addr.clear();
    log_.tries = 0;
    log_.endpoint.clear();
    log_.upstream_status = 0;
    log_.upstream_latency = std::chrono::microseconds(-1);
    log_.error.clear();
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
    auto ec = co_await send(
        connection::gather(asio::buffer(out_), data, asio::buffer(suffix.data(), suffix.size())));
    co_return ec ? ec : overflow;
  }

  asio::awaitable<error_code> flush() override {
    if (aborted_ || hijacked_) co_return asio::error::operation_aborted;
    if (!head_committed_) commit_head();
    if (out_.empty()) co_return error_code{};
    co_return co_await send(connection::gather(asio::buffer(out_)));
  }

  // The zero-copy relay (src/core/splice.hpp): raw bytes of a Content-Length body.
  asio::ip::tcp::socket& splice_socket() override { return c_.sock_; }
  watchdog& splice_deadline() override { return c_.wd_; }
  std::chrono::milliseconds splice_timeout() const override { return c_.opts_.idle_timeout; }
  std::uint64_t splice_room() override {
    if (aborted_ || hijacked_ || c_.tls_) return 0;  // TLS records are written by OpenSSL
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
    c_.close();
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
    if (!out_.empty()) co_await send(connection::gather(asio::buffer(out_)));
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
    co_return co_await send(connection::gather(asio::buffer(out_)));
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
                                status_ >= 200 ? c_.hsts_line(header_) : std::string_view());
  }

  bool parse_length(std::string_view v) {
    auto n = http::parse_content_length(v);
    if (n) remaining_ = *n;
    return n.has_value();
  }

  asio::awaitable<error_code> send(connection::buffers bufs) {
    error_code ec;
    if (!c_.write_now(bufs, ec)) ec = co_await c_.write_slow(bufs);
    out_.clear();
    if (ec) {
      aborted_ = true;
      if (log_.error.empty()) log_.error = "write to client: " + ec.message();
    }
    co_return ec;
  }

  connection& c_;
  request& r_;
  raw_stream stream_;
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

}  // namespace

/// Recycled connection::scratch blocks of this worker thread (see connection.hpp): 128 x
/// ~34 KiB per worker at most.
using scratch_recycler = recycler<connection::scratch, 128>;

connection::connection(asio::ip::tcp::socket sock, worker& w, const asio::ip::tcp::endpoint& remote,
                       const asio::ip::tcp::endpoint& local, std::shared_ptr<tls_server> tls,
                       const listener_http2* http2, listener_ref listener)
    : sock_(std::move(sock)),
      w_(w),
      opts_(w.opts),
      wd_(sock_.get_executor(),
          [this] {
            error_code ignored;
            sock_.cancel(ignored);
          }),
      http2_(http2),
      listener_(listener.id),
      listener_stats_(listener.stats),
      proxy_protocol_(listener.proxy_protocol) {
  if (tls) {
    tls_certs_ = std::move(tls);
    tls_ = std::make_unique<io::tls_stream>(sock_, tls_certs_->context());
  }
  std::size_t want = std::max<std::size_t>(opts_.max_header_bytes + read_chunk, 2 * read_chunk);
  s_ = scratch_recycler::take();
  if (s_->buf_size != want) {
    s_->buf = std::make_unique_for_overwrite<char[]>(want);
    s_->buf_size = want;
  }
  error_code ec;
  if (remote.port() != 0)
    remote_ = endpoint_string(remote);
  else if (auto ep = sock_.remote_endpoint(ec); !ec)
    remote_ = endpoint_string(ep);
  if (local.port() != 0 && !local.address().is_unspecified())
    local_ = endpoint_string(local);
  else if (auto ep = sock_.local_endpoint(ec); !ec)
    local_ = endpoint_string(ep);
  w_.open.fetch_add(1, std::memory_order_relaxed);
}

connection::~connection() {
  w_.open.fetch_sub(1, std::memory_order_relaxed);
  scratch_recycler::give(std::move(s_));
}

void connection::consume(std::size_t n) noexcept {
  begin_ += n;
  if (begin_ == end_) begin_ = end_ = 0;
}

std::string_view connection::hsts_line(const header_map& h) const noexcept {
  if (!tls_certs_ || tls_certs_->hsts_line().empty()) return {};
  return h.contains("strict-transport-security") ? std::string_view() : tls_certs_->hsts_line();
}

std::string_view connection::hsts_value(const header_map& h) const noexcept {
  if (!tls_certs_ || tls_certs_->hsts_line().empty()) return {};
  return h.contains("strict-transport-security") ? std::string_view() : tls_certs_->hsts_value();
}

void connection::close() noexcept {
  error_code ignored;
  sock_.close(ignored);  // close(2) alone sends the FIN (or the RST for unread input)
}

asio::awaitable<error_code> connection::read_more(std::chrono::milliseconds timeout) {
  char* buf = s_->buf.get();
  if (end_ == s_->buf_size) {  // compact; the parser needs a head contiguous (Beast's rule)
    if (begin_ == 0) co_return make_error_code(errc::header_too_large);
    std::memmove(buf, buf + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  wd_.arm(timeout);
  auto room = asio::buffer(buf + end_, s_->buf_size - end_);
  auto [rec, n] = co_await io::read_some(sock_, tls_.get(), room);
  error_code ec = io::eof_if_truncated(rec);
  wd_.disarm();
  if (ec == asio::error::operation_aborted && wd_.expired()) ec = asio::error::timed_out;
  end_ += n;
  co_return ec;
}

bool connection::write_now(buffers& bufs, error_code& ec) noexcept {
  // The socket nearly always has room: a non-blocking write that takes everything finishes
  // here, without an asynchronous operation, a trip through the scheduler or a coroutine.
  if (tls_) return false;  // TLS records go through the asynchronous path
  std::size_t done = sock_.write_some(bufs, ec);
  if (ec == asio::error::would_block) ec = {};
  if (ec || done == asio::buffer_size(bufs)) return true;
  bufs = skip(bufs, done);
  return false;
}

asio::awaitable<error_code> connection::write(buffers bufs) {
  error_code ec;
  if (write_now(bufs, ec)) co_return ec;
  co_return co_await write_slow(bufs);
}

connection::buffers connection::skip(buffers bufs, std::size_t n) noexcept {
  for (auto& b : bufs) {
    std::size_t k = std::min(n, b.size());
    b += k;
    n -= k;
  }
  return bufs;
}

asio::awaitable<error_code> connection::write_slow(buffers bufs) {
  wd_.arm(opts_.idle_timeout);
  auto [ec, n] = co_await io::write_all(sock_, tls_.get(), bufs);
  wd_.disarm();
  if (ec == asio::error::operation_aborted && wd_.expired()) ec = asio::error::timed_out;
  co_return ec;
}

void connection::start_watch() {
  // With the next request already buffered the client is plainly still there.
  if (want_watch_ || watching_ || client_gone_ || !pending().empty()) return;
  // Most handlers finish within milliseconds: arming a readiness wait and cancelling it for
  // each of them would cost a system call and a completion per request. The worker's sweep
  // starts the real watch once the handler has been running for a sweep period or two.
  want_watch_ = true;
  watch_mark_ = w_.want_watch();
}

void connection::begin_watch() {
  want_watch_ = false;
  if (watching_ || client_gone_ || !pending().empty() || !sock_.is_open()) return;
  watching_ = true;
  sock_.async_wait(
      asio::socket_base::wait_read, [self = shared_from_this(), gen = watch_gen_](error_code ec) {
        // A stopped watch completes later; by then the next request may have
        // started its own, which this one must not disturb.
        if (gen != self->watch_gen_) return;
        self->watching_ = false;
        if (ec) return;
        char c;
        ssize_t n = ::recv(self->sock_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)))
          return;  // pipelining: the next request is already coming
        self->client_gone_ = true;
        self->cancel_signal.emit(asio::cancellation_type::terminal);
      });
}

void connection::stop_watch() {
  want_watch_ = false;
  if (!watching_) return;
  watching_ = false;
  ++watch_gen_;
  // Only the watch can be pending on this socket now: the handler is not using it.
  error_code ignored;
  sock_.cancel(ignored);
}

void connection::drain() {
  draining_ = true;
  if (h2_) return h2_drain(*h2_);
  // Between two requests of a kept-alive connection: close now (its client retries on a new
  // connection, RFC 9112 §9.3.1). A new connection that has not sent its first request yet is
  // served once (with Connection: close) if that request comes within a short grace: the
  // client connected before the drain began and may have nothing to retry on; after a binary
  // upgrade the new process accepts the rest. One that stays silent (a preconnect, a probe)
  // is closed after the grace rather than holding the drain for read_header_timeout.
  if (!idle_) return;
  if (requests_ > 0) return close();
  wd_.arm(std::min<std::chrono::steady_clock::duration>(opts_.read_header_timeout,
                                                        first_request_grace));
}

void connection::force_close() {
  draining_ = true;
  if (h2_) return h2_force_close(*h2_);
  client_gone_ = true;
  cancel_signal.emit(asio::cancellation_type::terminal);
  close();
}

void connection::close_started_before(std::chrono::steady_clock::time_point t) {
  if (h2_) return h2_cancel_started_before(*h2_, t);
  // A request is in flight from its complete head (received_at) until the next read_head
  // makes a new parser: between two requests the old time stamp is never looked at.
  if (parser_ && parser_->is_header_done() && s_->req.received_at < t) force_close();
}

asio::awaitable<bool> connection::handshake() {
  // Bounded like a request head: a client that connects and never finishes the handshake is
  // a slowloris too.
  wd_.arm(opts_.read_header_timeout);
  auto [ec] = co_await tls_->async_handshake(asio::ssl::stream_base::server, use_nothrow);
  wd_.disarm();
  if (ec) log::debug("{} TLS handshake failed: {}", remote_, ec.message());
  if (!ec) tls_client_ = client_subject(tls_->native_handle());
  if (!ec) tls_version_ = SSL_get_version(tls_->native_handle());
  co_return !ec;
}

asio::awaitable<void> connection::run() {
  co_await asio::this_coro::throw_if_cancelled(false);
  error_code ec;
  sock_.set_option(asio::ip::tcp::no_delay(true), ec);
  sock_.non_blocking(true, ec);  // write() tries a synchronous write first
  // The PROXY header comes first, before TLS (proxy_header.cpp).
  if (proxy_protocol_ && !co_await read_proxy_header()) {
    close();
    co_return;
  }
  auto& stats = *listener_stats_;
  if (tls_) {
    bool ok = co_await handshake();
    (ok ? stats.tls_ok : stats.tls_failed).fetch_add(1, std::memory_order_relaxed);
    if (!ok) {
      close();
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
    co_await serve_http2(*this, *http2_);
    close();
    co_return;
  }
  while ((!draining_ || requests_ == 0) && co_await serve_one()) {
  }
  bool unread = !pending().empty() || (parser_ && parser_->is_header_done() && !parser_->is_done());
  if (unread && !client_gone_ && sock_.is_open()) co_await linger();
  close();
}

asio::awaitable<bool> connection::wants_http2() {
  if (tls_) {
    const unsigned char* proto = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(tls_->native_handle(), &proto, &len);
    co_return len == 2 && proto[0] == 'h' && proto[1] == '2';
  }
  if (!http2_->h2c) co_return false;
  // Prior knowledge: the preface is 24 bytes; read until they tell one way or the other.
  while (end_ - begin_ < h2_preface.size()) {
    auto in = pending();
    if (h2_preface.substr(0, in.size()) != in) co_return false;
    if (draining_) co_return false;
    if (co_await read_more(opts_.read_header_timeout)) co_return false;
  }
  co_return pending().substr(0, h2_preface.size()) == h2_preface;
}

asio::awaitable<error_code> connection::read_head(request& req) {
  parser_.emplace(
      http1::parser_limits{opts_.max_header_bytes, opts_.max_headers, opts_.max_uri_bytes,
                           opts_.max_body_bytes, opts_.headers_with_underscores},
      req);  // method, target and fields land in req directly
  idle_ = true;
  // The head must be complete read_header_timeout after its first byte, however slowly it
  // trickles in (slowloris): one deadline for the whole head, not one per read.
  std::optional<std::chrono::steady_clock::time_point> deadline;
  for (;;) {
    auto in = pending();
    if (!in.empty()) {
      idle_ = false;
      if (!deadline) deadline = std::chrono::steady_clock::now() + opts_.read_header_timeout;
      error_code ec;
      std::size_t n = parser_->put_head(in, ec);
      if (ec) co_return ec;
      if (parser_->is_header_done()) {
        consume(n);
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
    if (auto ec = co_await read_more(timeout)) {
      if (ec == asio::error::timed_out && !idle_)
        co_return make_error_code(errc::read_header_timeout);
      co_return ec;
    }
    if (draining_ && pending().empty()) co_return asio::error::shut_down;
  }
  req.received_at = std::chrono::steady_clock::now();
  req.version = parser_->version();
  req.local_addr.assign(local_);
  req.listener = listener_;
  if (auto h = req.header.get("host")) req.host.assign(*h);
  set_client(req);
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

error_code connection::normalize_target(request& req) {
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

asio::awaitable<void> connection::reply_error(error_code ec) {
  // A request we could not parse: answer once and close (RFC 9112 §6.1 for framing errors,
  // and no upstream ever sees it, spec 60).
  int status = http1::status_for(ec);
  std::string body = std::string(reason_phrase(status)) + "\n";
  std::string out;
  header_map h;
  h.add("Content-Type", "text/plain; charset=utf-8");
  h.add("Content-Length", std::to_string(body.size()));
  h.add("Connection", "close");
  http1::append_response_head(out, status, h, 11, hsts_line(h));
  out += body;
  co_await write(gather(asio::buffer(out)));
  log::debug("{} request rejected: {} ({})", remote_, status, ec.message());
}

asio::awaitable<bool> connection::discard_body() {
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

asio::awaitable<void> connection::linger(std::size_t max_bytes) {
  // Closing a socket with unread input makes the kernel answer with RST, which can destroy a
  // response (a 413, a 400) before the client read it (RFC 9112 §9.6). Stop sending, drain
  // for a moment, then close: nginx's lingering_close, Go's closeWriteAndWait.
  error_code ec;
  sock_.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  if (ec) co_return;
  char scratch[4096];
  std::size_t drained = 0;
  wd_.arm(linger_time);
  while (drained < max_bytes) {
    auto [rec, n] = co_await sock_.async_read_some(asio::buffer(scratch), use_nothrow);
    if (rec) break;
    drained += n;
  }
  wd_.disarm();
}

asio::awaitable<bool> connection::serve_one() {
  request& req = s_->req;  // reused: its strings and maps keep their storage
  req.host.clear();
  req.trailer.clear();
  req.body = nullptr;
  req.content_length = 0;
  req.tls = tls_ != nullptr;
  req.tls_client.assign(tls_client_);
  req.tls_version = tls_version_;
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
