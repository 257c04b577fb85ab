// SPDX-License-Identifier: MIT
// Accepting a client connection in fewer system calls than asio::ip::tcp::acceptor does.
//
// Asio's accept is accept(2), then assign(): the new socket is blocking, so the connection's
// first non_blocking(true) costs an ioctl(FIONBIO), and assign() marks it "possibly a dup",
// so its close costs an epoll_ctl(EPOLL_CTL_DEL) first. Here the socket comes from
// accept4(SOCK_NONBLOCK | SOCK_CLOEXEC) and is registered with Asio as the fresh, non-blocking
// socket it is: Asio then neither sets the mode again nor unregisters before closing (what it
// does for the sockets it opens itself). TCP_NODELAY is inherited from the listener
// (set_listener_options), so no setsockopt either. Issue 12, part 2: "an acceptor without the
// extra epoll_ctl/ioctl per connection". Internal to src/server: not an API.
#pragma once

#include <tuple>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "trafficcop/http.hpp"  // asio, error_code

namespace trafficcop::detail {

/// Sets what every accepted socket inherits from the listener `acc` (TCP_NODELAY), and makes
/// `acc` non-blocking for accept_nonblocking().
error_code set_listener_options(asio::ip::tcp::acceptor& acc);

/// The next connection on `acc` (set up by set_listener_options), non-blocking, with the peer's
/// address in `peer` (from accept4 itself: no getpeername). Waits for one when the backlog is
/// empty. Errors as Asio's async_accept gives them: operation_aborted once `acc` is closed,
/// no_descriptors (EMFILE), ENFILE, ...; ECONNABORTED and EINTR are retried.
asio::awaitable<std::tuple<error_code, asio::ip::tcp::socket>> accept_nonblocking(
    asio::ip::tcp::acceptor& acc, asio::ip::tcp::endpoint& peer);

}  // namespace trafficcop::detail
