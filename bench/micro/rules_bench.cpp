// SPDX-License-Identifier: MIT
// Micro-benchmarks of the header rules a proxied request goes through (src/http/rules.hpp) and
// of header_map itself (include/trafficcop/http.hpp), on a browser's request headers and an
// nginx-like response.
//
// Rules that edit a map work on a copy of a prototype made at the start of each iteration, into
// a map reused across iterations (header_map keeps its storage); BM_header_map_copy measures
// that copy alone, to subtract.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/rules.hpp"
#include "trafficcop/http.hpp"

namespace {

using trafficcop::header_map;
namespace http = trafficcop::http;

using lines = std::vector<std::pair<std::string_view, std::string_view>>;

// A browser's page request (17 fields, as in parser_bench's browser head).
const lines browser_request = {
    {"Host", "www.example.com"},
    {"Connection", "keep-alive"},
    {"Cache-Control", "max-age=0"},
    {"sec-ch-ua", "\"Not_A Brand\";v=\"8\", \"Chromium\";v=\"120\", \"Google Chrome\";v=\"120\""},
    {"sec-ch-ua-mobile", "?0"},
    {"sec-ch-ua-platform", "\"Linux\""},
    {"Upgrade-Insecure-Requests", "1"},
    {"User-Agent",
     "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36"},
    {"Accept",
     "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/"
     "*;q=0.8,application/signed-exchange;v=b3;q=0.7"},
    {"Sec-Fetch-Site", "same-origin"},
    {"Sec-Fetch-Mode", "navigate"},
    {"Sec-Fetch-User", "?1"},
    {"Sec-Fetch-Dest", "document"},
    {"Referer", "https://www.example.com/products/widgets"},
    {"Accept-Encoding", "gzip, deflate, br"},
    {"Accept-Language", "en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7"},
    {"Cookie",
     "session_id=s%3AeyJhbGciOiJIUzI1NiJ9.eyJ1aWQiOjQyLCJleHAiOjE3MDAwMDAwMDB9.x7Yq; "
     "_ga=GA1.2.1234567890.1699999999; _gid=GA1.2.987654321.1700000000; "
     "cart=3f2a9c1e-77b4-4d21-9a0e-5b6c8d9e0f12; theme=dark; consent=analytics%2Cads"},
};

// An upstream's response head (nginx-like).
const lines nginx_response = {
    {"Server", "nginx/1.22.1"},
    {"Date", "Thu, 27 Nov 2026 18:23:33 GMT"},
    {"Content-Type", "text/html; charset=utf-8"},
    {"Content-Length", "18342"},
    {"Connection", "keep-alive"},
    {"Keep-Alive", "timeout=5"},
    {"Cache-Control", "private, max-age=0"},
    {"ETag", "\"65648a3c-47a6\""},
    {"Set-Cookie", "cart=3f2a9c1e-77b4-4d21-9a0e-5b6c8d9e0f12; Path=/; HttpOnly; SameSite=Lax"},
    {"Vary", "Accept-Encoding"},
};

header_map make(const lines& ls) {
  header_map h;
  for (const auto& [n, v] : ls) h.add(n, v);
  return h;
}

void count_items(benchmark::State& state) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// --- header_map -----------------------------------------------------------------------------

void BM_header_map_copy(benchmark::State& state) {
  const header_map proto = make(browser_request);
  header_map h;
  for (auto _ : state) {
    h = proto;
    benchmark::DoNotOptimize(h);
  }
  count_items(state);
}
BENCHMARK(BM_header_map_copy);

/// Fills a cleared map with the 17 browser lines, as the request parser does.
void BM_header_map_add_17(benchmark::State& state) {
  header_map h;
  for (auto _ : state) {
    h.clear();
    for (const auto& [n, v] : browser_request) h.add(n, v);
    benchmark::DoNotOptimize(h);
  }
  count_items(state);
}
BENCHMARK(BM_header_map_add_17);

/// Lookups in the 17-line map: a field near the front, the last one, and an absent one (a full
/// scan: what every "is there an X-Forwarded-For?" costs).
void BM_header_map_get(benchmark::State& state, std::string_view name) {
  const header_map h = make(browser_request);
  for (auto _ : state) {
    auto v = h.get(name);
    benchmark::DoNotOptimize(v);
  }
  count_items(state);
}
BENCHMARK_CAPTURE(BM_header_map_get, front_host, "host");
BENCHMARK_CAPTURE(BM_header_map_get, last_cookie, "cookie");
BENCHMARK_CAPTURE(BM_header_map_get, absent, "x-forwarded-for");

/// Replacing an existing value (no copy needed: set() on the same line every time).
void BM_header_map_set_existing(benchmark::State& state) {
  header_map h = make(browser_request);
  for (auto _ : state) {
    h.set("Host", "backend.internal:8080");
    benchmark::DoNotOptimize(h);
  }
  count_items(state);
}
BENCHMARK(BM_header_map_set_existing);

/// Copy + set of a new field (the copy is BM_header_map_copy).
void BM_header_map_copy_set_new(benchmark::State& state) {
  const header_map proto = make(browser_request);
  header_map h;
  for (auto _ : state) {
    h = proto;
    h.set("X-Forwarded-Proto", "https");
    benchmark::DoNotOptimize(h);
  }
  count_items(state);
}
BENCHMARK(BM_header_map_copy_set_new);

/// Copy + erase of one line in the middle (the copy is BM_header_map_copy).
void BM_header_map_copy_erase(benchmark::State& state) {
  const header_map proto = make(browser_request);
  header_map h;
  for (auto _ : state) {
    h = proto;
    auto n = h.erase("user-agent");
    benchmark::DoNotOptimize(n);
  }
  count_items(state);
}
BENCHMARK(BM_header_map_copy_erase);

// --- rules ----------------------------------------------------------------------------------

/// Copy + remove_hop_by_hop (the copy is BM_header_map_copy for the request).
void BM_remove_hop_by_hop(benchmark::State& state, const lines* ls) {
  const header_map proto = make(*ls);
  header_map h;
  for (auto _ : state) {
    h = proto;
    http::remove_hop_by_hop(h);
    benchmark::DoNotOptimize(h);
  }
  count_items(state);
}
BENCHMARK_CAPTURE(BM_remove_hop_by_hop, browser_request, &browser_request);
BENCHMARK_CAPTURE(BM_remove_hop_by_hop, nginx_response, &nginx_response);

/// Copy + apply_forwarded in append mode on an outbound copy (hop-by-hop already removed) that
/// carries one X-Forwarded-For line from an earlier proxy.
void BM_apply_forwarded_append(benchmark::State& state) {
  header_map proto = make(browser_request);
  http::remove_hop_by_hop(proto);
  proto.add("X-Forwarded-For", "203.0.113.7");
  header_map h;
  for (auto _ : state) {
    h = proto;
    http::apply_forwarded(h, "192.0.2.10:54321", "www.example.com", false,
                          http::forwarded_mode::append);
    benchmark::DoNotOptimize(h);
  }
  count_items(state);
}
BENCHMARK(BM_apply_forwarded_append);

/// The outbound target of a typical request: base path + inbound path, upstream query +
/// inbound query, then the query check (clean here: sanitize_query returns nullopt).
void BM_build_target(benchmark::State& state) {
  constexpr std::string_view base = "/shop";
  constexpr std::string_view in_path = "/products/widgets/blue-widget-3000";
  constexpr std::string_view up_query = "tenant=eu";
  constexpr std::string_view in_query = "ref=homepage&utm_source=newsletter&utm_medium=email";
  for (auto _ : state) {
    std::string path = http::join_path(base, in_path);
    std::string query = http::merge_query(up_query, in_query);
    if (auto clean = http::sanitize_query(query)) query = std::move(*clean);
    benchmark::DoNotOptimize(path);
    benchmark::DoNotOptimize(query);
  }
  count_items(state);
}
BENCHMARK(BM_build_target);

/// sanitize_query on a query that must be re-encoded (a ';' separator), the slow path.
void BM_sanitize_query_reencode(benchmark::State& state) {
  const std::string q = "tenant=eu&ref=homepage;utm_source=newsletter&q=blue%20widget&page=2";
  for (auto _ : state) {
    auto clean = http::sanitize_query(q);
    benchmark::DoNotOptimize(clean);
  }
  count_items(state);
}
BENCHMARK(BM_sanitize_query_reencode);

/// is_valid_field_value over every value of the browser request (the parser calls it on each
/// field). Bytes/s counts value bytes.
void BM_is_valid_field_value(benchmark::State& state) {
  std::size_t bytes = 0;
  for (const auto& [n, v] : browser_request) bytes += v.size();
  for (auto _ : state) {
    bool ok = true;
    for (const auto& [n, v] : browser_request) {
      benchmark::DoNotOptimize(v.data());
      ok = ok && http::is_valid_field_value(v);
    }
    benchmark::DoNotOptimize(ok);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * browser_request.size()));
}
BENCHMARK(BM_is_valid_field_value);

