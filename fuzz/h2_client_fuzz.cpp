// SPDX-License-Identifier: MIT
// libFuzzer target: the upstream HTTP/2 client (src/upstream/h2_client.cpp over the sans-I/O
// src/http2/session.cpp) on arbitrary server frames, in memory: no socket.
//
// Per input, an h2_client is made on an unopened upstream connection and driven as the proxy
// drives it: h2_wait_settings, then h2_round_trip of a GET, or a POST with a 5-byte body when
// bit 0 of the first byte is set; the response's body is read, and the request body released,
// as reverse_proxy.cpp does. The harness plays the upstream: an empty SETTINGS frame, then,
// once the request's HEADERS went out, the rest of the input one frame at a time; between
// feeds the io_context's ready handlers run and what the client sends is pulled, as its
// socket_pump would (h2_fuzz.hpp). Then the upstream's close (EOF). Beyond "no crash, no UB":
//   - what the proxy would relay is well-formed: interim responses have a 1xx status, the
//     final one 200-599 (101 never comes), every field (interim, final, trailer) a token name
//     and a valid value; a body never runs past its Content-Length, and one that ends cleanly
//     has all of it;
//   - the exchange settles within bounded work after each feed, and once the upstream is gone
//     it ends and nothing holds the client any more (no coroutine left waiting);
//   - what the client sent upstream is the client preface and whole, well-formed frames
//     (h2_fuzz.hpp).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "h2_fuzz.hpp"
#include "http/rules.hpp"
#include "trafficcop/transport.hpp"
#include "upstream/h2_client.hpp"
#include "upstream/pool.hpp"

namespace {

using namespace trafficcop;
using fuzz::check;
using namespace std::chrono_literals;

struct env {
  asio::io_context ioc{1};
  // poll() must not find the context out of work and stop it between inputs.
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
};

env& environment() {
  static env e;
  static bool once = [] {
    spdlog::set_level(std::getenv("FUZZ_VERBOSE") ? spdlog::level::debug : spdlog::level::off);
    return true;
  }();
  (void)once;
  return e;
}

void check_fields(const header_map& h, std::string_view input) {
  for (const auto& f : h)
    check(http::is_token(f.name) && http::is_valid_field_value(f.value),
          "response fields are tokens and valid values", input);
}

/// The request body: `data`, then its end.
class fixed_body final : public body_reader {
 public:
  explicit fixed_body(std::string_view data) : data_(data) {}
  asio::awaitable<read_result> read(asio::mutable_buffer out) override {
    const std::size_t n = std::min(out.size(), data_.size());
    std::memcpy(out.data(), data_.data(), n);
    data_.remove_prefix(n);
    co_return read_result{{}, n};
  }
  bool ready() const noexcept override { return true; }

 private:
  std::string_view data_;
};

/// The proxy's side of one exchange (reverse_proxy.cpp): the round trip, the body relayed
/// (read here, bounded), the request body released.
asio::awaitable<void> exchange(upstream::h2_client& h, bool post, std::string_view input,
                               bool& done) {
  fixed_body body("hello");
  const header_map trailer;
  outbound_request req;
  req.method = post ? "POST" : "GET";
  req.host = "fuzz";
  req.port = 80;
  req.target = post ? "/f?q=1" : "/f";
  req.header.set("Host", "fuzz");
  req.header.set("X-Forwarded-For", "192.0.2.1");
  if (post) {
    req.content_length = 5;
    req.body = &body;
    req.trailer = &trailer;
  }
  req.response_timeout = 60s;  // never reached in memory: nothing waits for a timer
  req.on_informational = [input](int status, const header_map& f) -> asio::awaitable<error_code> {
    check(status >= 100 && status <= 199 && status != 101, "an interim status is 1xx, not 101",
          input);
    check_fields(f, input);
    co_return error_code{};
  };
  const bool ready = co_await upstream::h2_wait_settings(h, 60s);
  if (ready) {
    auto rt = co_await upstream::h2_round_trip(h, req);
    if (!rt.response) {
      check(static_cast<bool>(rt.error.ec), "a failed round trip says why", input);
    } else {
      auto& res = *rt.response;
      check(res.status >= 200 && res.status <= 599, "a final status of 200-599", input);
      check_fields(res.header, input);
      std::uint64_t total = 0;
      char buf[4096];
      bool clean = false;
      for (int i = 0; i < 64; ++i) {
        auto r = co_await res.body().read(asio::buffer(buf));
        if (r.ec) break;
        if (r.n == 0) {
          clean = true;
          break;
        }
        total += r.n;
      }
      if (res.content_length >= 0) {
        check(total <= static_cast<std::uint64_t>(res.content_length),
              "a body never runs past its Content-Length", input);
        if (clean)
          check(total == static_cast<std::uint64_t>(res.content_length),
                "a body that ends cleanly has all its Content-Length", input);
      }
      if (clean) check_fields(res.trailer, input);
      if (res.request_pending()) co_await res.release();
    }
  }
  done = true;
}

// True once `b` (what the client sent upstream) holds a HEADERS frame after the preface.
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
  const auto what = input.substr(0, 64);
  const bool post = data[0] & 1;
  std::string_view frames = input.substr(1);

  // An upstream connection as the connector makes it, but never opened: the client takes its
  // executor and peer name from it, nothing else in memory.
  auto c = std::make_unique<upstream::conn>(asio::ip::tcp::socket(e.ioc));
  c->peer = "192.0.2.2:80";
  auto h = upstream::make_h2_client_in_memory(std::move(c), 100, 60s);
  check(h != nullptr, "the session opens");
  auto& s = upstream::h2_session(*h);
  std::string sent;  // what the client sent upstream
  bool done = false;
  asio::co_spawn(e.ioc, exchange(*h, post, what, done), [](std::exception_ptr ex) {
    if (ex) std::rethrow_exception(ex);  // a check's abort, or a bug: the fuzzer reports it
  });
  // The upstream's preface: an empty SETTINGS. Then its frames once the request's HEADERS
  // went out: frames for stream 1 before the client opened it would only ever be a
  // connection error.
  bool ok = s.feed(fuzz::empty_settings);
  check(fuzz::settle(e.ioc, s, sent), "the exchange settles after the SETTINGS", what);
  if (ok && has_headers(sent)) {
    while (ok && !frames.empty() && !s.finished()) {
      ok = s.feed(fuzz::next_frame(frames));
      check(fuzz::settle(e.ioc, s, sent), "the exchange settles after each frame", what);
    }
  }
  // The upstream's close (EOF): every stream fails, the exchange ends.
  upstream::h2_connection_lost(*h);
  check(fuzz::settle(e.ioc, s, sent), "the exchange settles after the upstream's end", what);
  check(done, "the exchange ends once the upstream is gone", what);
  check(h.use_count() == 1, "nothing holds the client once the exchange ended", what);
  h.reset();
  e.ioc.poll();  // what the session's end left (cancelled waits), run before the next input
  if (std::getenv("FUZZ_VERBOSE")) std::fprintf(stderr, "-- client sent %zu bytes\n", sent.size());
  check(std::string_view(sent).starts_with(fuzz::client_preface), "the client preface", what);
  fuzz::check_frames(std::string_view(sent).substr(fuzz::client_preface.size()), 16384, what);
  return 0;
}
