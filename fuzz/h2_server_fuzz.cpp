// SPDX-License-Identifier: MIT
// libFuzzer target: the HTTP/2 server glue (src/server/h2_server.cpp and h2_callbacks.cpp over
// the sans-I/O src/http2/session.cpp) on arbitrary client frames, in memory: no socket.
//
// Each input is what a client sends after the connection preface: frames, HPACK blocks,
// garbage. An h2_connection (on an unopened client_stream, with a worker whose handler is the
// checking one below) is fed the preface and then the input one frame at a time; between
// feeds the io_context's ready handlers run and what the server sends is pulled, as its
// socket_pump would (h2_fuzz.hpp). After the input, the client's end: the session closes as
// on EOF. Beyond "no crash, no UB":
//   - every request that reaches the handler is valid as the HTTP/1.1 server would hand it
//     over: a token method, a normalised origin-form target (or "*", or none for CONNECT), a
//     valid host or none, field names that are lower-case tokens without '_', valid values;
//   - the session settles within bounded work after each feed, and once the client is gone
//     every handler returns within bounded work (no timer has to fire: none does);
//   - what it sent is whole, well-formed frames starting with SETTINGS (h2_fuzz.hpp).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "h2_fuzz.hpp"
#include "http/rules.hpp"
#include "server/client_stream.hpp"
#include "server/h2_session.hpp"
#include "server/worker.hpp"
#include "trafficcop/server.hpp"

namespace {

using namespace trafficcop;
using fuzz::check;
using namespace std::chrono_literals;

bool lower_token(std::string_view n) {
  return http::is_token(n) && std::none_of(n.begin(), n.end(), [](char c) {
           return (c >= 'A' && c <= 'Z') || c == '_';
         });
}

void check_request(const request& req) {
  check(http::is_token(req.method), "a token method", req.method);
  if (req.target.empty())
    check(req.method == "CONNECT", "only CONNECT has no :path", req.method);
  else if (req.target != "*") {
    std::string again = req.target;
    check(req.target.front() == '/', "an origin-form target", req.target);
    check(http::normalize_target(again) && again == req.target, "a normalised target", req.target);
  }
  check(req.host.empty() || http::is_valid_host(req.host), "a valid host", req.host);
  for (const auto& f : req.header) {
    check(lower_token(f.name), "field names are lower-case tokens without '_'", f.name);
    check(http::is_valid_field_value(f.value), "valid field values", f.value);
  }
}

// Reads the request body (bounded), then answers with what it saw, a trailer included.
asio::awaitable<void> handle(response_writer& w, request& req) {
  check_request(req);
  std::size_t total = 0;
  char buf[4096];
  for (int i = 0; i < 64; ++i) {
    auto r = co_await req.body->read(asio::buffer(buf));
    if (r.ec || r.n == 0) break;
    total += r.n;
  }
  for (const auto& f : req.trailer)
    check(lower_token(f.name) && http::is_valid_field_value(f.value), "valid trailer fields",
          f.name);
  w.header().set("content-type", "text/plain");
  w.trailer().set("x-body-bytes", std::to_string(total));
  if (req.target.starts_with("/100")) co_await w.write_header(100);
  co_await w.write(asio::buffer(req.method + " " + req.target + " " + std::to_string(total)));
}

struct env {
  server_options so;
  handler h = handle;
  listener_http2 cfg{.h2c = true, .max_concurrent_streams = 16};
  std::unique_ptr<detail::worker> w;
  std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::array<char, 16 * 1024> buf{};  // the client_stream's read buffer (unused in memory)
};

env& environment() {
  static env e = [] {
    spdlog::set_level(std::getenv("FUZZ_VERBOSE") ? spdlog::level::debug : spdlog::level::off);
    env e;
    // Timeouts no input reaches: in memory nothing waits for a timer, so a run is the same
    // work whatever the machine's speed.
    e.so.read_header_timeout = 60s;
    e.so.idle_timeout = 60s;
    e.so.read_body_timeout = 60s;
    e.so.max_headers = 32;
    e.so.max_header_bytes = 4096;
    return e;
  }();
  if (!e.w) {
    e.w = std::make_unique<detail::worker>(e.so, e.h, 0);
    // poll() must not find the context out of work and stop it between inputs.
    e.work = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
        e.w->ioc.get_executor());
  }
  return e;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) return 0;
  auto& e = environment();
  auto& ioc = e.w->ioc;
  const auto input = fuzz::as_text(data, size);
  const auto what = input.substr(0, 64);
  // A connection as the listener would hand it over, but never opened: the session takes its
  // executor and the request facts (addresses) from it, nothing else in memory.
  const asio::ip::tcp::endpoint remote(asio::ip::make_address_v4("192.0.2.1"), 40000);
  const asio::ip::tcp::endpoint local(asio::ip::make_address_v4("127.0.0.1"), 8080);
  detail::client_stream io(asio::ip::tcp::socket(ioc), nullptr, remote, local, e.buf.data(),
                           e.buf.size(), 60s);
  std::string got;
  {
    detail::h2_connection h(io, *e.w, 0, e.cfg);
    check(h.open(), "the session opens");
    // The read loop's work: feed, then let the handlers and the writer run, until the session
    // wants nothing more or the input ends.
    bool ok = h.feed(fuzz::client_preface);
    check(fuzz::settle(ioc, h, got), "the session settles after the preface", what);
    std::string_view rest = input;
    while (ok && !rest.empty() && !h.finished()) {
      ok = h.feed(fuzz::next_frame(rest));
      check(fuzz::settle(ioc, h, got), "the session settles after each frame", what);
    }
    // The client's end (EOF): the session closes, every handler is cancelled.
    h.peer_gone();
    check(fuzz::settle(ioc, h, got), "the session settles after the client's end", what);
    check(h.running() == 0, "every handler returns once the client is gone", what);
  }
  ioc.poll();  // what the session's end left (cancelled waits), run before the next input
  if (std::getenv("FUZZ_VERBOSE")) std::fprintf(stderr, "-- server sent %zu bytes\n", got.size());
  fuzz::check_frames(got, 16384, what);
  return 0;
}
