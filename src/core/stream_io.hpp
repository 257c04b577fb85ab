// SPDX-License-Identifier: MIT
// Reads and writes on a TCP socket that may carry TLS, for both sides of the proxy.
//
// Plain functions returning the operation's awaitable (the same type for the socket and for
// the TLS stream), not coroutines: choosing the stream costs no coroutine frame.
#pragma once

#include <cstddef>
#include <tuple>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "trafficcop/http.hpp"

namespace trafficcop::io {

/// TLS over a socket owned elsewhere (the connection keeps the socket for peeks and splice).
using tls_stream = asio::ssl::stream<asio::ip::tcp::socket&>;
using result = std::tuple<error_code, std::size_t>;

/// async_read_some on `tls` if set, else on `sock`; (ec, n) as Asio gives it.
inline asio::awaitable<result> read_some(asio::ip::tcp::socket& sock, tls_stream* tls,
                                         asio::mutable_buffer buf) {
  constexpr auto token = asio::as_tuple(asio::use_awaitable);
  return tls ? tls->async_read_some(buf, token) : sock.async_read_some(buf, token);
}

/// async_write of all of `bufs` on `tls` if set, else on `sock`.
template <class Buffers>
asio::awaitable<result> write_all(asio::ip::tcp::socket& sock, tls_stream* tls,
                                  const Buffers& bufs) {
  constexpr auto token = asio::as_tuple(asio::use_awaitable);
  return tls ? asio::async_write(*tls, bufs, token) : asio::async_write(sock, bufs, token);
}

/// A peer that closes without TLS close_notify ends the stream like a TCP EOF: the HTTP
/// framing (Content-Length, chunked) still tells a complete message from a cut one.
inline error_code eof_if_truncated(error_code ec) {
  return ec == asio::ssl::error::stream_truncated ? error_code(asio::error::eof) : ec;
}

/// True once the coroutine's exchange was cancelled (the client left, spec 49). A cancellation
/// emitted while no operation is pending (one has completed, the coroutine has not resumed
/// yet) reaches no operation, only the coroutine's cancellation state; unless each wait checks
/// it first, the exchange goes on waiting for an answer nobody will read, holding both
/// connections.
///
/// Checked inline (`io::cancelled(co_await asio::this_coro::cancellation_state)`), not through
/// a helper coroutine: each coroutine call is a frame allocation, and this check runs several
/// times per request.
inline bool cancelled(const asio::cancellation_state& cs) noexcept {
  return cs.cancelled() != asio::cancellation_type::none;
}

}  // namespace trafficcop::io
