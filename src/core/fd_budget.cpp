// SPDX-License-Identifier: MIT
// The descriptor budget: RLIMIT_NOFILE, the per-worker plan, shedding, rate-limited logs.
#include "core/fd_budget.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <limits>
#include <string_view>

#include "core/log.hpp"

namespace trafficcop::detail {
namespace {

/// Descriptors that do not grow with connections: stdio, logs, the main thread's event loop,
/// the admin listener, DNS, config reads; plus per worker its event loop (epoll, eventfd,
/// timerfd) and one listening socket per listener.
constexpr std::uint64_t fixed_reserve = 64;
constexpr std::uint64_t per_worker_reserve = 4;
/// A sixteenth of the limit is kept for what grows with the configuration rather than with
/// connections: health-check connections, idle pooled upstream connections, HTTP/2 streams
/// that hold an upstream connection each.
constexpr std::uint64_t proportional_reserve_div = 16;
/// A pipe pair costs two descriptors for as long as its client reads, and pins up to its
/// capacity (256 KiB, core/splice.cpp) of kernel memory: a slow reader holding one costs 3.6
/// descriptors instead of 2 (issue 14.5). 64 pairs per worker still splice every large body
/// of a busy worker's fast clients (the 1 MiB benchmark runs 25 at once per worker) and bound
/// the pinned memory to 16 MiB per worker; past them, bodies are copied through a 32 KiB
/// user-space buffer, which costs CPU, not descriptors.
constexpr std::size_t max_splice_pipes = 64;
/// Per worker, for the spare descriptor and the connection being shed.
constexpr std::uint64_t accept_reserve = 4;

std::uint64_t kernel_nr_open() noexcept {
  std::uint64_t n = 1 << 20;  // the kernel's default
  if (FILE* f = std::fopen("/proc/sys/fs/nr_open", "re")) {
    unsigned long long v = 0;
    if (std::fscanf(f, "%llu", &v) == 1 && v > 0) n = v;
    std::fclose(f);
  }
  return n;
}

/// Lets one caller through a second; counts the others, and tells the one let through how
/// many calls there were since the last (itself included).
class once_a_second {
 public:
  std::uint64_t pass() noexcept {
    count_.fetch_add(1, std::memory_order_relaxed);
    auto now = std::chrono::steady_clock::now().time_since_epoch().count();
    auto last = last_.load(std::memory_order_relaxed);
    constexpr auto period =
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::seconds(1))
            .count();
    if (now - last < period) return 0;
    if (!last_.compare_exchange_strong(last, now, std::memory_order_relaxed)) return 0;
    return count_.exchange(0, std::memory_order_relaxed);
  }

 private:
  std::atomic<std::int64_t> last_{std::numeric_limits<std::int64_t>::min() / 2};
  std::atomic<std::uint64_t> count_{0};
};

once_a_second emfile_gate;
once_a_second shed_gate;

}  // namespace

nofile_limit raise_nofile_limit() noexcept {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return {};
  nofile_limit r{rl.rlim_cur, rl.rlim_cur};
  rlim_t want = rl.rlim_max;
  // RLIM_INFINITY (or any hard limit above nr_open) cannot be the soft limit: setrlimit fails.
  if (want == RLIM_INFINITY || want > kernel_nr_open()) want = kernel_nr_open();
  if (want <= rl.rlim_cur) return r;
  rl.rlim_cur = want;
  if (::setrlimit(RLIMIT_NOFILE, &rl) == 0) r.now = want;
  return r;
}

fd_plan plan_descriptors(std::uint64_t nofile, unsigned workers, std::size_t listeners) noexcept {
  workers = std::max(1u, workers);
  std::uint64_t reserved = fixed_reserve + nofile / proportional_reserve_div +
                           workers * (per_worker_reserve + listeners + accept_reserve);
  std::uint64_t share = nofile > reserved ? (nofile - reserved) / workers : 0;
  fd_plan p;
  p.splice_pipes = static_cast<std::size_t>(std::min<std::uint64_t>(share / 16, max_splice_pipes));
  std::uint64_t for_connections = share - 2 * p.splice_pipes;
  // Each client connection may hold an upstream connection too. At least one connection, so
  // that a tiny limit still serves (and fails loudly at EMFILE) instead of refusing everyone.
  p.connections = static_cast<std::size_t>(std::max<std::uint64_t>(1, for_connections / 2));
  return p;
}

bool note_out_of_descriptors(const char* where) noexcept {
  auto n = emfile_gate.pass();
  if (n == 0) return false;
  try {
    log::warn(
        "out of descriptors (EMFILE) in {}: {} time(s) in the last second; new "
        "connections are shed until descriptors free up",
        where, n);
  } catch (...) {
  }
  return true;
}

bool note_shed(std::size_t limit) noexcept {
  auto n = shed_gate.pass();
  if (n == 0) return false;
  try {
    log::warn(
        "worker at its descriptor budget ({} connections): {} new connection(s) shed in "
        "the last second (raise `ulimit -n` to serve more)",
        limit, n);
  } catch (...) {
  }
  return true;
}

void shed_connection(int fd, bool plaintext) noexcept {
  // What the client sent already is read and dropped: closing a socket with unread input
  // sends a reset, which can destroy the 503 before the client reads it (RFC 9112 §9.6).
  char drain[4096];
  while (::recv(fd, drain, sizeof drain, MSG_DONTWAIT) > 0) {
  }
  if (plaintext) {
    static constexpr std::string_view busy =
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 20\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n"
        "\r\n"
        "Service Unavailable\n";
    // A fresh socket's send buffer takes this whole; a short write only shortens the answer.
    [[maybe_unused]] auto n = ::send(fd, busy.data(), busy.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
  }
  ::close(fd);
}

void spare_descriptor::take() noexcept {
  if (fd_ < 0) fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

void spare_descriptor::release() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool spare_descriptor::shed_one(int listener, bool plaintext) noexcept {
  if (fd_ < 0) {
    take();  // descriptors may have freed up since
    return false;
  }
  release();
  int c = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (c >= 0) shed_connection(c, plaintext);
  take();
  return c >= 0;
}

}  // namespace trafficcop::detail
