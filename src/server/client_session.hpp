// SPDX-License-Identifier: MIT
// What the worker asks of a downstream session, whatever its protocol: the HTTP/1.1 session
// (http1_session.hpp) and the HTTP/2 one (h2_server.cpp) are siblings over a client_stream,
// and the connection that owns them forwards the worker's calls to the active one.
#pragma once

#include <chrono>
#include <cstdint>

namespace trafficcop::detail {

class client_session {
 public:
  /// Graceful shutdown began. HTTP/1.1: close now if between requests, else after this
  /// response (a new connection serves its first request within a short grace). HTTP/2:
  /// GOAWAY(NO_ERROR), open streams finish.
  virtual void drain() = 0;
  /// The drain deadline passed: every request in flight is cancelled and the stream closed.
  virtual void force_close() = 0;
  /// A live reload's drain_on_reload passed: the request in flight (HTTP/1.1, an upgraded
  /// tunnel included) is force_close()d if its head was received before `t`; on HTTP/2, each
  /// such stream is reset and the connection goes on.
  virtual void close_started_before(std::chrono::steady_clock::time_point t) = 0;
  /// The worker's hang-up sweep at `tick` (worker::sweep_watches): starts a watch that is due;
  /// true while one is still wanted later. Only HTTP/1.1 watches for hang-ups.
  virtual bool sweep_watch(std::uint64_t) { return false; }

 protected:
  ~client_session() = default;
};

}  // namespace trafficcop::detail
