// SPDX-License-Identifier: MIT
// One downstream HTTP/1.1 connection: a coroutine that reads requests, runs the handler and
// frames its response, until the client or the server ends the connection.
//
// Lifecycle of a request (see docs/architecture.md):
//   wait for the first byte (idle timeout) → read the head (read-header timeout) → validate
//   → run the handler, which pulls the body through body_reader (back-pressure) and writes
//   through response_writer → finish framing → keep alive, or close.
// While the handler runs with the request body consumed, a read-readiness watch on the socket
// notices a client that hangs up, marks the request, and cancels whatever the handler awaits
// (spec 49).
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include "core/stream_io.hpp"
#include "core/watchdog.hpp"
#include "http1/parser.hpp"
#include "server/worker.hpp"
#include "trafficcop/http.hpp"
#include "trafficcop/server.hpp"

namespace trafficcop::detail {

struct worker;
class tls_server;
class h2_connection;

class connection : public std::enable_shared_from_this<connection> {
 public:
  /// `remote`/`local`: the addresses if the caller knows them (from accept and the listener),
  /// which saves a system call each; empty ones are asked of the socket.
  /// `tls`: the listener's certificates (the handshake runs first), or null for plain TCP.
  /// `http2`: the listener's HTTP/2 settings (ALPN h2 on TLS, prior knowledge if h2c).
  /// `listener`: the listener's id (request::listener), counters and PROXY protocol setting.
  connection(asio::ip::tcp::socket sock, worker& w, const asio::ip::tcp::endpoint& remote = {},
             const asio::ip::tcp::endpoint& local = {}, std::shared_ptr<tls_server> tls = nullptr,
             const listener_http2* http2 = nullptr, listener_ref listener = {});
  ~connection();

  asio::awaitable<void> run();
  /// Graceful shutdown began: close now if between requests, else after this response (a new
  /// connection serves its first request, within read_header_timeout).
  void drain();
  /// The id of the listener it came on (listener_ref::id).
  std::size_t listener_id() const noexcept { return listener_; }
  /// The drain deadline passed: cancel the handler and close.
  void force_close();

  /// A live reload's drain_on_reload passed: the request in flight (HTTP/1.1, an upgraded
  /// tunnel included) is force_close()d if its head was received before `t`; on HTTP/2, each
  /// such stream is reset and the connection goes on.
  void close_started_before(std::chrono::steady_clock::time_point t);

  asio::cancellation_signal cancel_signal;

  // The pieces below are used by the request's body reader, response writer and hijacked
  // stream (connection.cpp); they are not an API.
  std::string_view pending() const noexcept { return {s_->buf.get() + begin_, end_ - begin_}; }
  void consume(std::size_t n) noexcept;
  asio::awaitable<error_code> read_more(std::chrono::milliseconds timeout);
  /// Up to three buffers written in one gather write (head + data + framing), no allocation.
  using buffers = std::array<asio::const_buffer, 3>;
  static buffers gather(asio::const_buffer a, asio::const_buffer b = {},
                        asio::const_buffer c = {}) noexcept {
    // A function, not a braced list at the call site: g++ 12 miscompiles braced arrays inside
    // co_await expressions ("array used as initializer").
    return buffers{a, b, c};
  }
  asio::awaitable<error_code> write(buffers bufs);
  asio::awaitable<error_code> write_slow(buffers bufs);
  /// The synchronous attempt of write(): true when done (`ec` set on failure); false with
  /// `bufs` advanced past what was written, for write_slow().
  bool write_now(buffers& bufs, error_code& ec) noexcept;
  static buffers skip(buffers bufs, std::size_t n) noexcept;
  /// The request body is consumed: watch for a hang-up from now on (deferred, see .cpp).
  void start_watch();
  /// Called by the worker's sweep: arms the readiness wait that start_watch() asked for.
  void begin_watch();
  void stop_watch();
  bool wants_watch(std::uint64_t tick) const noexcept {
    return want_watch_ && watch_mark_ + 2 <= tick;
  }
  void close() noexcept;
  /// Strict-Transport-Security for a final response whose fields are `h`: the listener's
  /// (listener_tls::hsts) as a field line (HTTP/1.1) or a value (HTTP/2), or "" when the
  /// listener has none or `h` already carries the field (the handler's or upstream's wins).
  std::string_view hsts_line(const header_map& h) const noexcept;
  std::string_view hsts_value(const header_map& h) const noexcept;
  /// Half-closes and drains the client's input for a moment before the close, so that what was
  /// sent last (an error status, a GOAWAY) is not destroyed by a reset (RFC 9112 §9.6).
  /// At most `max_bytes` and one second.
  asio::awaitable<void> linger(std::size_t max_bytes = 256 * 1024);
  /// proxy_protocol listeners: reads the PROXY header before anything else; false (close)
  /// without a valid one (proxy_header.cpp). A header naming the client sets remote_/local_.
  asio::awaitable<bool> read_proxy_header();
  /// remote_addr, peer_addr and forwarded_trusted of a request whose head is parsed
  /// (server_options::trusted_proxies).
  void set_client(request& req);

  asio::ip::tcp::socket sock_;
  /// TLS over sock_ on a TLS listener; reads and writes go through it when set.
  std::shared_ptr<tls_server> tls_certs_;  // the generation this connection was accepted with
  std::unique_ptr<io::tls_stream> tls_;
  std::string tls_client_;        // mTLS: the verified client certificate's subject
  std::string_view tls_version_;  // "TLSv1.3": OpenSSL's static name, for request::tls_version
  worker& w_;
  const server_options& opts_;
  watchdog wd_;
  std::optional<http1::request_parser> parser_;
  const listener_http2* http2_;  // null: HTTP/1.1 only
  h2_connection* h2_ = nullptr;  // set while the connection speaks HTTP/2
  bool idle_ = true;
  bool draining_ = false;
  bool client_gone_ = false;
  bool watching_ = false;
  bool want_watch_ = false;
  std::uint64_t watch_mark_ = 0;  // the worker's sweep tick when start_watch() was called
  std::uint64_t watch_gen_ = 0;   // tells a stopped watch's late completion from a live one
  bool continue_sent_ = false;
  bool head_sent_ = false;  // of the current response (so a late 100 Continue is not sent)
  std::string remote_;
  std::string local_;
  std::size_t listener_;  // listener_ref::id
  listener_stats* listener_stats_;
  bool proxy_protocol_;
  signed char peer_trusted_ = -1;  // remote_ in trusted_proxies: 1/0, -1 until first asked
  /// Per-request state reused from one request to the next, and from one connection to the
  /// next on this worker thread (a new connection takes a recycled one), so that steady
  /// traffic allocates nothing, with or without keep-alive: cleared, never freed (see
  /// header_map).
  struct scratch {
    request req;
    header_map res_header;
    header_map res_trailer;
    std::string out;  // the response writer's output buffer
    response_writer::log_fields log;
    std::unique_ptr<char[]> buf;  // the read buffer; not zero-filled
    std::size_t buf_size = 0;
  };
  std::unique_ptr<scratch> s_;

 private:
  asio::awaitable<bool> handshake();
  /// True if the client speaks HTTP/2: ALPN chose h2, or (h2c) it sent the preface.
  asio::awaitable<bool> wants_http2();
  asio::awaitable<error_code> read_head(request& req);
  asio::awaitable<bool> serve_one();
  asio::awaitable<void> reply_error(error_code ec);
  asio::awaitable<bool> discard_body();
  static error_code normalize_target(request& req);

  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::uint64_t requests_ = 0;
};

}  // namespace trafficcop::detail
