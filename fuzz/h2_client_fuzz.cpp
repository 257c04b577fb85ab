// SPDX-License-Identifier: MIT
// libFuzzer target: the upstream HTTP/2 client (src/upstream/h2_client.cpp over
// src/http2/session.cpp) on arbitrary server frames, through the whole proxy: an in-process
// server running make_reverse_proxy with http2_mode::always (prior knowledge) towards a fake
// upstream that the harness plays.
//
// Per input, an HTTP/1.1 client sends one request to the proxy (a GET, or a POST with a small
// body when bit 0 of the first byte is set); the fake upstream accepts the proxy's connection
// and answers with an empty SETTINGS frame followed by the rest of the input, then half-closes.
// Beyond "no crash, no UB" (the proxy's thread runs under the same sanitizers):
//   - the proxy answers the HTTP/1.1 client within 5 s (its response timeout is 1 s) and the
//     answer is well-formed HTTP/1.1: heads that the project's parser accepts, a status of
//     100-599, and no byte after a complete final response (whatever the upstream's frames
//     said, nothing of them leaks into the client's framing); a body may be cut short (the
//     upstream's stream ended badly), never extended;
//   - what the proxy sent upstream is the client preface and whole, well-formed frames
//     (h2_fuzz.hpp), and it closes that connection within 5 s of the upstream's end.
#include <spdlog/spdlog.h>

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
#include "http1/parser.hpp"
#include "trafficcop/reverse_proxy.hpp"
#include "trafficcop/server.hpp"
#include "trafficcop/transport.hpp"

