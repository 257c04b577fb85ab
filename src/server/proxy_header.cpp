// SPDX-License-Identifier: MIT
// The downstream connection's client address: the PROXY protocol header of a proxy_protocol
// listener, read before anything else (TLS included). (The client behind trusted proxies:
// client_stream::set_client.)
//
// The header is read with MSG_PEEK and then taken off the socket exactly: a header's bytes
// are consumed and nothing after it, so the TLS handshake or the HTTP parser finds the
// stream as the client sent it. While a header is incomplete every byte seen is part of it
// (a header is a prefix of the stream), so those are consumed too and the next wait for
// readability does not spin on bytes already peeked. One deadline (read_header_timeout)
// bounds the whole header, however slowly it trickles in; its size is bounded by
// proxy_protocol::max_header_bytes.
#include <sys/socket.h>

#include <cerrno>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/log.hpp"
#include "http/proxy_protocol.hpp"
#include "server/connection.hpp"

namespace trafficcop::detail {

namespace pp = proxy_protocol;

asio::awaitable<bool> connection::read_proxy_header() {
  // Nothing is pending yet: the stream's read buffer holds the header while it is parsed.
  auto space = io_.buffer();
  char* buf = static_cast<char*>(space.data());
  const std::size_t cap = std::min(space.size(), pp::max_header_bytes);
  const int fd = io_.socket().native_handle();
  const auto deadline = std::chrono::steady_clock::now() + opts_.read_header_timeout;
  std::size_t have = 0;  // header bytes already taken off the socket, at buf[0..have)
  std::string_view why;
  for (;;) {
    ssize_t n = ::recv(fd, buf + have, cap - have, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      why = "connection closed before a complete PROXY header";
      break;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      why = "read failed";
      break;
    }
    if (n > 0) {
      auto r = pp::parse({buf, have + static_cast<std::size_t>(n)}, cap);
      if (r.st == pp::status::invalid) {
        why = r.error;
        break;
      }
      const std::size_t take =
          r.st == pp::status::done ? r.h.size - have : static_cast<std::size_t>(n);
      if (::recv(fd, buf + have, take, MSG_DONTWAIT) != static_cast<ssize_t>(take)) {
        why = "read failed";
        break;
      }
      have += take;
      if (r.st == pp::status::done) {
        if (r.h.has_addresses)
          io_.set_addresses(
              pp::to_string(r.h.source),
              pp::to_string(
                  r.h.destination));  // else LOCAL / UNKNOWN: the connection's own addresses stand
        co_return true;
      }
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      why = "no complete PROXY header within timeouts.read_header";
      break;
    }
    auto& wd = io_.deadline();
    wd.arm(left);
    auto [ec] = co_await io_.socket().async_wait(asio::socket_base::wait_read,
                                                 asio::as_tuple(asio::use_awaitable));
    wd.disarm();
    if (ec) {
      why = wd.expired() ? "no complete PROXY header within timeouts.read_header"
                         : "connection closed while reading the PROXY header";
      break;
    }
  }
  log::debug("{} PROXY protocol: {}: closing", io_.remote(), why);
  co_return false;
}

}  // namespace trafficcop::detail
