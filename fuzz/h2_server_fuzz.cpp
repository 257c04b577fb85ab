// SPDX-License-Identifier: MIT
// libFuzzer target: the HTTP/2 server (src/server/h2_server.cpp over src/http2/session.cpp)
// on arbitrary client frames, through a real in-process server and a loopback connection.
//
// Each input is what a client sends after the connection preface: frames, HPACK blocks,
// garbage. The harness then half-closes and reads everything the server answers. Beyond "no
// crash, no UB" (the server thread runs under the same sanitizers):
//   - every request that reaches the handler is valid as the HTTP/1.1 server would hand it
//     over: a token method, a normalised origin-form target (or "*", or none for CONNECT), a
//     valid host or none, field names that are lower-case tokens without '_', valid values;
//   - the server closes the connection within 5 s of the client's end (its timeouts are 1 s);
//   - what it sent is whole, well-formed frames starting with SETTINGS (h2_fuzz.hpp).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "h2_fuzz.hpp"
#include "http/rules.hpp"
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

std::uint16_t server_port() {
  static std::unique_ptr<server> srv;
  static std::uint16_t port = [] {
    spdlog::set_level(spdlog::level::off);
    server_options so;
    so.listen = {"127.0.0.1:0"};
    so.workers = 1;
    so.http2 = {listener_http2{.h2c = true, .max_concurrent_streams = 16}};
    so.read_header_timeout = 1s;
    so.idle_timeout = 1s;
    so.read_body_timeout = 1s;
    so.max_headers = 32;
    so.max_header_bytes = 4096;
    srv = std::make_unique<server>(so, handle);
    std::string what;
    check(!srv->start(what), "the server starts", what);
    return srv->local_endpoints().at(0).port();
  }();
  return port;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 64 * 1024) return 0;
  const auto input = fuzz::as_text(data, size);
  auto s = fuzz::sock::connect(server_port());
  const auto deadline = fuzz::fuzz_clock::now() + 5s;
  std::string got;
  if (!s.write_all(std::string(fuzz::client_preface) + std::string(input), deadline, &got))
    return 0;  // the server closed first: nothing more to check
  s.shutdown_send();
  const auto end = s.read_to_end(got, deadline);
  check(end != fuzz::sock::end::timeout, "the server closes within 5 s of the client's end",
        input.substr(0, 64));
  if (std::getenv("FUZZ_VERBOSE"))
    std::fprintf(stderr, "-- server sent %zu bytes, then %s\n", got.size(),
                 end == fuzz::sock::end::eof ? "eof" : "reset");
  // After a reset, bytes in flight may be lost: only a clean end has all the frames.
  if (end == fuzz::sock::end::eof) fuzz::check_frames(got, 16384, input.substr(0, 64));
  s.abort();
  return 0;
}
