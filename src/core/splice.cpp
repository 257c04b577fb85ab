// SPDX-License-Identifier: MIT
// splice_body: socket → pipe → socket, non-blocking, waits through Asio.
#include "core/splice.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/error.hpp>

#include "core/fd_budget.hpp"

namespace trafficcop::detail {
namespace {

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
// Asked of F_SETPIPE_SZ: fewer system calls per MiB than the default 64 KiB, while what a slow
// client can pin in the kernel per relay stays a quarter MiB.
constexpr int pipe_bytes = 256 * 1024;

/// The thread's pipe budget (issue 14.5): a slow reader holds its pipe pair for as long as it
/// reads, so without a bound 1,000 slow readers cost 2,000 descriptors in pipes alone.
struct pipe_budget {
  std::size_t in_use = 0;
  std::size_t limit = 64;
};
thread_local pipe_budget pipes;

/// A pipe per relay, closed at its end and counted in the thread's budget while open. Keeping
/// empty pipes for reuse would save three system calls per large body, but leaves descriptors
/// open that belong to no connection (the fd accounting in tests/system would no longer show
/// leaks exactly); a relay moves at least 64 KiB, where those calls are noise.
struct pipe_pair {
  int r = -1;
  int w = -1;
  std::size_t capacity = 64 * 1024;
  bool counted = false;
  pipe_pair() = default;
  pipe_pair(const pipe_pair&) = delete;
  pipe_pair& operator=(const pipe_pair&) = delete;
  ~pipe_pair() {
    if (r >= 0) ::close(r);
    if (w >= 0) ::close(w);
    if (counted) --pipes.in_use;
  }
};

bool open_pipe(pipe_pair& p) {
  if (pipes.in_use >= pipes.limit) return false;  // copy through user space instead
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
    if (errno == EMFILE || errno == ENFILE) note_out_of_descriptors("splice pipe");
    return false;
  }
  p.counted = true;
  ++pipes.in_use;
  p.r = fds[0];
  p.w = fds[1];
  int got = ::fcntl(p.w, F_SETPIPE_SZ, pipe_bytes);
  if (got > 0) p.capacity = static_cast<std::size_t>(got);
  return true;
}

/// Waits until `side`'s socket is ready for `what`, under its deadline.
asio::awaitable<error_code> wait(splice_endpoint& side, asio::socket_base::wait_type what) {
  // A cancellation emitted while no operation was pending (the last wait had completed, the
  // coroutine not resumed yet) reaches only the coroutine's state: check it before waiting,
  // or a client that left would hold the relay until the upstream's timeout.
  auto cs = co_await asio::this_coro::cancellation_state;
  if (cs.cancelled() != asio::cancellation_type::none) co_return asio::error::operation_aborted;
  auto& wd = side.splice_deadline();
  wd.arm(side.splice_timeout());
  auto [ec] = co_await side.splice_socket().async_wait(what, use_nothrow);
  wd.disarm();
  if (ec == asio::error::operation_aborted && wd.expired()) ec = asio::error::timed_out;
  co_return ec;
}

}  // namespace

void set_splice_pipe_limit(std::size_t n) noexcept { pipes.limit = n; }

asio::awaitable<error_code> splice_body(splice_endpoint& from, splice_endpoint& to,
                                        std::uint64_t n) {
  pipe_pair p;
  if (!open_pipe(p)) co_return make_error_code(asio::error::no_descriptors);  // copy instead
  error_code nb;  // splice(2) on a blocking socket would block the worker; ioctl only once
  auto& src_sock = from.splice_socket();
  auto& dst_sock = to.splice_socket();
  if (!src_sock.native_non_blocking()) src_sock.native_non_blocking(true, nb);
  if (!nb && !dst_sock.native_non_blocking()) dst_sock.native_non_blocking(true, nb);
  if (nb) co_return nb;
  int in = from.splice_socket().native_handle();
  int out = to.splice_socket().native_handle();
  std::uint64_t left = n;   // still on the source socket
  std::size_t in_pipe = 0;  // read from the source, not yet written
  error_code ec;
  while (!ec && (left > 0 || in_pipe > 0)) {
    bool src_blocked = left == 0;
    bool dst_blocked = false;
    if (left > 0 && in_pipe < p.capacity) {
      auto want = static_cast<std::size_t>(std::min<std::uint64_t>(left, p.capacity - in_pipe));
      ssize_t got = ::splice(in, nullptr, p.w, nullptr, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (got > 0) {
        left -= static_cast<std::uint64_t>(got);
        in_pipe += static_cast<std::size_t>(got);
        from.spliced(static_cast<std::uint64_t>(got));
      } else if (got == 0) {
        ec = boost::beast::http::error::partial_message;  // the upstream ended early
        break;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        src_blocked = true;
      } else {
        ec = error_code(errno, boost::system::system_category());
        break;
      }
    }
    if (in_pipe > 0) {
      // No SPLICE_F_MORE: it would let the kernel hold a partial segment while the upstream
      // stalls, where the copy path (TCP_NODELAY) sends at once (spec 41).
      ssize_t put =
          ::splice(p.r, nullptr, out, nullptr, in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (put > 0) {
        in_pipe -= static_cast<std::size_t>(put);
        to.spliced(static_cast<std::uint64_t>(put));
      } else if (put < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        dst_blocked = true;
      } else {
        ec = put == 0 ? error_code(asio::error::broken_pipe)
                      : error_code(errno, boost::system::system_category());
        break;
      }
    }
    // Wait only when nothing can move: the client is slow and the pipe is full (or the
    // upstream has nothing either), or the upstream is slow and the pipe is empty. Memory
    // stays bounded by the pipe and the socket buffers.
    if (dst_blocked && (src_blocked || in_pipe >= p.capacity))
      ec = co_await wait(to, asio::socket_base::wait_write);
    else if (src_blocked && in_pipe == 0 && left > 0)
      ec = co_await wait(from, asio::socket_base::wait_read);
  }
  co_return ec;
}

}  // namespace trafficcop::detail
