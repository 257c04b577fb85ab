// SPDX-License-Identifier: MIT
// Micro-benchmarks of the sans-I/O HTTP/1.1 parsers (src/http1/parser.hpp).
//
// Each iteration parses one whole message with a fresh parser, as the server and the transport
// do (one parser per message), so the parser's construction is part of the cost;
// each case runs twice: with the parser's own header map and strings (their allocations are in
// the figure) and with storage reused across messages, as the proxy's hot path does. Bytes/s
// counts the message bytes fed; items/s messages.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "http1/parser.hpp"

namespace {

using trafficcop::error_code;
using trafficcop::http1::request_parser;
using trafficcop::http1::response_parser;

// (a) What curl sends: 6 fields.
constexpr std::string_view small_get =
    "GET /api/v1/items/42?fields=name,price HTTP/1.1\r\n"
    "Host: shop.example.com\r\n"
    "User-Agent: curl/7.88.1\r\n"
    "Accept: */*\r\n"
    "Accept-Encoding: gzip\r\n"
    "X-Request-Id: 4f7c2a9e-1b3d-4e8f-9a6b-0c5d7e2f1a38\r\n"
    "Connection: keep-alive\r\n"
    "\r\n";

// (b) What a browser sends for a page: 17 fields, cookies and client hints.
constexpr std::string_view browser_get =
    "GET /products/widgets/blue-widget-3000?ref=homepage&utm_source=newsletter HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "Connection: keep-alive\r\n"
    "Cache-Control: max-age=0\r\n"
    "sec-ch-ua: \"Not_A Brand\";v=\"8\", \"Chromium\";v=\"120\", \"Google Chrome\";v=\"120\"\r\n"
    "sec-ch-ua-mobile: ?0\r\n"
    "sec-ch-ua-platform: \"Linux\"\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36\r\n"
    "Accept: "
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/"
    "*;q=0.8,application/signed-exchange;v=b3;q=0.7\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-User: ?1\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Referer: https://www.example.com/products/widgets\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-GB,en-US;q=0.9,en;q=0.8,de;q=0.7\r\n"
    "Cookie: session_id=s%3AeyJhbGciOiJIUzI1NiJ9.eyJ1aWQiOjQyLCJleHAiOjE3MDAwMDAwMDB9.x7Yq; "
    "_ga=GA1.2.1234567890.1699999999; _gid=GA1.2.987654321.1700000000; "
    "cart=3f2a9c1e-77b4-4d21-9a0e-5b6c8d9e0f12; theme=dark; consent=analytics%2Cads\r\n"
    "\r\n";

// (c) A small response: head plus a 64-byte body (the bench/ small-keepalive case).
const std::string& small_response() {
  static const std::string s = [] {
    std::string body(64, 'x');
    return std::string(
               "HTTP/1.1 200 OK\r\n"
               "Server: nginx/1.22.1\r\n"
               "Date: Thu, 27 Nov 2026 18:23:33 GMT\r\n"
               "Content-Type: text/plain\r\n"
               "Content-Length: 64\r\n"
               "Connection: keep-alive\r\n"
               "\r\n") +
           body;
  }();
  return s;
}

// (d) A chunked response: 64 KiB of body in 16 chunks of 4 KiB.
const std::string& chunked_response() {
  static const std::string s = [] {
    std::string r =
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/octet-stream\r\n"
        "Transfer-Encoding: chunked\r\n"
        "\r\n";
    std::string chunk(4096, 'y');
    for (int i = 0; i < 16; ++i) r += "1000\r\n" + chunk + "\r\n";
    r += "0\r\n\r\n";
    return r;
  }();
  return s;
}

constexpr std::size_t chunked_body_bytes = 64 * 1024;

/// Parses one request head (no body) into `into` (the server's way: one request object per
/// connection, its strings and header map reused) or, without it, into the parser's own
/// members (fresh storage per message). False on any error.
bool parse_request(std::string_view msg, trafficcop::request* into) {
  error_code ec;
  auto check = [&](request_parser& p) {
    std::size_t n = p.put_head(msg, ec);
    benchmark::DoNotOptimize(p.fields());
    return !ec && n == msg.size() && p.is_done();
  };
  if (into) {
    request_parser p({}, *into);
    return check(p);
  }
  request_parser p;
  return check(p);
}

void request_head(benchmark::State& state, std::string_view msg) {
  const bool reuse = state.range(0) != 0;
  trafficcop::request req;
  trafficcop::request* into = reuse ? &req : nullptr;
  if (!parse_request(msg, into)) {
    state.SkipWithError("request does not parse");
    return;
  }
  for (auto _ : state) {
    bool ok = parse_request(msg, into);
    benchmark::DoNotOptimize(ok);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * msg.size()));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

/// Parses one response with its body into `out`; returns the body bytes, or -1 on an error.
/// `fields`: a header map reused across responses (the transport's way: one per upstream
/// connection), or null for the parser's own.
long parse_response(std::string_view msg, std::vector<char>& out, trafficcop::header_map* fields) {
  response_parser p(false, {}, fields);
  error_code ec;
  std::size_t head = p.put_head(msg, ec);
  if (ec || head == 0) return -1;
  msg.remove_prefix(head);
  long body = 0;
  while (!p.is_done()) {
    auto step = p.put_body(msg, trafficcop::asio::buffer(out), ec);
    if (ec || (step.consumed == 0 && step.written == 0)) return -1;
    msg.remove_prefix(step.consumed);
    body += static_cast<long>(step.written);
  }
  benchmark::DoNotOptimize(out.data());
  return msg.empty() ? body : -1;
}

/// The body goes into a 32 KiB buffer, the size of the proxy's copy buffers.
void response(benchmark::State& state, const std::string& msg, long expect_body) {
  const bool reuse = state.range(0) != 0;
  std::vector<char> out(32 * 1024);
  trafficcop::header_map map;
  trafficcop::header_map* fields = reuse ? &map : nullptr;
  if (parse_response(msg, out, fields) != expect_body) {
    state.SkipWithError("response does not parse");
    return;
  }
  for (auto _ : state) {
    long n = parse_response(msg, out, fields);
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * msg.size()));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_request_small_get(benchmark::State& state) { request_head(state, small_get); }
void BM_request_browser_get(benchmark::State& state) { request_head(state, browser_get); }
void BM_response_small_64B(benchmark::State& state) { response(state, small_response(), 64); }
void BM_response_chunked_64KiB(benchmark::State& state) {
  response(state, chunked_response(), static_cast<long>(chunked_body_bytes));
}

// reuse:0 — a fresh parser with its own maps and strings (allocates per message);
// reuse:1 — a fresh parser writing into storage kept across messages, as the server (request)
// and the transport (upstream response) do.
BENCHMARK(BM_request_small_get)->ArgName("reuse")->Arg(0)->Arg(1);
BENCHMARK(BM_request_browser_get)->ArgName("reuse")->Arg(0)->Arg(1);
BENCHMARK(BM_response_small_64B)->ArgName("reuse")->Arg(0)->Arg(1);
BENCHMARK(BM_response_chunked_64KiB)->ArgName("reuse")->Arg(0)->Arg(1);

}  // namespace

BENCHMARK_MAIN();
