// SPDX-License-Identifier: MIT
// trafficcop-echo: the bundled demo upstream. It answers every request with what it received
// (request line, header fields, body size), so `curl localhost:8080/` through the proxy shows
// exactly what the proxy forwarded: Host, X-Forwarded-*, and what it stripped.
// Two extra paths serve tests and demos: /bytes/N streams N bytes (downloads of any size at
// flat memory), /delay/MS answers after MS milliseconds (drain and timeout demos).
// --h2c and --tls-cert/--tls-key make it an HTTP/2 upstream for the h2 tests and benchmarks.
#include <csignal>
#include <cstdio>
#include <optional>

#include <CLI/CLI.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/log.hpp"
#include "trafficcop/server.hpp"

namespace tc = trafficcop;

namespace {

/// The number after `marker` anywhere in the path ("/base/bytes/10" → 10), or nullopt.
std::optional<std::uint64_t> number_after(std::string_view path, std::string_view marker) {
  auto at = path.find(marker);
  if (at == std::string_view::npos) return std::nullopt;
  std::uint64_t n = 0;
  for (char c : path.substr(at + marker.size())) {
    if (c < '0' || c > '9') break;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n;
}

tc::asio::awaitable<void> send_bytes(tc::response_writer& w, std::uint64_t n) {
  w.header().set("Content-Type", "application/octet-stream");
  w.header().set("Content-Length", std::to_string(n));
  static const std::string block(64 * 1024, 'x');
  while (n > 0) {
    auto k = std::min<std::uint64_t>(n, block.size());
    if (co_await w.write(tc::asio::buffer(block.data(), k))) co_return;
    n -= k;
  }
}

tc::asio::awaitable<void> echo(tc::response_writer& w, tc::request& in) {
  if (auto n = number_after(in.path(), "/bytes/")) co_return co_await send_bytes(w, *n);
  if (auto ms = number_after(in.path(), "/delay/")) {
    tc::asio::steady_timer t(co_await tc::asio::this_coro::executor,
                             std::chrono::milliseconds(*ms));
    co_await t.async_wait(tc::asio::as_tuple(tc::asio::use_awaitable));
  }
  std::uint64_t body = 0;
  char buf[16 * 1024];
  for (;;) {
    auto r = co_await in.body->read(tc::asio::buffer(buf));
    if (r.ec || r.n == 0) break;
    body += r.n;
  }
  std::string out = "trafficcop-echo: this is what the upstream received\n\n";
  out += in.method + " " + in.raw_target + " " +
         (in.version == 20   ? "HTTP/2.0"
          : in.version == 10 ? "HTTP/1.0"
                             : "HTTP/1.1") +
         "\n";
  if (in.version == 20) out += ":authority: " + in.host + "\n";
  for (const auto& f : in.header) out += f.name + ": " + f.value + "\n";
  out += "\n(" + std::to_string(body) + " body bytes from " + in.remote_addr + ")\n";
  co_await tc::write_text(w, 200, out);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"trafficcop-echo: a demo upstream that answers with the request it received"};
  std::string listen = "127.0.0.1:9000";
  app.add_option("--listen", listen, "Listen address host:port")->capture_default_str();
  bool h2c = false;
  std::string cert, key;
  app.add_flag("--h2c", h2c, "Also serve HTTP/2 by prior knowledge (plain TCP)");
  app.add_option("--tls-cert", cert, "Serve TLS with this certificate chain (PEM); ALPN h2 too");
  app.add_option("--tls-key", key, "The key of --tls-cert (PEM)");
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
  o.headers_with_underscores = tc::underscore_fields::keep;  // show everything it was sent
  o.http2.resize(1);
  o.http2[0].h2c = h2c;
  if (!cert.empty()) o.tls = {tc::listener_tls{{{cert, key}}}};
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
