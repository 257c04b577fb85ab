// SPDX-License-Identifier: MIT
// A proxy that adds credentials on the way in and hides the upstream's software on the way out.
//
//   UPSTREAM_TOKEN=s3cret auth_header_proxy 127.0.0.1:8080 http://127.0.0.1:9000
//   auth_header_proxy 127.0.0.1:8080 http://127.0.0.1:9000 s3cret
#include <cstdio>
#include <cstdlib>
#include <string>

#include "trafficcop/reverse_proxy.hpp"
#include "trafficcop/server.hpp"

int main(int argc, char** argv) {
  using namespace trafficcop;
  const char* env = std::getenv("UPSTREAM_TOKEN");
  const std::string token = argc > 3 ? argv[3] : env ? env : "";
  if (argc < 3 || argc > 4 || token.empty() || !parse_upstream_url(argv[2])) {
    std::fprintf(stderr, "usage: %s LISTEN_ADDR UPSTREAM_URL [TOKEN]  (or $UPSTREAM_TOKEN)\n",
                 argv[0]);
    return 2;
  }

  reverse_proxy_options opts{.upstream = argv[2]};
  // rewrite runs last on the outbound copy of each request (the inbound one is read-only), so
  // what it sets is sent as written: a client's own Authorization is replaced, never merged.
  opts.rewrite = [token](const request&, outbound_request& out) {
    out.header.set("Authorization", "Bearer " + token);
  };
  // modify_response sees every upstream response head before the client does; returning an
  // error instead would answer 502 through the error handler.
  opts.modify_response = [](upstream_response& res, const request&) -> error_code {
    res.header.erase("Server");
    res.header.erase("X-Powered-By");
    return {};
  };

  server srv({.listen = {argv[1]}}, make_reverse_proxy(std::move(opts)));
  std::string what;  // run() serves until Ctrl-C or SIGTERM, then drains for up to 10 s
  if (auto ec = srv.run(what)) {
    std::fprintf(stderr, "%s: %s\n", what.c_str(), ec.message().c_str());
    return 1;
  }
}
