// SPDX-License-Identifier: MIT
// Handlers compose like Go's http.Handler: a wrapper that logs each request around a proxy.
//
//   logging_middleware 127.0.0.1:8080 http://127.0.0.1:9000
//   → GET /index.html 200 1532us 4096B upstream=127.0.0.1:9000
#include <chrono>
#include <cstdio>
#include <string>

#include "trafficcop/reverse_proxy.hpp"
#include "trafficcop/server.hpp"

using namespace trafficcop;

// handler → handler: wraps any handler, a proxy, a router or another middleware. middleware()
// keeps `next` and the lambda alive for as long as each request's coroutine runs.
handler with_logging(handler next) {
  return middleware(
      std::move(next),
      [](const handler& next, response_writer& w, request& r) -> asio::awaitable<void> {
        const auto start = std::chrono::steady_clock::now();
        co_await next(w, r);
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
            std::chrono::steady_clock::now() - start);
        std::printf("%s %.*s %d %lldus %lluB upstream=%s\n", r.method.c_str(),
                    static_cast<int>(r.path().size()), r.path().data(), w.status(),
                    static_cast<long long>(us.count()),
                    static_cast<unsigned long long>(w.bytes_written()),
                    w.log().upstream_addr.c_str());
      });
}

int main(int argc, char** argv) {
  if (argc != 3 || !parse_upstream_url(argv[2])) {
    std::fprintf(stderr, "usage: %s LISTEN_ADDR UPSTREAM_URL\n", argv[0]);
    return 2;
  }
  server srv({.listen = {argv[1]}}, with_logging(make_reverse_proxy({.upstream = argv[2]})));
  std::string what;
  if (auto ec = srv.run(what)) {
    std::fprintf(stderr, "%s: %s\n", what.c_str(), ec.message().c_str());
    return 1;
  }
}
