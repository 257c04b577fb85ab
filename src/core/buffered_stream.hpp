// SPDX-License-Identifier: MIT
// A TCP socket, TLS over it when started, one deadline and a read buffer: the byte stream
// under both sides of the proxy (the client's server/client_stream.hpp, the upstream's
// upstream::conn).
//
// Reading: bytes land in the read buffer; pending() is what was read and not consumed yet,
// consume() takes from its front, fill() reads more under the deadline (compacting first).
// The buffer is lent by the owner (fixed: full of pending bytes, fill() fails with
// header_too_large) or owned (made on the first fill, doubled when full of pending bytes).
// Writing: write_now() is the synchronous non-blocking attempt that nearly always takes the
// whole gather list, with no asynchronous operation, scheduler trip or coroutine frame;
// write_within() writes the rest under the deadline.
#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include "core/stream_io.hpp"
#include "core/watchdog.hpp"

namespace trafficcop::io {

class buffered_stream {
 public:
  /// An owned read buffer of `initial` bytes, made on the first fill().
  buffered_stream(asio::ip::tcp::socket sock, std::size_t initial);
  /// A read buffer lent by the caller, outliving the stream.
  buffered_stream(asio::ip::tcp::socket sock, char* buf, std::size_t size);
  buffered_stream(const buffered_stream&) = delete;
  buffered_stream& operator=(const buffered_stream&) = delete;

  // --- the socket and TLS

  /// The TCP socket: readiness waits, peeks, splice (plain only), the HTTP/2 loops.
  asio::ip::tcp::socket& socket() noexcept { return sock_; }
  /// TLS over socket() from now on (its handshake is the caller's); reads and writes go
  /// through it.
  tls_stream& start_tls(asio::ssl::context& ctx);
  /// The TLS stream, or null on plain TCP.
  tls_stream* tls() const noexcept { return tls_.get(); }
  bool is_tls() const noexcept { return tls_ != nullptr; }
  bool is_open() const noexcept { return sock_.is_open(); }
  /// close(2): sends the FIN (or the RST for unread input); pending operations complete.
  void close() noexcept;
  void shutdown_send() noexcept;
  /// The stream's one deadline: on expiry the socket's pending operation is cancelled.
  watchdog& deadline() noexcept { return wd_; }

  // --- reading

  std::string_view pending() const noexcept { return {buf_ + begin_, end_ - begin_}; }
  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  /// Reads more into the buffer within `timeout` (0 = none): timed_out on expiry, eof for a
  /// TLS peer that left without close_notify, header_too_large when a lent buffer is full.
  /// With `unless_cancelled`, a coroutine already cancelled (io::cancelled) gets
  /// operation_aborted without reading (the upstream side: the client left, spec 49).
  asio::awaitable<error_code> fill(std::chrono::milliseconds timeout,
                                   bool unless_cancelled = false);
  /// The whole read buffer (lent or made), for a caller that reads into it itself while
  /// nothing is pending (the PROXY header's peeks, the HTTP/2 read loop).
  asio::mutable_buffer buffer();
  /// One read past the buffer, no deadline (an upgraded connection's relay).
  asio::awaitable<result> read_some(asio::mutable_buffer out) {
    return io::read_some(sock_, tls_.get(), out);
  }

  // --- writing

  /// The synchronous attempt: true when the write is over (`ec` its result); false when the
  /// socket took only `done` bytes (always 0 on TLS, whose records go the asynchronous way).
  template <class Buffers>
  bool write_now(const Buffers& bufs, error_code& ec, std::size_t& done) noexcept {
    done = 0;
    if (tls_) return false;
    done = sock_.write_some(bufs, ec);
    if (ec == asio::error::would_block) ec = {};
    return ec || done == asio::buffer_size(bufs);
  }
  /// All of `bufs` within `timeout` (0 = none): timed_out on expiry. By value: the
  /// coroutine keeps its own copy.
  template <class Buffers>
  asio::awaitable<error_code> write_within(Buffers bufs, std::chrono::milliseconds timeout) {
    wd_.arm(timeout);
    auto [ec, n] = co_await io::write_all(sock_, tls_.get(), bufs);
    wd_.disarm();
    if (ec == asio::error::operation_aborted && wd_.expired()) ec = asio::error::timed_out;
    co_return ec;
  }
  /// All of `buf`, no deadline (an upgraded connection's relay).
  asio::awaitable<result> write_all(asio::const_buffer buf) {
    return io::write_all(sock_, tls_.get(), buf);
  }

 private:
  asio::ip::tcp::socket sock_;
  std::unique_ptr<tls_stream> tls_;
  watchdog wd_;
  std::vector<char> own_;  // the owned buffer (empty when lent, or before the first fill)
  char* buf_;
  std::size_t size_;
  bool lent_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace trafficcop::io
