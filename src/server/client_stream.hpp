// SPDX-License-Identifier: MIT
// The downstream byte stream under both sessions (HTTP/1.1 and HTTP/2): the client's socket,
// TLS over it on a TLS listener, the read buffer, the one deadline (watchdog), the writes and
// the lingering close; plus what is known of the peer (its addresses, its TLS facts).
//
// Reading: bytes land in the read buffer; pending() is what was read and not yet consumed,
// consume() takes from its front, fill() reads more (compacting first when the buffer is full).
// Writing: write_now() is a synchronous non-blocking attempt that nearly always takes the whole
// gather list; what it leaves goes to write_slow(). write() is both, for callers that do not
// keep a coroutine frame off the common path themselves.
//
// The read buffer is lent by the owner (the connection's recycled scratch block): the stream
// never allocates per request or per connection.
#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/stream_io.hpp"
#include "core/watchdog.hpp"
#include "trafficcop/http.hpp"
#include "trafficcop/server.hpp"

namespace trafficcop::detail {

class tls_server;

class client_stream {
 public:
  /// Up to three buffers written in one gather write (head + data + framing), no allocation.
  using buffers = std::array<asio::const_buffer, 3>;

  /// `tls`: the listener's certificates (handshake() must run first), or null for plain TCP.
  /// `remote`/`local`: the addresses if the caller knows them (accept, the listener), which
  /// saves a system call each; empty ones are asked of the socket. `buf`/`buf_size`: the read
  /// buffer, owned by the caller and outliving the stream. `write_timeout` bounds write_slow().
  client_stream(asio::ip::tcp::socket sock, std::shared_ptr<tls_server> tls,
                const asio::ip::tcp::endpoint& remote, const asio::ip::tcp::endpoint& local,
                char* buf, std::size_t buf_size, std::chrono::milliseconds write_timeout);
  client_stream(const client_stream&) = delete;
  client_stream& operator=(const client_stream&) = delete;

  // --- the socket and TLS

  /// No Nagle, and non-blocking for write_now().
  void start() noexcept;
  /// The TCP socket: for readiness waits, peeks and splice (plain only), and the HTTP/2 loops.
  asio::ip::tcp::socket& socket() noexcept { return sock_; }
  /// The TLS stream over socket(), or null on a plain listener.
  io::tls_stream* tls() noexcept { return tls_.get(); }
  bool is_tls() const noexcept { return tls_ != nullptr; }
  bool is_open() const noexcept { return sock_.is_open(); }
  /// close(2): sends the FIN (or the RST for unread input); pending operations complete.
  void close() noexcept;
  void shutdown_send() noexcept;
  /// The server side of the TLS handshake, bounded by `timeout`; records the TLS facts below.
  asio::awaitable<bool> handshake(std::chrono::milliseconds timeout);
  /// ALPN chose "h2".
  bool alpn_h2() const noexcept;
  /// mTLS: the verified client certificate's subject, or "".
  const std::string& tls_client() const noexcept { return tls_client_; }
  /// "TLSv1.3": OpenSSL's static name (request::tls_version), or "" on plain TCP.
  std::string_view tls_version() const noexcept { return tls_version_; }
  /// Strict-Transport-Security for a final response whose fields are `h`: the listener's
  /// (listener_tls::hsts) as a field line (HTTP/1.1) or a value (HTTP/2), or "" when the
  /// listener has none or `h` already carries the field (the handler's or upstream's wins).
  /// The views live as long as the stream (it holds the certificates' generation).
  std::string_view hsts_line(const header_map& h) const noexcept;
  std::string_view hsts_value(const header_map& h) const noexcept;

  // --- the peer

  const std::string& remote() const noexcept { return remote_; }
  const std::string& local() const noexcept { return local_; }
  /// A PROXY header named the client: these replace the socket's addresses.
  void set_addresses(std::string remote, std::string local);
  /// remote_addr, peer_addr and forwarded_trusted of a request whose head is parsed, given
  /// the server's trusted_proxies (proxy_header.cpp).
  void set_client(request& req, const std::vector<ip_network>& trusted);

  // --- reading

  std::string_view pending() const noexcept { return {buf_ + begin_, end_ - begin_}; }
  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  /// Reads more into the buffer within `timeout` (timed_out on expiry; eof for a TLS peer
  /// that left without close_notify). header_too_large when the buffer is full of pending
  /// bytes (a head must be contiguous).
  asio::awaitable<error_code> fill(std::chrono::milliseconds timeout);
  /// The whole read buffer, for a caller that reads into it itself while nothing is pending
  /// (the PROXY header's peeks, the HTTP/2 read loop).
  asio::mutable_buffer buffer() noexcept { return {buf_, buf_size_}; }
  /// One read past the buffer, no deadline (an upgraded connection's relay).
  asio::awaitable<io::result> read_some(asio::mutable_buffer out) {
    return io::read_some(sock_, tls_.get(), out);
  }

  // --- writing

  static buffers gather(asio::const_buffer a, asio::const_buffer b = {},
                        asio::const_buffer c = {}) noexcept {
    // A function, not a braced list at the call site: g++ 12 miscompiles braced arrays inside
    // co_await expressions ("array used as initializer").
    return buffers{a, b, c};
  }
  static buffers skip(buffers bufs, std::size_t n) noexcept;
  /// The synchronous attempt of write(): true when done (`ec` set on failure); false with
  /// `bufs` advanced past what was written, for write_slow(). Always false on TLS.
  bool write_now(buffers& bufs, error_code& ec) noexcept;
  /// All of `bufs`, within the write timeout (timed_out on expiry).
  asio::awaitable<error_code> write_slow(buffers bufs);
  asio::awaitable<error_code> write(buffers bufs);
  /// All of `buf`, no deadline (an upgraded connection's relay).
  asio::awaitable<io::result> write_all(asio::const_buffer buf) {
    return io::write_all(sock_, tls_.get(), buf);
  }

  // --- the deadline and the end

  /// The stream's one deadline: on expiry the socket's pending operation is cancelled.
  watchdog& deadline() noexcept { return wd_; }
  /// Half-closes and drains the client's input for a moment before the close, so that what was
  /// sent last (an error status, a GOAWAY) is not destroyed by a reset (RFC 9112 §9.6).
  /// At most `max_bytes` and one second.
  asio::awaitable<void> linger(std::size_t max_bytes = 256 * 1024);

 private:
  asio::ip::tcp::socket sock_;
  std::shared_ptr<tls_server> tls_certs_;  // the generation this connection was accepted with
  std::unique_ptr<io::tls_stream> tls_;
  watchdog wd_;
  std::chrono::milliseconds write_timeout_;
  char* buf_;
  std::size_t buf_size_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::string remote_;
  std::string local_;
  std::string tls_client_;
  std::string_view tls_version_;
  signed char peer_trusted_ = -1;  // remote_ in trusted_proxies: 1/0, -1 until first asked
};

}  // namespace trafficcop::detail
