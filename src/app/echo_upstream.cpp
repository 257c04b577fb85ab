// SPDX-License-Identifier: MIT
// trafficcop-echo: the bundled demo upstream. It answers every request with what it received
// (request line, header fields, body size), so `curl localhost:8080/` through the proxy shows
// exactly what the proxy forwarded: Host, X-Forwarded-*, and what it stripped.
#include <csignal>
#include <cstdio>

#include <CLI/CLI.hpp>

#include "core/log.hpp"
#include "trafficcop/server.hpp"

namespace tc = trafficcop;

namespace {

tc::asio::awaitable<void> echo(tc::response_writer& w, tc::request& in) {
  std::uint64_t body = 0;
  char buf[16 * 1024];
  for (;;) {
    auto r = co_await in.body->read(tc::asio::buffer(buf));
    if (r.ec || r.n == 0) break;
    body += r.n;
  }
  std::string out = "trafficcop-echo: this is what the upstream received\n\n";
  out += in.method + " " + in.target + " HTTP/1." + (in.version == 10 ? "0" : "1") + "\n";
  for (const auto& f : in.header) out += f.name + ": " + f.value + "\n";
  out += "\n(" + std::to_string(body) + " body bytes from " + in.remote_addr + ")\n";
  co_await tc::write_text(w, 200, out);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"trafficcop-echo: a demo upstream that answers with the request it received"};
  std::string listen = "127.0.0.1:9000";
  app.add_option("--listen", listen, "Listen address host:port")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  tc::log::init("info");

  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  tc::server_options o;
  o.listen = {listen};
  o.workers = 1;
  tc::server srv(o, echo);
  std::string what;
  if (srv.start(what)) {
    std::fprintf(stderr, "trafficcop-echo: %s\n", what.c_str());
    return 1;
  }
  tc::log::info("trafficcop-echo listening on {}", listen);
  int sig = 0;
  sigwait(&set, &sig);
  srv.shutdown(std::chrono::seconds(1));
  srv.wait();
  return 0;
}
