// SPDX-License-Identifier: MIT
#include "app/request_identity.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <random>

#include "http/trace_context.hpp"

namespace trafficcop::app {
namespace {

/// xoshiro256** (Blackman, Vigna): fast, 256 bits of state, ample for unique ids.
class id_rng {
 public:
  id_rng() {
    std::random_device rd;
    for (auto& w : s_) w = (std::uint64_t{rd()} << 32) ^ rd();
    if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) s_[0] = 1;
  }
  std::uint64_t next() noexcept {
    auto rotl = [](std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); };
    std::uint64_t r = rotl(s_[1] * 5, 7) * 9, t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return r;
  }

 private:
  std::uint64_t s_[4];
};

std::size_t lines(const header_map& h, std::string_view name) {
  std::size_t n = 0;
  for (const auto& f : h)
    if (iequals(f.name, name)) ++n;
  return n;
}

void decide_request_id(request& in, const config::request_id& rid) {
  std::optional<std::string_view> client;
  if (lines(in.header, rid.header) == 1) client = in.header.get(rid.header);
  if (rid.trust_incoming && client && http::is_sane_request_id(*client)) {
    if (in.id != *client) in.id.assign(*client);
  } else if (auto x = in.header.get("x-request-id"); x && *x == in.id) {
    // The server took the client's X-Request-Id (request::id's library default); it is not
    // the id this config accepts, so make one.
    random_hex(in.id, 20);
  }
  // Otherwise request::id is the one the server generated.
}

void decide_trace(request& in, const config::trace_context& tc) {
  std::uint8_t flags = tc.sampled ? 1 : 0;
  std::optional<http::traceparent> tp;
  // §3.2: a header repeated is not a valid traceparent (its combined value is not one).
  if (lines(in.header, "traceparent") == 1)
    tp = http::parse_traceparent(*in.header.get("traceparent"));
  if (tp) {
    in.trace_id.assign(tp->trace_id);
    // §3.2.2.5: sampled (01) is the one flag of version 00; Level 2's random-trace-id (02)
    // still describes the kept trace id. Other bits are unknown here and set to zero.
    flags = tp->flags & 0x03;
  } else {
    random_hex(in.trace_id, 32);
    in.header.erase("tracestate");
  }
  random_hex(in.span_id, 16);
  thread_local std::string value;  // its storage is reused: nothing allocated per request
  value.clear();
  http::append_traceparent(value, in.trace_id, in.span_id, flags);
  in.header.set("traceparent", value);
}

}  // namespace

namespace {

/// "000102...feff": a byte's two hex digits at [2 * byte].
constexpr auto hex_pairs = [] {
  std::array<char, 512> t{};
  constexpr char hex[] = "0123456789abcdef";
  for (int i = 0; i < 256; ++i) {
    t[2 * i] = hex[i >> 4];
    t[2 * i + 1] = hex[i & 15];
  }
  return t;
}();

}  // namespace

void random_hex(std::string& out, std::size_t digits) {
  thread_local id_rng rng;
  out.resize(digits);
  char* p = out.data();
  std::uint64_t any = 0;  // the bits used: all-zero ids are invalid
  do {
    any = 0;
    for (std::size_t i = 0; i < digits; i += 16) {
      std::uint64_t v = rng.next();
      const std::size_t n = std::min<std::size_t>(digits - i, 16);
      if (n < 16) v &= (std::uint64_t{1} << (4 * n)) - 1;
      any |= v;
      std::size_t j = 0;
      for (; j + 2 <= n; j += 2, v >>= 8) std::memcpy(p + i + j, &hex_pairs[2 * (v & 0xff)], 2);
      if (j < n) p[i + j] = hex_pairs[2 * (v & 0xf) + 1];
    }
  } while (any == 0);
}

handler with_request_identity(handler next, const config::request_id& rid,
                              const config::trace_context& tc) {
  return
      [next = std::move(next), rid, tc](response_writer& w, request& in) -> asio::awaitable<void> {
        decide_request_id(in, rid);
        if (rid.upstream) in.header.set(rid.header, in.id);
        if (rid.response) w.header().set(rid.header, in.id);
        if (tc.enabled) {
          decide_trace(in, tc);
        } else {
          in.trace_id.clear();
          in.span_id.clear();
        }
        co_await next(w, in);
      };
}

}  // namespace trafficcop::app
