// SPDX-License-Identifier: MIT
// The HTTP/1.1 exchange: one request and its response on one upstream connection.
//
// The request head goes out (a synchronous write first, the watchdog only when the socket is
// full), then the body re-framed through a fixed buffer (after a 100 Continue when the client
// asked for one), then response heads are read until a final one, 1xx heads handed to the
// request's on_informational. The response owns the connection until its body is read; its
// destructor gives a clean connection back to the worker's pool and closes any other.
//
// Failures are proxy_errors; a connection closed or reset before any response byte (often a
// pooled one the upstream had closed) is classified retry_class::reset_before_response. Replaying
// is the dispatcher's decision (transport.cpp), not this module's.
#pragma once

#include <chrono>
#include <cstddef>

#include <boost/asio/awaitable.hpp>

#include "trafficcop/transport.hpp"
#include "upstream/pool.hpp"

namespace trafficcop::upstream {

struct h1_options {
  std::size_t max_response_header_bytes = 64 * 1024;
  /// How long a connection given back stays idle in the pool, and how many per key.
  std::chrono::milliseconds idle_timeout{90'000};
  std::size_t max_idle = 64;
};

/// Sends `req` on `c` (connected, TLS done) and reads the response head. `o` must outlive the
/// response.
asio::awaitable<round_trip_result> h1_round_trip(outbound_request& req, conn_ptr c,
                                                 const h1_options& o);

/// Keeps `c` idle in the worker's pool (pool_service) under `c->key`.
void give_back(conn_ptr c, const h1_options& o);

}  // namespace trafficcop::upstream
