// SPDX-License-Identifier: MIT
// The I/O side of an HTTP/2 session on a connection: a socket (or TLS over it), the read and
// write loops that move bytes between it and the sans-I/O session (session.hpp), and the two
// watchdogs, read idle and write stall. The server's h2_connection and the upstream h2_client
// make one when they run on a real connection; in memory (tests, fuzz targets) there is none.
//
// The read loop reads and feeds until the session is finished or the socket ends; `idle`
// bounds a read while the session is idle() (no stream in flight), and expiry ends the
// session with GOAWAY(NO_ERROR). The write loop pulls what nghttp2 queued, up to a batch, and
// writes it, each write bounded by the write timeout (a peer that never reads is closed); it
// waits on the session's write_wanted() event in between, and stops once neither side has
// anything left to do or the reader has stopped. The owner closes the socket when both ended.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/stream_io.hpp"
#include "core/watchdog.hpp"
#include "http2/session.hpp"

namespace trafficcop::h2 {

class socket_pump final : public driver {
 public:
  /// Drives `s` over `sock` (through `tls` if not null) from now on; detaches on destruction.
  /// `write_timeout` bounds each write. `read_buf`: where reads land, lent by the owner (else
  /// one is made).
  socket_pump(session& s, asio::ip::tcp::socket& sock, io::tls_stream* tls,
              std::chrono::milliseconds write_timeout, asio::mutable_buffer read_buf = {});
  ~socket_pump();
  socket_pump(const socket_pump&) = delete;
  socket_pump& operator=(const socket_pump&) = delete;

  /// A read loop is coming: call before the write loop starts, which stops once nothing is
  /// read any more.
  void will_read() noexcept { reading_ = true; }
  /// Reads and feeds until the session or the socket ends. `idle` bounds a read while the
  /// session is idle() (0 = unbounded).
  asio::awaitable<void> read_loop(std::chrono::milliseconds idle);
  /// Sends what nghttp2 has queued until the session has nothing left to do.
  asio::awaitable<void> write_loop();
  /// Until the write loop (started) has ended.
  asio::awaitable<void> writer_done();

  bool reading() const noexcept { return reading_; }
  bool writing() const noexcept { return writing_; }
  /// The read side saw EOF or an error (not a cancel of ours).
  bool peer_left() const noexcept { return peer_left_; }

  // driver
  void stop() noexcept override;
  void idle_changed() noexcept override;

 private:
  void on_idle();

  session& s_;
  asio::ip::tcp::socket& sock_;
  io::tls_stream* tls_;
  std::chrono::milliseconds write_timeout_;
  std::chrono::milliseconds idle_{0};
  asio::mutable_buffer read_buf_;
  std::unique_ptr<char[]> rbuf_;
  std::string wbuf_;
  watchdog read_wd_;
  watchdog write_wd_;
  event done_ev_;  // a loop ended
  bool reading_ = false;
  bool writing_ = false;
  bool peer_left_ = false;
};

}  // namespace trafficcop::h2
