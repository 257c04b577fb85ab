// SPDX-License-Identifier: MIT
// Shared driver of the HTTP/2 fuzz targets: blocking loopback sockets with deadlines, and a
// reader of the frames a peer sent.
//
// The targets run the project's HTTP/2 code as it runs in production: an in-process
// trafficcop::server (its worker thread, its h2 session) started once per process on
// 127.0.0.1:0, fed over a real TCP connection per input. nghttp2 itself is not instrumented:
// coverage is that of the project's glue around it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"

namespace trafficcop::fuzz {

using fuzz_clock = std::chrono::steady_clock;

/// A connected (or listening) socket, closed on destruction.
class sock {
 public:
  sock() = default;
  explicit sock(int fd) : fd_(fd) {}
  sock(sock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  sock& operator=(sock&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~sock() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }

  /// Connects to 127.0.0.1:port.
  static sock connect(std::uint16_t port) {
    sock s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    check(bool(s), "socket()");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // Hundreds of connections a second leave ports in TIME_WAIT (and other work on the
    // machine takes its share): wait for one rather than report the harness's own failure.
    int tries = 0;
    while (::connect(s.fd(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      check((errno == EADDRNOTAVAIL || errno == EAGAIN || errno == EINTR) && ++tries < 500,
            "connect() to 127.0.0.1 (not EADDRNOTAVAIL, or for 5 s)");
      ::usleep(10'000);
      s = sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      check(bool(s), "socket()");
    }
    int one = 1;
    ::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return s;
  }

  /// Listens on 127.0.0.1:0; `port` gets the port.
  static sock listen(std::uint16_t& port) {
    sock s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    check(bool(s), "socket()");
    int one = 1;
    ::setsockopt(s.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    check(::bind(s.fd(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "bind()");
    check(::listen(s.fd(), 64) == 0, "listen()");
    check(::getsockname(s.fd(), reinterpret_cast<sockaddr*>(&a), &len) == 0, "getsockname()");
    port = ntohs(a.sin_port);
    return s;
  }

  /// Accepts one connection, or an empty sock after `timeout`.
  sock accept(std::chrono::milliseconds timeout) const {
    if (!wait(POLLIN, fuzz_clock::now() + timeout)) return {};
    return sock(::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC));
  }

  /// Writes all of `data` unless the peer closed first or `deadline` passed; also reads and
  /// drops what the peer sends meanwhile (into `sink` if given), so that neither side blocks
  /// on a full buffer.
  bool write_all(std::string_view data, fuzz_clock::time_point deadline,
                 std::string* sink = nullptr) {
    while (!data.empty()) {
      pollfd p{fd_, POLLIN | POLLOUT, 0};
      if (!poll_until(p, deadline)) return false;
      if (p.revents & POLLIN) {
        if (!read_some(sink)) return false;
      }
      if (p.revents & POLLOUT) {
        auto n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
        if (n > 0) data.remove_prefix(static_cast<std::size_t>(n));
      }
      if (p.revents & (POLLERR | POLLHUP) && !(p.revents & (POLLIN | POLLOUT))) return false;
    }
    return true;
  }

  /// The ways a read to the end can finish.
  enum class end { eof, reset, timeout };

  /// Reads until the peer closes or `deadline`, appending to `out` (bounded by `max`).
  end read_to_end(std::string& out, fuzz_clock::time_point deadline, std::size_t max = 1 << 20) {
    for (;;) {
      if (!wait(POLLIN, deadline)) return end::timeout;
      char buf[16384];
      auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) return end::eof;
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return end::reset;
      }
      if (out.size() < max) out.append(buf, static_cast<std::size_t>(n));
    }
  }

  /// Reads into `out` until `done(out)` is true, the peer closes or `deadline` passes.
  template <class Pred>
  bool read_until(std::string& out, fuzz_clock::time_point deadline, Pred done) {
    while (!done(std::string_view(out))) {
      if (!wait(POLLIN, deadline)) return false;
      if (!read_some(&out)) return false;
    }
    return true;
  }

  /// Listening socket: accepts and resets every connection waiting now (no wait).
  void reject_pending() const {
    for (;;) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 0) != 1) return;
      sock extra(::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC));
      if (!extra) return;
      extra.abort();
    }
  }

