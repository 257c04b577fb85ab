// SPDX-License-Identifier: MIT
// Zero-copy body relay between two plain TCP sockets (Linux splice(2) through a pipe).
//
// A proxied body normally crosses user space twice: read() into a buffer, write() out of it.
// When both sides are plain TCP and the bytes need no reframing (a Content-Length body on both
// sides), the kernel can move the pages itself: socket → pipe → socket. The proxy uses it for
// the part of a large body that is not buffered yet (stream_body in src/proxy/); everything
// else keeps the ordinary copy.
#pragma once

#include <chrono>
#include <cstdint>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/watchdog.hpp"
#include "trafficcop/http.hpp"

namespace trafficcop::detail {

/// One side of a relay: a socket whose next bytes are raw body bytes (no framing, nothing
/// buffered in user space), and the deadline that bounds each wait on it.
class splice_endpoint {
 public:
  virtual ~splice_endpoint() = default;
  virtual asio::ip::tcp::socket& splice_socket() = 0;
  virtual watchdog& splice_deadline() = 0;
  virtual std::chrono::milliseconds splice_timeout() const = 0;
  /// Raw bytes that can go through this side now: for a source, the rest of the body, all of
  /// it still on the socket; for a sink, the rest of the declared length. 0 = not now.
  virtual std::uint64_t splice_room() = 0;
  /// A sink sends what it buffered (the head) first; a source has nothing to do.
  virtual asio::awaitable<error_code> splice_prepare() = 0;
  /// `n` body bytes went through the socket without the endpoint seeing them.
  virtual void spliced(std::uint64_t n) = 0;
};

/// Bodies smaller than this are copied: a pipe and two more system calls per chunk do not pay
/// off for them.
constexpr std::uint64_t min_splice_bytes = 64 * 1024;

/// Pipes in use at once on this thread (a worker's fd_plan::splice_pipes, core/fd_budget.hpp):
/// past it, splice_body() reports no_descriptors and the body is copied. Default: 64.
void set_splice_pipe_limit(std::size_t n) noexcept;

/// Moves exactly `n` bytes from `from` to `to`. no_descriptors: no pipe could be made (the
/// thread's pipe limit, or EMFILE) and nothing moved (copy instead). Other errors: the source ended
/// early (partial_message), a wait timed out (timed_out), cancellation (operation_aborted), or the
/// system call's error. Either side's spliced() tells how far it got.
asio::awaitable<error_code> splice_body(splice_endpoint& from, splice_endpoint& to,
                                        std::uint64_t n);

}  // namespace trafficcop::detail