/// upgrade_type on an ordinary request (Connection: keep-alive: the common, negative case) and
/// on a WebSocket handshake.
void BM_upgrade_type(benchmark::State& state, bool websocket) {
  header_map h = make(browser_request);
  if (websocket) {
    h.set("Connection", "Upgrade");
    h.add("Upgrade", "websocket");
    h.add("Sec-WebSocket-Version", "13");
    h.add("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
  }
  if (http::upgrade_type(h).has_value() != websocket) {
    state.SkipWithError("unexpected upgrade_type result");
    return;
  }
  for (auto _ : state) {
    auto t = http::upgrade_type(h);
    benchmark::DoNotOptimize(t);
  }
  count_items(state);
}
BENCHMARK_CAPTURE(BM_upgrade_type, plain, false);
BENCHMARK_CAPTURE(BM_upgrade_type, websocket, true);

/// normalize_target (issue 14.2), run by the server on every request: a plain path (the fast
/// path, a scan for '%', "/." and '\\'), and one with escapes and dot segments (decoded and
/// rebuilt). The target is copied into a string reused across iterations, as the server's
/// request object is.
void BM_normalize_target(benchmark::State& state, std::string_view target) {
  std::string t;
  t.reserve(256);
  for (auto _ : state) {
    t.assign(target);
    bool ok = http::normalize_target(t);
    benchmark::DoNotOptimize(ok);
    benchmark::DoNotOptimize(t.data());
  }
  count_items(state);
}
BENCHMARK_CAPTURE(BM_normalize_target, plain, "/products/widgets/blue-widget-3000?ref=home");
BENCHMARK_CAPTURE(BM_normalize_target, dots_and_escapes,
                  "/products/./widgets/%7Eblue/../blue-widget%2D3000?ref=home");

/// is_valid_host (issue 14.3) on a name with a port and on an IPv6 literal.
void BM_is_valid_host(benchmark::State& state, std::string_view host) {
  for (auto _ : state) {
    benchmark::DoNotOptimize(host.data());
    bool ok = http::is_valid_host(host);
    benchmark::DoNotOptimize(ok);
  }
  count_items(state);
}
BENCHMARK_CAPTURE(BM_is_valid_host, name_port, "www.example.com:8443");
BENCHMARK_CAPTURE(BM_is_valid_host, ipv6, "[2001:db8::1]:443");

}  // namespace

BENCHMARK_MAIN();
