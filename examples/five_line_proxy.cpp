// SPDX-License-Identifier: MIT
// The smallest useful trafficcop program: every request on one address, proxied to one upstream.
//
//   five_line_proxy 127.0.0.1:8080 http://127.0.0.1:9000
//
// Go's five-line httputil.ReverseProxy program, in C++: the proxy is a handler, the server runs
// it. Requests and responses are streamed; upstream connections are pooled per worker thread.
#include <cstdio>
#include <string>

#include "trafficcop/reverse_proxy.hpp"
#include "trafficcop/server.hpp"

int main(int argc, char** argv) {
  using namespace trafficcop;
  if (argc != 3 || !parse_upstream_url(argv[2])) {
    std::fprintf(stderr, "usage: %s LISTEN_ADDR http://UPSTREAM[:PORT][/BASE]\n", argv[0]);
    return 2;
  }

  // The five lines: a server whose handler is a reverse proxy, run until Ctrl-C or SIGTERM,
  // which lets in-flight requests finish for up to 10 s.
  server srv({.listen = {argv[1]}}, make_reverse_proxy({.upstream = argv[2]}));
  std::string what;
  if (auto ec = srv.run(what)) {
    std::fprintf(stderr, "%s: %s\n", what.c_str(), ec.message().c_str());
    return 1;
  }
}
