// SPDX-License-Identifier: MIT
// HTTP/2 on a downstream connection: after ALPN "h2" on TLS, or the client preface on a plain
// listener that allows prior knowledge (h2c). Every stream runs the server's handler as its
// own coroutine, through the same request / response_writer interface as HTTP/1.1.
#pragma once

#include <chrono>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "trafficcop/server.hpp"

namespace trafficcop::detail {

class connection;
class h2_connection;

/// The client connection preface (RFC 9113 §3.4).
inline constexpr std::string_view h2_preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves HTTP/2 on `c` until the client or the server ends the connection. Bytes already
/// read into the connection's buffer (the preface) are fed first.
asio::awaitable<void> serve_http2(connection& c, const listener_http2& cfg);

/// Graceful shutdown: GOAWAY(NO_ERROR), open streams finish.
void h2_drain(h2_connection& h);
/// The drain deadline passed: every stream is cancelled and the connection closed.
void h2_force_close(h2_connection& h);
/// Resets (RST_STREAM CANCEL) and cancels every running stream whose request was received
/// before `t`; the connection and its other streams go on.
void h2_cancel_started_before(h2_connection& h, std::chrono::steady_clock::time_point t);

}  // namespace trafficcop::detail
