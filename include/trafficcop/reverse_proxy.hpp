// SPDX-License-Identifier: MIT
// reverse_proxy: a handler that forwards each request to an upstream and streams the answer
// back — Go's httputil.ReverseProxy in C++, with the same hooks and defaults (see
// shared/spec/reverse-proxy-behaviour.md, cited below as "spec N").
//
// Per request, in order:
//   1. copy the inbound request (never modified, spec 5) into an outbound_request: target URL
//      joined with the inbound path and query (spec 1-4), hop-by-hop fields removed (spec 9-11),
//      forwarding headers per `forwarded` (spec 13-16, 56), Host per `keep_host` (spec 7-8),
//      upgrade fields re-added for a valid upgrade (spec 24-26);
//   2. `rewrite(in, out)` — last, so whatever it sets is sent as written (spec 12);
//   3. a small body of declared length is read whole (`request_buffering`), then
//      `transport->round_trip(out)`; 1xx answers are relayed as they come (spec 38);
//   4. response hop-by-hop fields removed (spec 33), then `modify_response` (spec 35), then
//      `modify_response_async`, which may replace the body with a streaming filter;
//   5. the head and the body are streamed to the client with the flush policy (spec 40-42);
//      trailers follow (spec 36-37). A 101 becomes a two-way tunnel (spec 27-30).
// Any failure before the head went out reaches `error_handler` (spec 44); after, the client
// connection is aborted (spec 47).
//
// The hooks' contract (rewrite, modify_response, modify_response_async, error_handler;
// handlers and middleware too):
// - Thread: each runs on the worker thread that serves the request, inside the request's
//   coroutine, once per request, never concurrently for one request. Different requests run
//   the same hook at the same time on different workers: what a hook captures must be safe to
//   read from several threads (or be per thread). A hook must not block the thread: it stalls
//   every connection of that worker.
// - Exceptions: the data plane uses error codes; a hook that throws fails its request alone.
//   The exception leaves the proxy handler (the upstream connection, if any, is closed, never
//   pooled), the server logs "handler threw: <what()>" (and the access log's error field) and
//   answers 500 if no response head was sent, else aborts the client connection (spec 47).
//   The client connection otherwise stays usable. Nothing else is retried or reported.
// - Values: request::values carries what middleware set for this request (request_values).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "trafficcop/error.hpp"
#include "trafficcop/http.hpp"
#include "trafficcop/transport.hpp"

namespace trafficcop {

enum class forwarded_mode {
  append,   // X-Forwarded-For appended to; X-Forwarded-Host/-Proto replaced (default, spec 56)
  replace,  // trust nothing: inbound Forwarded/X-Forwarded-* dropped, fresh values set
  off,      // inbound values passed through untouched, nothing added (spec 14)
};

/// The body the proxy relays to the client, which modify_response_async may replace with a
/// filter that reads the upstream's (Go's `resp.Body = wrap(resp.Body)`).
struct response_body {
  /// What the proxy reads: the upstream's body (upstream_response::body()), or a filter.
  body_reader* reader = nullptr;
  /// Replaces the body with `filter`, which the proxy keeps until the response is relayed.
  /// `length` is the filtered body's length if known (sent as Content-Length), else -1: the
  /// upstream's Content-Length is dropped and HTTP/1.1 clients get it chunked. The filter
  /// reads the upstream's body from the reader it was given (read it to its end, or the
  /// upstream connection is closed instead of pooled); the upstream's trailers still follow.
  void replace(std::unique_ptr<body_reader> filter, std::int64_t length = -1) {
    reader = filter.get();
    owned = std::move(filter);
    content_length = length;
  }
  bool replaced() const noexcept { return owned != nullptr; }

  std::unique_ptr<body_reader> owned;
  std::int64_t content_length = -1;
};

struct reverse_proxy_options {
  /// The upstream base URL: "http://host[:port][/base][?query]". Required unless `rewrite`
  /// sets out.host/out.port itself.
  std::string upstream{};

  /// Keep the client's Host (Go's Director default, spec 7) instead of the upstream's
  /// host:port (spec 8, the default here).
  bool keep_host = false;
  forwarded_mode forwarded = forwarded_mode::append;
  /// Send the request-target's path as the client sent it (request::raw_target) instead of
  /// the normalised one that routes matched (request::target). Only for upstreams that need
  /// the exact bytes: "/a/../b" then reaches them as it is.
  bool raw_target = false;

  /// Called last on the outbound request; `in` is read-only. Default: nothing.
  std::function<void(const request& in, outbound_request& out)> rewrite{};

  /// Called for every upstream response, 101 included, after hop-by-hop removal; may edit
  /// status and header. An error sends the request to `error_handler` (502 by default).
  std::function<error_code(upstream_response& res, const request& in)> modify_response{};

  /// Like modify_response, and after it, but a coroutine: it may await (ask another service,
  /// read the body) and may replace the body with a streaming filter through `body`
  /// (response_body::replace). Not called for 101 (the tunnel has no body to filter). An error
  /// sends the request to `error_handler` (502 by default); nothing has been sent yet.
  std::function<asio::awaitable<error_code>(upstream_response& res, const request& in,
                                            response_body& body)>
      modify_response_async{};

  /// Answers a request that failed before its response head was sent. Default: the status of
  /// proxy_error::status() with a one-line body, and an error log line (499 is only logged:
  /// the client is gone).
  std::function<asio::awaitable<void>(response_writer& w, const request& in,
                                      const proxy_error& err)>
      error_handler{};

  /// Replaces the default HTTP/1.1 pooled transport (Go's RoundTripper).
  std::shared_ptr<trafficcop::transport> transport{};

  /// 0: buffer up to the write buffer, flush at the end (Go's default).
  /// < 0: flush after every write. > 0: never hold bytes longer than this: output is flushed
  /// whenever the upstream has nothing more ready, which is sooner. Forced to < 0 for
  /// text/event-stream and for bodies of unknown length (spec 41).
  std::chrono::milliseconds flush_interval{0};

  /// Request bodies with a declared length up to this many bytes are read whole before the
  /// upstream is chosen and connected (nginx's proxy_request_buffering, bounded): a client
  /// that sends its body slowly then holds no upstream connection (issue 14.5). Larger bodies,
  /// and bodies of unknown length (chunked, HTTP/2 without content-length: maybe a gRPC
  /// stream that waits for answers), are streamed as they come. 0 streams every body.
  std::uint64_t request_buffering = 64 * 1024;

  /// How long the upstream may take to send the whole response head (→ 504, spec 57), and
  /// the longest it may stall while reading the request body or sending the response body.
  /// Go waits forever by default; a proxy that cannot be hung from the network does not.
  /// 0 waits forever.
  std::chrono::milliseconds response_timeout{60'000};
};

/// Builds the proxy handler. Invalid `upstream` URLs make every request fail with 502 and an
/// error log; validate with parse_upstream_url() first.
handler make_reverse_proxy(reverse_proxy_options opts);

// upstream_url and parse_upstream_url() are in transport.hpp (outbound_request::set_url).

}  // namespace trafficcop
