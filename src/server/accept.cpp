// SPDX-License-Identifier: MIT
// accept4 with Asio's readiness wait: see accept.hpp.
#include "server/accept.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace trafficcop::detail {
namespace {

using asio::ip::tcp;
namespace socket_ops = asio::detail::socket_ops;

/// Reaches Asio's per-socket state bits. They are in basic_socket's protected `impl_`; a
/// pointer to member formed in a derived class may be applied to any basic_socket, so nothing
/// here is instantiated or cast. Asio 1.81 (Boost 1.81): reactive_socket_service's state_.
struct socket_state : tcp::socket {
  static socket_ops::state_type& of(tcp::socket& s) noexcept {
    return (s.*&socket_state::impl_).get_implementation().state_;
  }
};

}  // namespace

error_code set_listener_options(tcp::acceptor& acc) {
  error_code ec;
  acc.set_option(tcp::no_delay(true), ec);
  if (!ec) acc.non_blocking(true, ec);  // accept4 below returns EAGAIN instead of blocking
  return ec;
}

asio::awaitable<std::tuple<error_code, tcp::socket>> accept_nonblocking(tcp::acceptor& acc,
                                                                        tcp::endpoint& peer) {
  auto failed = [&](error_code ec) { return std::tuple{ec, tcp::socket(acc.get_executor())}; };
  for (;;) {
    socklen_t len = static_cast<socklen_t>(peer.capacity());
    const int fd = ::accept4(acc.native_handle(), peer.data(), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      peer.resize(len);
      tcp::socket sock(acc.get_executor());
      error_code ec;
      sock.assign(peer.protocol(), fd, ec);  // registers it with the reactor (epoll_ctl ADD)
      if (ec) {
        ::close(fd);
        co_return failed(ec);
      }
      // What accept4 made it: a stream socket, non-blocking, and no dup of anything, so that
      // Asio neither ioctl()s it into non-blocking mode nor unregisters it before close(2).
      socket_state::of(sock) = socket_ops::stream_oriented | socket_ops::user_set_non_blocking |
                               socket_ops::internal_non_blocking;
      co_return std::tuple{error_code{}, std::move(sock)};
    }
    const int err = errno;
    if (err == EINTR || err == ECONNABORTED) continue;  // as Asio: the next one
    if (err != EAGAIN && err != EWOULDBLOCK)
      co_return failed(error_code(err, asio::error::get_system_category()));
    // The backlog is empty: wait for the listener to be readable (closing it aborts the wait).
    auto [ec] =
        co_await acc.async_wait(tcp::acceptor::wait_read, asio::as_tuple(asio::use_awaitable));
    if (ec) co_return failed(ec);
  }
}

}  // namespace trafficcop::detail
