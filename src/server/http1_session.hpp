// SPDX-License-Identifier: MIT
// HTTP/1.1 on a downstream stream: a coroutine that reads requests, runs the handler and
// frames its response, until the client or the server ends the connection.
//
// Lifecycle of a request (see docs/architecture.md):
//   wait for the first byte (idle timeout) → read the head (read-header timeout) → validate
//   → run the handler, which pulls the body through body_reader (back-pressure) and writes
//   through response_writer → finish framing → keep alive, or close.
// While the handler runs with the request body consumed, a read-readiness watch on the socket
// notices a client that hangs up, marks the request, and cancels whatever the handler awaits
// (spec 49).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/cancellation_signal.hpp>

#include "http1/parser.hpp"
#include "server/client_session.hpp"
#include "server/client_stream.hpp"
#include "trafficcop/http.hpp"
#include "trafficcop/server.hpp"

namespace trafficcop::detail {

struct worker;

class http1_session final : public client_session {
 public:
  /// Per-request state reused from one request to the next, and from one connection to the
  /// next on this worker thread (a connection takes a recycled one), so that steady traffic
  /// allocates nothing, with or without keep-alive: cleared, never freed (see header_map).
  /// Owned by the connection; `buf` is its stream's read buffer.
  struct scratch {
    request req;
    header_map res_header;
    header_map res_trailer;
    std::string out;  // the response writer's output buffer
    response_writer::log_fields log;
    std::unique_ptr<char[]> buf;  // the read buffer; not zero-filled
    std::size_t buf_size = 0;
  };

  /// Draining, a new connection's first request is still served if it comes this soon
  /// (drain()); the connection applies the same grace before a session runs.
  static constexpr std::chrono::milliseconds first_request_grace{1000};

  /// `cancel`: emitted (terminal) when the client hangs up or the session is force-closed; the
  /// handler's coroutine is bound to it. `owner`: held by a pending hang-up watch, which must
  /// not outlive the session. `draining`: the drain began before the session started.
  http1_session(client_stream& io, worker& w, std::size_t listener,
                asio::cancellation_signal& cancel, scratch& s, std::weak_ptr<void> owner,
                bool draining);

  /// Serves requests until the connection ends; closes the stream.
  asio::awaitable<void> run();

  void drain() override;
  void force_close() override;
  void close_started_before(std::chrono::steady_clock::time_point t) override;
  bool sweep_watch(std::uint64_t tick) override;

 private:
  class request_body;  // the request body reader
  class raw;           // the hijacked stream (upgrades)
  class writer;        // the response writer

  asio::awaitable<error_code> read_head(request& req);
  asio::awaitable<bool> serve_one();
  asio::awaitable<void> reply_error(error_code ec);
  asio::awaitable<bool> discard_body();
  static error_code normalize_target(request& req);

  /// The request body is consumed: watch for a hang-up from now on (deferred, see .cpp).
  void start_watch();
  /// Called by the worker's sweep: arms the readiness wait that start_watch() asked for.
  void begin_watch();
  void stop_watch();

  client_stream& io_;
  worker& w_;
  const server_options& opts_;
  std::size_t listener_;  // listener_ref::id
  asio::cancellation_signal& cancel_;
  scratch& s_;
  std::weak_ptr<void> owner_;
  std::optional<http1::request_parser> parser_;
  std::uint64_t requests_ = 0;
  bool idle_ = true;
  bool draining_;
  bool client_gone_ = false;
  bool watching_ = false;
  bool want_watch_ = false;
  bool continue_sent_ = false;
  bool head_sent_ = false;        // of the current response (so a late 100 Continue is not sent)
  std::uint64_t watch_mark_ = 0;  // the worker's sweep tick when start_watch() was called
  std::uint64_t watch_gen_ = 0;   // tells a stopped watch's late completion from a live one
};

}  // namespace trafficcop::detail