  /// Like read_to_end, and meanwhile resets every connection that arrives on `listener`:
  /// a second upstream connection (a retry) is refused at once rather than left waiting.
  end read_to_end_rejecting(std::string& out, fuzz_clock::time_point deadline,
                            const sock& listener) {
    for (;;) {
      pollfd p[2] = {{fd_, POLLIN, 0}, {listener.fd(), POLLIN, 0}};
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - fuzz_clock::now());
      if (left.count() <= 0) return end::timeout;
      int r = ::poll(p, 2, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return end::timeout;
      if (p[1].revents & POLLIN) listener.reject_pending();
      if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[16384];
      auto n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0) return end::eof;
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return end::reset;
      }
      if (out.size() < (1u << 20)) out.append(buf, static_cast<std::size_t>(n));
    }
  }

  void shutdown_send() { ::shutdown(fd_, SHUT_WR); }
  /// Closes with RST (SO_LINGER 0) instead of FIN: no TIME_WAIT on the fuzzer's side.
  void abort() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd_);
    fd_ = -1;
  }

 private:
  bool read_some(std::string* sink) {
    char buf[16384];
    auto n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    if (sink && sink->size() < (1 << 20)) sink->append(buf, static_cast<std::size_t>(n));
    return true;
  }
  static bool poll_until(pollfd& p, fuzz_clock::time_point deadline) {
    for (;;) {
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - fuzz_clock::now());
      if (left.count() <= 0) return false;
      int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r > 0) return true;
      if (r == 0) return false;
      if (errno != EINTR) return false;
    }
  }
  bool wait(short events, fuzz_clock::time_point deadline) const {
    pollfd p{fd_, events, 0};
    return poll_until(p, deadline);
  }

  int fd_ = -1;
};

/// One HTTP/2 frame header (RFC 9113 §4.1).
struct frame {
  std::uint32_t length = 0;
  std::uint8_t type = 0;
  std::uint8_t flags = 0;
  std::uint32_t stream = 0;
};

inline constexpr std::string_view client_preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: what a server's preface can be.
inline constexpr std::string_view empty_settings{"\0\0\0\x04\0\0\0\0\0", 9};

/// Checks that `bytes`, all a peer sent on a connection that ended cleanly, are a sequence of
/// whole, well-formed frames as RFC 9113 §4-6 constrains them (lengths, stream 0 or not, fixed
/// payload sizes), starting with a SETTINGS frame (§3.4). DATA and HEADERS must be on odd
/// streams (client-initiated: neither side of trafficcop pushes); RST_STREAM may also refuse an
/// even, pushed one. Returns the number of frames.
inline std::size_t check_frames(std::string_view bytes, std::uint32_t max_frame,
                                std::string_view input) {
  std::size_t n = 0;
  while (!bytes.empty()) {
    check(bytes.size() >= 9, "a whole frame header", input);
    const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
    frame f{static_cast<std::uint32_t>(b[0] << 16 | b[1] << 8 | b[2]), b[3], b[4],
            static_cast<std::uint32_t>((b[5] & 0x7f) << 24 | b[6] << 16 | b[7] << 8 | b[8])};
    check(bytes.size() >= 9 + f.length, "a whole frame payload", input);
    check(f.length <= max_frame, "frame length within SETTINGS_MAX_FRAME_SIZE", input);
    if (n == 0) check(f.type == 0x4 && !(f.flags & 1), "the preface is a SETTINGS frame", input);
    switch (f.type) {
      case 0x0:  // DATA
      case 0x1:  // HEADERS
      case 0x9:  // CONTINUATION
        check(f.stream != 0 && f.stream % 2 == 1, "DATA/HEADERS on a client stream", input);
        break;
      case 0x3:  // RST_STREAM: also refuses a server's pushed (even) stream
        check(f.stream != 0 && f.length == 4, "RST_STREAM: not stream 0, 4 bytes", input);
        break;
      case 0x4:  // SETTINGS
        check(f.stream == 0 && f.length % 6 == 0, "SETTINGS on stream 0, 6-byte entries", input);
        if (f.flags & 1) check(f.length == 0, "a SETTINGS ACK is empty", input);
        break;
      case 0x6:  // PING
        check(f.stream == 0 && f.length == 8, "PING on stream 0, 8 bytes", input);
        break;
      case 0x7:  // GOAWAY
        check(f.stream == 0 && f.length >= 8, "GOAWAY on stream 0", input);
        break;
      case 0x8:  // WINDOW_UPDATE
        check(f.length == 4, "WINDOW_UPDATE is 4 bytes", input);
        check((b[9] & 0x7f) | b[10] | b[11] | b[12], "a window increment is not 0", input);
        break;
      case 0x5:  // PUSH_PROMISE: neither side pushes
        check(false, "no PUSH_PROMISE", input);
        break;
      default:
        break;
    }
    bytes.remove_prefix(9 + f.length);
    ++n;
  }
  return n;
}

}  // namespace trafficcop::fuzz
