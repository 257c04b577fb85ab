// SPDX-License-Identifier: MIT
// The downstream byte stream under both sessions (HTTP/1.1 and HTTP/2): the buffered stream
// both sides share (core/buffered_stream.hpp: socket, TLS, read buffer, deadline, writes) plus
// what only the client side has: the server's TLS handshake and HSTS, the lingering close,
// gather writes under the write timeout, and what is known of the peer (its addresses, its
// TLS facts).
//
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

#include "core/buffered_stream.hpp"
#include "trafficcop/http.hpp"
#include "trafficcop/server.hpp"

namespace trafficcop::detail {

class tls_server;

class client_stream : public io::buffered_stream {
 public:
  /// Up to three buffers written in one gather write (head + data + framing), no allocation.
  using buffers = std::array<asio::const_buffer, 3>;

  /// `tls`: the listener's certificates (handshake() must run first), or null for plain TCP.
  /// `sock` comes from accept_nonblocking (server/accept.hpp): already non-blocking, as
  /// write_now() needs, and without Nagle (TCP_NODELAY from its listener).
  /// `remote`/`local`: the addresses if the caller knows them (accept, the listener), which
  /// saves a system call each; empty ones are asked of the socket. `buf`/`buf_size`: the read
  /// buffer, owned by the caller and outliving the stream. `write_timeout` bounds write_slow().
  client_stream(asio::ip::tcp::socket sock, std::shared_ptr<tls_server> tls,
                const asio::ip::tcp::endpoint& remote, const asio::ip::tcp::endpoint& local,
                char* buf, std::size_t buf_size, std::chrono::milliseconds write_timeout);

  // The socket, TLS stream, deadline, read buffer (pending, consume, fill, buffer) and the
  // relay's read_some / write_all: io::buffered_stream.

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
  /// the server's trusted_proxies.
  void set_client(request& req, const std::vector<ip_network>& trusted);

  // --- writing

  static buffers gather(asio::const_buffer a, asio::const_buffer b = {},
                        asio::const_buffer c = {}) noexcept {
    // A function, not a braced list at the call site: g++ 12 miscompiles braced arrays inside
    // co_await expressions ("array used as initializer").
    return buffers{a, b, c};
  }
  static buffers skip(buffers bufs, std::size_t n) noexcept;
  using io::buffered_stream::write_now;
  /// The synchronous attempt of write(): true when done (`ec` set on failure); false with
  /// `bufs` advanced past what was written, for write_slow(). Always false on TLS.
  bool write_now(buffers& bufs, error_code& ec) noexcept {
    std::size_t done;
    if (write_now(bufs, ec, done)) return true;
    bufs = skip(bufs, done);
    return false;
  }
  /// All of `bufs`, within the write timeout (timed_out on expiry).
  asio::awaitable<error_code> write_slow(buffers bufs) {
    return write_within(bufs, write_timeout_);  // by value: no reference outlives this call
  }
  asio::awaitable<error_code> write(buffers bufs);

  /// Half-closes and drains the client's input for a moment before the close, so that what was
  /// sent last (an error status, a GOAWAY) is not destroyed by a reset (RFC 9112 §9.6).
  /// At most `max_bytes` and one second.
  asio::awaitable<void> linger(std::size_t max_bytes = 256 * 1024);

 private:
  std::shared_ptr<tls_server> tls_certs_;  // the generation this connection was accepted with
  std::chrono::milliseconds write_timeout_;
  std::string remote_;
  std::string local_;
  std::string tls_client_;
  std::string_view tls_version_;
  signed char peer_trusted_ = -1;  // remote_ in trusted_proxies: 1/0, -1 until first asked
};

}  // namespace trafficcop::detail
