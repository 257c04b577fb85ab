// SPDX-License-Identifier: MIT
// Blocking-socket helpers for integration tests: a raw client, a tiny HTTP/1.1 message reader,
// and a scripted fake upstream that records the exact bytes it receives.
//
// Every socket has a receive timeout of a few seconds, so a broken test fails instead of
// hanging. Nothing here sleeps for correctness.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace testnet {

using namespace std::chrono_literals;
constexpr auto default_timeout = std::chrono::milliseconds(5000);

/// An owned file descriptor.
class fd_t {
 public:
  fd_t() = default;
  explicit fd_t(int fd) : fd_(fd) {}
  fd_t(fd_t&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  fd_t& operator=(fd_t&& o) noexcept;
  ~fd_t() { reset(); }
  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  void reset() noexcept;

 private:
  int fd_ = -1;
};

/// Connects to 127.0.0.1:port; the socket has SO_RCVTIMEO `timeout`. Invalid fd on failure.
fd_t connect_to(std::uint16_t port, std::chrono::milliseconds timeout = default_timeout);
void set_recv_timeout(int fd, std::chrono::milliseconds timeout);
bool send_all(int fd, std::string_view data);
/// A port that nothing listens on (bound, then closed).
std::uint16_t closed_port();
/// Number of open descriptors of this process (/proc/self/fd).
std::size_t open_fd_count();

/// Buffered blocking reader over one socket.
class reader {
 public:
  explicit reader(int fd) : fd_(fd) {}
  /// Reads until `delim` is buffered; returns the bytes up to and including it, or nullopt on
  /// EOF, error or timeout.
  std::optional<std::string> until(std::string_view delim);
  /// Exactly `n` bytes, or nullopt.
  std::optional<std::string> exact(std::size_t n);
  /// Everything until EOF (nullopt if the read timed out or failed before EOF).
  std::optional<std::string> to_eof();
  /// True if the peer closed (EOF or reset) within the socket's timeout, with no more data.
  bool closed();
  /// Bytes buffered but not consumed.
  std::string& buffered() { return buf_; }

 private:
  bool fill();  // one recv; false on EOF/error/timeout
  int fd_;
  std::string buf_;
  bool eof_ = false;
};

/// A parsed HTTP/1.1 message (request or response).
struct message {
  std::string start_line;                                    // without CRLF
  std::vector<std::pair<std::string, std::string>> headers;  // in order, as received
  std::string body;                                          // decoded
  std::vector<std::pair<std::string, std::string>> trailers;
  std::string raw;  // exact bytes of the head and body as framed on the wire
  bool chunked = false;
  bool complete = false;  // the body ended as its framing said (not cut short)
  int status = 0;         // responses

  /// First value of `name` (case-insensitive), if any.
  std::optional<std::string> header(std::string_view name) const;
  std::size_t count(std::string_view name) const;
  std::optional<std::string> trailer(std::string_view name) const;
  std::string method() const { return start_line.substr(0, start_line.find(' ')); }
  std::string target() const;
};

enum class body_kind { auto_detect, none };

/// Reads one message. For a response, `head_or_no_body` says the request was HEAD (no body).
/// Responses without CL/TE read to EOF; requests without them have no body. On a 1xx the
/// head alone is returned: call again for the final response. nullopt if no complete head.
std::optional<message> read_message(reader& r, bool is_request, bool no_body = false);

/// A client connection: fd + reader.
struct client {
  explicit client(std::uint16_t port, std::chrono::milliseconds timeout = default_timeout);
  bool send(std::string_view data) { return send_all(fd.get(), data); }
  /// Sends `raw` and reads a response (skipping no 1xx).
  std::optional<message> request(std::string_view raw, bool head = false);
  std::optional<message> response(bool head = false) { return read_message(rd, false, head); }
  /// The proxy closed the connection (EOF or reset) within the timeout.
  bool closed() { return rd.closed(); }
  void shutdown_write();

  fd_t fd;
  reader rd;
};

/// "GET /x HTTP/1.1\r\nHost: h\r\n<extra>\r\n" + body.
std::string get(std::string_view target, std::string_view extra = {});

/// One accepted upstream connection, handed to a script.
class upstream_conn {
 public:
  upstream_conn(int fd, class fake_upstream& owner) : fd_(fd), rd_(fd), owner_(owner) {}
  /// Reads one request and records it in the owner; nullopt on EOF/timeout/garbage.
  std::optional<message> read_request();
  bool send(std::string_view data) { return send_all(fd_.get(), data); }
  void shutdown_write();
  /// True if the proxy closed its side (EOF) within the socket timeout.
  bool peer_closed() { return rd_.closed(); }
  reader& rd() { return rd_; }
  int fd() const { return fd_.get(); }

 private:
  fd_t fd_;
  reader rd_;
  class fake_upstream& owner_;
};

/// A fake upstream on 127.0.0.1:port 0: one thread per connection, each running `script`.
/// The default script answers every request with `respond(request)` until the peer closes.
class fake_upstream {
 public:
  using script_fn = std::function<void(upstream_conn&)>;
  using respond_fn = std::function<std::string(const message&)>;

  fake_upstream();
  ~fake_upstream();
  fake_upstream(const fake_upstream&) = delete;
  fake_upstream& operator=(const fake_upstream&) = delete;

  std::uint16_t port() const { return port_; }
  std::string url(std::string_view path = {}) const;

  /// SO_RCVBUF of connections accepted from now on (set on the listener, so the window the
  /// upstream advertises is small from the handshake on): an upstream that stops reading then
  /// pushes back after a few KiB instead of megabytes.
  void set_receive_buffer(int bytes);

  /// Runs `s` for every new connection (replaces the default loop).
  void set_script(script_fn s);
  /// Default loop: read a request, send `r(req)`, repeat; closes after a response containing
  /// "Connection: close".
  void set_responder(respond_fn r);

  /// Requests received so far (copies).
  std::vector<message> requests();
  /// Waits until at least `n` requests arrived; false on timeout.
  bool wait_requests(std::size_t n, std::chrono::milliseconds timeout = default_timeout);
  std::size_t connections() const { return accepted_.load(); }
  /// Connections whose script has returned.
  std::size_t finished() const { return finished_.load(); }
  bool wait_finished(std::size_t n, std::chrono::milliseconds timeout = default_timeout);

  void record(const message& m);

 private:
  void accept_loop();

  fd_t listen_;
  std::uint16_t port_ = 0;
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> accepted_{0};
  std::atomic<std::size_t> finished_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  script_fn script_;
  std::vector<message> requests_;
  std::vector<int> live_fds_;  // to unblock scripts at shutdown
  std::vector<std::thread> threads_;
};

/// "HTTP/1.1 <status> X\r\n<headers>Content-Length: n\r\n\r\n<body>".
std::string response(int status, std::string_view body, std::string_view extra_headers = {});

/// A one-shot gate threads wait on (a latch without the count).
class gate {
 public:
  void open();
  bool wait(std::chrono::milliseconds timeout = default_timeout);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

/// Polls `pred` until true or the deadline; for state that has no notification (fd counts).
bool eventually(const std::function<bool()>& pred,
                std::chrono::milliseconds timeout = default_timeout);

}  // namespace testnet
