// SPDX-License-Identifier: MIT
// Go's classic reverse-proxy program in C++: middleware (strip a prefix, check a token, log),
// a value the middleware hands to the proxy's rewrite hook, and a transport with timeouts.
//
//   middleware_chain 127.0.0.1:8080 http://127.0.0.1:9000 s3cret
//   curl -H 'Authorization: Bearer s3cret' localhost:8080/api/users   → upstream sees /users
//   → GET /users 200 1532us upstream=127.0.0.1:9000 user=bearer
#include <chrono>
#include <cstdio>
#include <string>

#include "trafficcop/reverse_proxy.hpp"
#include "trafficcop/server.hpp"

using namespace trafficcop;

// A per-request value: who the auth middleware let in (Go: context.WithValue).
inline constexpr request_key<std::string> user_key;

// http.StripPrefix: the request goes on without `prefix`, or is answered 404.
handler strip_prefix(std::string prefix, handler next) {
  return middleware(
      std::move(next),
      [prefix](const handler& next, response_writer& w, request& r) -> asio::awaitable<void> {
        if (!r.path().starts_with(prefix)) {
          co_await write_text(w, 404, "not found\n");
          co_return;
        }
        r.target.erase(0, prefix.size());
        if (r.target.empty() || r.target.front() != '/') r.target.insert(0, "/");
        co_await next(w, r);
      });
}

// Lets in requests that carry the token; records who they are for the handlers within.
handler with_auth(std::string token, handler next) {
  return middleware(
      std::move(next),
      [token](const handler& next, response_writer& w, request& r) -> asio::awaitable<void> {
        if (r.header.get("authorization") != "Bearer " + token) {
          w.header().set("WWW-Authenticate", "Bearer");
          co_await write_text(w, 401, "unauthorized\n");
          co_return;
        }
        r.values.set(user_key, std::string("bearer"));
        co_await next(w, r);
      });
}

// Logs each request with the upstream's status and latency, which the proxy records.
handler with_logging(handler next) {
  return middleware(
      std::move(next),
      [](const handler& next, response_writer& w, request& r) -> asio::awaitable<void> {
        co_await next(w, r);
        const auto* user = r.values.get(user_key);
        std::printf("%s %.*s %d %lldus upstream=%s user=%s\n", r.method.c_str(),
                    static_cast<int>(r.path().size()), r.path().data(), w.log().upstream_status,
                    static_cast<long long>(w.log().upstream_latency.count()),
                    w.log().upstream_addr.c_str(), user ? user->c_str() : "-");
        std::fflush(stdout);
      });
}

int main(int argc, char** argv) {
  if (argc != 4 || !parse_upstream_url(argv[2])) {
    std::fprintf(stderr, "usage: %s LISTEN_ADDR UPSTREAM_URL TOKEN\n", argv[0]);
    return 2;
  }
  reverse_proxy_options opts{.upstream = argv[2]};
  opts.rewrite = [](const request& in, outbound_request& out) {
    out.header.erase("Authorization");  // the upstream trusts the proxy, not the client
    if (const auto* user = in.values.get(user_key)) out.header.set("X-User", *user);
  };
  opts.transport = make_transport({.connect_timeout = std::chrono::seconds(2),
                                   .response_header_timeout = std::chrono::seconds(10)});

  handler h = make_reverse_proxy(std::move(opts));
  h = with_logging(with_auth(argv[3], strip_prefix("/api", std::move(h))));
  server srv({.listen = {argv[1]}}, std::move(h));
  std::string what;
  if (auto ec = srv.run(what)) {
    std::fprintf(stderr, "%s: %s\n", what.c_str(), ec.message().c_str());
    return 1;
  }
}
