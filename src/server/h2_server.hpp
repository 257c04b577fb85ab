// SPDX-License-Identifier: MIT
// HTTP/2 on a downstream stream: after ALPN "h2" on TLS, or the client preface on a plain
// listener that allows prior knowledge (h2c). Every stream runs the server's handler as its
// own coroutine, through the same request / response_writer interface as HTTP/1.1. The
// session is a sibling of http1_session over the same client_stream (client_session.hpp).
#pragma once

#include <cstddef>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "trafficcop/server.hpp"

namespace trafficcop::detail {

class client_stream;
class client_session;
struct worker;

/// The client connection preface (RFC 9113 §3.4).
inline constexpr std::string_view h2_preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves HTTP/2 on `io` until the client or the server ends the connection. Bytes already
/// read into the stream's buffer (the preface) are fed first. `listener`: the listener's id
/// (request::listener). `draining`: the drain began before. `active` points to the session
/// while it runs (drain, force close, close_started_before), and is reset to null after.
asio::awaitable<void> serve_http2(client_stream& io, worker& w, std::size_t listener,
                                  const listener_http2& cfg, bool draining,
                                  client_session*& active);

}  // namespace trafficcop::detail
