// SPDX-License-Identifier: MIT
// The HTTP/2 session's read and write loops over a socket, and their watchdogs
// (socket_pump.hpp).
#include "http2/socket_pump.hpp"

#include <algorithm>

namespace trafficcop::h2 {
namespace {

constexpr std::size_t read_size = 32 * 1024;
constexpr std::size_t write_batch = 64 * 1024;  // frames gathered before a socket write

}  // namespace

socket_pump::socket_pump(session& s, asio::ip::tcp::socket& sock, io::tls_stream* tls,
                         std::chrono::milliseconds write_timeout, asio::mutable_buffer read_buf)
    : s_(s),
      sock_(sock),
      tls_(tls),
      write_timeout_(write_timeout),
      read_buf_(read_buf),
      read_wd_(s.executor(), [this] { on_idle(); }),
      write_wd_(s.executor(), [this] { s_.close(); }),
      done_ev_(s.executor()) {
  s_.attach(this);
}

socket_pump::~socket_pump() { s_.attach(nullptr); }

void socket_pump::stop() noexcept {
  error_code ignored;
  sock_.cancel(ignored);  // the owner closes: lingering first if it sent a GOAWAY
}

void socket_pump::idle_changed() noexcept {
  if (idle_.count() > 0 && s_.idle())
    read_wd_.arm(idle_);
  else
    read_wd_.disarm();
}

void socket_pump::on_idle() {
  // A stream may have started since the deadline was set: then it is not idle.
  if (s_.idle()) s_.terminate(NGHTTP2_NO_ERROR);
}

asio::awaitable<void> socket_pump::read_loop(std::chrono::milliseconds idle) {
  reading_ = true;
  idle_ = idle;
  if (read_buf_.size() == 0) {
    rbuf_ = std::make_unique_for_overwrite<char[]>(read_size);
    read_buf_ = asio::buffer(rbuf_.get(), read_size);
  }
  idle_changed();
  while (!s_.finished()) {
    auto [ec, n] = co_await io::read_some(sock_, tls_, read_buf_);
    if (n > 0 && !s_.feed({static_cast<const char*>(read_buf_.data()), n})) break;
    if (ec) {
      if (ec != asio::error::operation_aborted) peer_left_ = true;
      if (!read_wd_.expired()) s_.close();  // the peer left (or an I/O error)
      break;
    }
  }
  read_wd_.disarm();
  reading_ = false;
  s_.want_write();  // the writer decides when everything is out
  done_ev_.notify();
}

asio::awaitable<void> socket_pump::write_loop() {
  writing_ = true;
  for (;;) {
    wbuf_.clear();
    if (!s_.pull(wbuf_, write_batch)) s_.close();  // nghttp2 failed: nothing more goes out
    if (s_.closed()) break;
    if (!wbuf_.empty()) {
      // Once the reader has stopped (a flood, a fatal error) the last frames get a moment,
      // not the full stall timeout: a peer that does not read them loses them.
      auto limit =
          reading_ ? write_timeout_ : std::min(write_timeout_, std::chrono::milliseconds(1000));
      write_wd_.arm(limit);
      auto [ec, n] = co_await io::write_all(sock_, tls_, asio::buffer(wbuf_));
      write_wd_.disarm();
      if (ec) {
        s_.close();
        break;
      }
      continue;
    }
    // Nothing to send: done when neither side has anything left, or the reader gave up.
    if (s_.finished() || !reading_) break;
    co_await s_.write_wanted().wait();
  }
  s_.close();
  writing_ = false;
  done_ev_.notify();
}

asio::awaitable<void> socket_pump::writer_done() {
  while (writing_) co_await done_ev_.wait();
}

}  // namespace trafficcop::h2
