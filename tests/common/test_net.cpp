// SPDX-License-Identifier: MIT
#include "test_net.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace testnet {
namespace {

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

using fields = std::vector<std::pair<std::string, std::string>>;

/// Parses "Name: value\r\n" lines of `block` (which ends with the empty line).
fields parse_fields(std::string_view block) {
  fields out;
  while (!block.empty()) {
    auto eol = block.find("\r\n");
    auto line = block.substr(0, eol);
    block.remove_prefix(eol == std::string_view::npos ? block.size() : eol + 2);
    if (line.empty()) break;
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    out.emplace_back(std::string(line.substr(0, colon)), trim(line.substr(colon + 1)));
  }
  return out;
}

std::optional<std::string> find(const fields& f, std::string_view name) {
  for (const auto& [n, v] : f)
    if (iequal(n, name)) return v;
  return std::nullopt;
}

}  // namespace

fd_t& fd_t::operator=(fd_t&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

void fd_t::reset() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void set_recv_timeout(int fd, std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

fd_t connect_to(std::uint16_t port, std::chrono::milliseconds timeout) {
  fd_t fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return fd_t{};
  int one = 1;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  set_recv_timeout(fd.get(), timeout);
  return fd;
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::uint16_t closed_port() {
  fd_t fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);  // closed when fd goes out of scope: nothing listens there
}

std::size_t open_fd_count() {
  std::size_t n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (auto* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
    --n;  // the directory stream itself
  }
  return n;
}

// --- reader ---------------------------------------------------------------------------------

bool reader::fill() {
  if (eof_) return false;
  char tmp[16384];
  for (;;) {
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      eof_ = n == 0 || errno == ECONNRESET;
      return false;
    }
    buf_.append(tmp, static_cast<std::size_t>(n));
    return true;
  }
}

std::optional<std::string> reader::until(std::string_view delim) {
  for (;;) {
    if (auto pos = buf_.find(delim); pos != std::string::npos) {
      std::string out = buf_.substr(0, pos + delim.size());
      buf_.erase(0, pos + delim.size());
      return out;
    }
    if (!fill()) return std::nullopt;
  }
}

std::optional<std::string> reader::exact(std::size_t n) {
  while (buf_.size() < n)
    if (!fill()) return std::nullopt;
  std::string out = buf_.substr(0, n);
  buf_.erase(0, n);
  return out;
}

std::optional<std::string> reader::to_eof() {
  while (fill()) {
  }
  if (!eof_) return std::nullopt;
  return std::exchange(buf_, {});
}

bool reader::closed() {
  if (!buf_.empty()) return false;
  return !fill() && eof_ && buf_.empty();
}

// --- messages -------------------------------------------------------------------------------

std::optional<std::string> message::header(std::string_view name) const {
  return find(headers, name);
}

std::size_t message::count(std::string_view name) const {
  return static_cast<std::size_t>(std::count_if(
      headers.begin(), headers.end(), [&](const auto& f) { return iequal(f.first, name); }));
}

std::optional<std::string> message::trailer(std::string_view name) const {
  return find(trailers, name);
}

std::string message::target() const {
  auto a = start_line.find(' ');
  auto b = start_line.rfind(' ');
  return start_line.substr(a + 1, b - a - 1);
}

namespace {

/// Reads a chunked body into m (decoded) and m.raw (as framed). False if cut short.
bool read_chunked(reader& r, message& m) {
  for (;;) {
    auto line = r.until("\r\n");
    if (!line) return false;
    m.raw += *line;
    std::size_t size = std::strtoull(line->c_str(), nullptr, 16);
    if (size == 0) break;
    auto data = r.exact(size + 2);
    if (!data) return false;
    m.raw += *data;
    m.body += data->substr(0, size);
  }
  // Trailer section up to the empty line.
  std::string block;
  for (;;) {
    auto line = r.until("\r\n");
    if (!line) return false;
    m.raw += *line;
    if (*line == "\r\n") break;
    block += *line;
  }
  m.trailers = parse_fields(block + "\r\n");
  return true;
}

}  // namespace

std::optional<message> read_message(reader& r, bool is_request, bool no_body) {
  auto head = r.until("\r\n\r\n");
  if (!head) return std::nullopt;
  message m;
  m.raw = *head;
  auto eol = head->find("\r\n");
  m.start_line = head->substr(0, eol);
  m.headers = parse_fields(std::string_view(*head).substr(eol + 2));
  if (!is_request) {
    m.status = std::atoi(m.start_line.c_str() + std::min<std::size_t>(9, m.start_line.size()));
    if ((m.status >= 100 && m.status < 200) || m.status == 204 || m.status == 304) no_body = true;
  }
  auto te = m.header("transfer-encoding");
  auto cl = m.header("content-length");
  if (no_body) {
    m.complete = true;
  } else if (te && te->find("chunked") != std::string::npos) {
    m.chunked = true;
    m.complete = read_chunked(r, m);
  } else if (cl) {
    auto n = std::strtoull(cl->c_str(), nullptr, 10);
    auto body = r.exact(n);
    if (body) {
      m.body = *body;
      m.complete = true;
    } else {
      m.body = std::exchange(r.buffered(), {});
    }
    m.raw += m.body;
  } else if (is_request) {
    m.complete = true;
  } else {
    auto body = r.to_eof();
    m.complete = body.has_value();
    m.body = body.value_or(std::exchange(r.buffered(), {}));
    m.raw += m.body;
  }
  return m;
}

client::client(std::uint16_t port, std::chrono::milliseconds timeout)
    : fd(connect_to(port, timeout)), rd(fd.get()) {}

std::optional<message> client::request(std::string_view raw, bool head) {
  if (!send(raw)) return std::nullopt;
  return response(head);
}

void client::shutdown_write() { ::shutdown(fd.get(), SHUT_WR); }

std::string get(std::string_view target, std::string_view extra) {
  std::string s = "GET ";
  s += target;
  s += " HTTP/1.1\r\nHost: client.example\r\n";
  s += extra;
  s += "\r\n";
  return s;
}

std::string response(int status, std::string_view body, std::string_view extra_headers) {
  std::string s = "HTTP/1.1 " + std::to_string(status) + " X\r\n";
  s += extra_headers;
  s += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  s += body;
  return s;
}

// --- fake upstream --------------------------------------------------------------------------

std::optional<message> upstream_conn::read_request() {
  auto m = read_message(rd_, true);
  if (!m || !m->complete) return std::nullopt;
  owner_.record(*m);
  return m;
}

void upstream_conn::shutdown_write() { ::shutdown(fd_.get(), SHUT_WR); }

fake_upstream::fake_upstream() {
  listen_ = fd_t(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(listen_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(listen_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  ::listen(listen_.get(), 256);
  socklen_t len = sizeof a;
  ::getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  set_responder([](const message&) { return response(200, "ok"); });
  acceptor_ = std::thread([this] { accept_loop(); });
}

fake_upstream::~fake_upstream() {
  stopping_ = true;
  ::shutdown(listen_.get(), SHUT_RDWR);  // wakes accept()
  acceptor_.join();
  {
    std::lock_guard lk(mu_);
    for (int fd : live_fds_) ::shutdown(fd, SHUT_RDWR);  // wakes blocked scripts
  }
  for (auto& t : threads_) t.join();
}

std::string fake_upstream::url(std::string_view path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

void fake_upstream::set_receive_buffer(int bytes) {
  ::setsockopt(listen_.get(), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
}

void fake_upstream::set_script(script_fn s) {
  std::lock_guard lk(mu_);
  script_ = std::move(s);
}

void fake_upstream::set_responder(respond_fn r) {
  set_script([r = std::move(r)](upstream_conn& c) {
    while (auto req = c.read_request()) {
      std::string out = r(*req);
      if (!c.send(out)) return;
      if (out.find("Connection: close") != std::string::npos) return;
    }
  });
}

void fake_upstream::accept_loop() {
  for (;;) {
    int fd = ::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (stopping_) return;
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;
    }
    set_recv_timeout(fd, default_timeout);
    ++accepted_;
    std::lock_guard lk(mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    live_fds_.push_back(fd);
    threads_.emplace_back([this, fd, s = script_] {
      {
        upstream_conn c(fd, *this);
        s(c);
        std::lock_guard lk2(mu_);
        std::erase(live_fds_, fd);  // before the close, so the number is never reused here
      }                             // closes fd
      std::lock_guard lk2(mu_);
      ++finished_;
      cv_.notify_all();
    });
  }
}

void fake_upstream::record(const message& m) {
  std::lock_guard lk(mu_);
  requests_.push_back(m);
  cv_.notify_all();
}

std::vector<message> fake_upstream::requests() {
  std::lock_guard lk(mu_);
  return requests_;
}

bool fake_upstream::wait_requests(std::size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return requests_.size() >= n; });
}

bool fake_upstream::wait_finished(std::size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return finished_.load() >= n; });
}

// --- sync -----------------------------------------------------------------------------------

void gate::open() {
  std::lock_guard lk(mu_);
  open_ = true;
  cv_.notify_all();
}

bool gate::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return open_; });
}

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

}  // namespace testnet