namespace {

using namespace trafficcop;
using fuzz::check;
using namespace std::chrono_literals;

struct env {
  fuzz::sock upstream;
  std::uint16_t upstream_port = 0;
  std::unique_ptr<server> srv;
  std::uint16_t port = 0;
};

env& environment() {
  static env e = [] {
    spdlog::set_level(std::getenv("FUZZ_VERBOSE") ? spdlog::level::debug : spdlog::level::off);
    env e;
    e.upstream = fuzz::sock::listen(e.upstream_port);
    http1_transport_options t;
    t.connect_timeout = 1s;
    t.http2 = http2_mode::always;
    reverse_proxy_options o;
    o.upstream = "http://127.0.0.1:" + std::to_string(e.upstream_port);
    o.transport = make_http1_transport(t);
    o.response_timeout = 1s;
    server_options so;
    so.listen = {"127.0.0.1:0"};
    so.workers = 1;
    so.read_header_timeout = 1s;
    so.idle_timeout = 1s;
    e.srv = std::make_unique<server>(so, make_reverse_proxy(std::move(o)));
    std::string what;
    check(!e.srv->start(what), "the proxy starts", what);
    e.port = e.srv->local_endpoints().at(0).port();
    return e;
  }();
  return e;
}

// The proxy's answer to the client: well-formed, and nothing after a complete final response.
void check_response(std::string_view bytes, bool reset, std::string_view input) {
  if (bytes.empty()) return;  // closed without an answer: the upstream's stream was lost
  for (;;) {
    // Whatever the upstream's head held (its size is bounded by the transport, 64 KiB, not
    // its field count) may be relayed: only well-formedness is checked here.
    http1::response_parser p(/*head_request=*/false,
                             {.max_header_bytes = 1 << 20, .max_headers = 1 << 20});
    error_code ec;
    const auto used = p.put_head(bytes, ec);
    check(!ec, "the proxy's response head parses", input);
    if (used == 0) {
      check(reset, "a response head is never cut short on a clean close", input);
      return;
    }
    check(p.status() >= 100 && p.status() <= 599, "a status of 100-599", input);
    for (const auto& f : p.fields())
      check(http::is_token(f.name) && http::is_valid_field_value(f.value),
            "response fields are tokens and valid values", f.name);
    bytes.remove_prefix(used);
    if (p.status() < 200) {
      // An interim response, then the final one. If the upstream's final head arrives with
      // its body already failed (the stream reset or closed at once), the proxy has taken the
      // status but not sent the head, and closes the connection instead of answering 502:
      // the client sees no final response, an abort it cannot take for success.
      if (bytes.empty()) return;
      continue;
    }
    char out[16384];
    while (!p.is_done() && !bytes.empty()) {
      auto step = p.put_body(bytes, asio::buffer(out), ec);
      if (ec) return;  // cut short: an abort, not a framing error the client could misread
      bytes.remove_prefix(step.consumed);
      if (step.consumed == 0 && step.written == 0) break;
    }
    if (!p.is_done()) return;  // cut short, or close-delimited (then it ends at the close)
    check(bytes.empty(), "no byte after a complete response", input);
    return;
  }
}

// True once `b` (what the proxy sent upstream) holds a HEADERS frame after the preface.
bool has_headers(std::string_view b) {
  if (b.size() < fuzz::client_preface.size()) return false;
  b.remove_prefix(fuzz::client_preface.size());
  while (b.size() >= 9) {
    const auto* p = reinterpret_cast<const unsigned char*>(b.data());
    const std::size_t len = std::size_t(p[0]) << 16 | std::size_t(p[1]) << 8 | p[2];
    if (p[3] == 0x1) return true;
    if (b.size() < 9 + len) return false;
    b.remove_prefix(9 + len);
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0 || size > 64 * 1024) return 0;
  auto& e = environment();
  const auto input = fuzz::as_text(data, size);
  const bool post = data[0] & 1;
  const auto frames = input.substr(1);

  auto c = fuzz::sock::connect(e.port);
  const auto deadline = fuzz::fuzz_clock::now() + 5s;
  const std::string req = post ? "POST /f?q=1 HTTP/1.1\r\nHost: fuzz\r\nContent-Length: 5\r\n"
                                 "Connection: close\r\n\r\nhello"
                               : "GET /f HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";
  check(c.write_all(req, deadline), "the request is sent");

  // The pool may still hold the previous input's connection for a moment: the proxy then
  // fails over to a new one, or answers 502 without connecting. Connections after the first
  // (retries of a refused stream) are reset, so that each input meets one fresh connection.
  std::string sent;  // what the proxy sent upstream
  auto u = e.upstream.accept(2s);
  bool upstream_clean = false;
  if (u) {
    // The server's preface, then the input once the request's HEADERS arrived: frames for
    // stream 1 before the client opened it would only ever be a connection error.
    u.write_all(fuzz::empty_settings, deadline, &sent);
    u.read_until(sent, deadline, [](std::string_view b) { return has_headers(b); });
    u.write_all(frames, deadline, &sent);
    u.shutdown_send();
  }

  std::string resp;
  const auto end = c.read_to_end_rejecting(resp, deadline, e.upstream);
  check(end != fuzz::sock::end::timeout, "the proxy answers within 5 s", input.substr(0, 64));
  if (std::getenv("FUZZ_VERBOSE"))
    std::fprintf(stderr, "-- proxy answered (%s):\n%s\n",
                 end == fuzz::sock::end::eof ? "eof" : "reset", resp.c_str());
  check_response(resp, end == fuzz::sock::end::reset, input.substr(0, 64));

  if (u) {
    const auto uend = u.read_to_end(sent, fuzz::fuzz_clock::now() + 5s);
    check(uend != fuzz::sock::end::timeout, "the proxy closes the upstream connection",
          input.substr(0, 64));
    upstream_clean = uend == fuzz::sock::end::eof;
    if (upstream_clean && sent.size() >= fuzz::client_preface.size()) {
      check(std::string_view(sent).starts_with(fuzz::client_preface), "the client preface",
            input.substr(0, 64));
      fuzz::check_frames(std::string_view(sent).substr(fuzz::client_preface.size()), 16384,
                         input.substr(0, 64));
    }
    u.abort();
  }
  c.abort();
  e.upstream.reject_pending();  // a late retry must not meet the next input's frames
  return 0;
}
