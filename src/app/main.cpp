// SPDX-License-Identifier: MIT
// trafficcop: command line parsing and wiring only (the work is in the libraries).
#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <mutex>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "app/admin.hpp"
#include "app/gateway.hpp"
#include "config/config.hpp"
#include "core/log.hpp"

namespace tc = trafficcop;

namespace {

struct cli_args {
  std::string config_file;
  std::string listen = "127.0.0.1:8080";
  std::string upstream;
  unsigned workers = 0;
  std::string upstream_timeout;
  std::string access_log = "-";
  std::string log_format = "json";
  std::string log_level = "info";
  std::string drain = "10s";
};

/// The five-line case, as a config: one listener, one upstream, one route "/".
std::string yaml_for_flags(const cli_args& a) {
  std::string y = "listeners:\n  - address: \"" + a.listen + "\"\n";
  y += "upstreams:\n  - name: upstream\n    url: \"" + a.upstream + "\"\n";
  if (!a.upstream_timeout.empty()) y += "    response_timeout: \"" + a.upstream_timeout + "\"\n";
  y += "routes:\n  - path_prefix: /\n    upstream: upstream\n";
  y += "workers: " + std::to_string(a.workers) + "\n";
  y += "access_log:\n  path: \"" + a.access_log + "\"\n  format: " + a.log_format + "\n";
  y += "timeouts:\n  drain: \"" + a.drain + "\"\n";
  return y;
}

/// Errors about the config built from flags name the flag, not a YAML path.
std::string flag_names(std::string e) {
  static const std::pair<std::string_view, std::string_view> names[] = {
      {"listeners[0].address", "--listen"},
      {"upstreams[0].url", "--upstream"},
      {"upstreams[0].response_timeout", "--upstream-timeout"},
      {"access_log.path", "--access-log"},
      {"access_log.format", "--access-log-format"},
      {"timeouts.drain", "--drain-timeout"},
      {"workers", "--workers"}};
  for (auto [path, flag] : names)
    if (e.starts_with(path)) return std::string(flag) + e.substr(path.size());
  return e;
}

int report(tc::config::load_result r, const std::string& source) {
  if (r.errors.empty() && r.cfg) r.errors = tc::app::check_files(*r.cfg);
  for (const auto& e : r.errors) {
    std::string msg = source == "command line" ? flag_names(e) : e;
    std::fprintf(stderr, "%s: %s\n", source.c_str(), msg.c_str());
  }
  return r.errors.empty() ? 0 : 1;
}

/// The admin listener of `cfg.admin` on its own server (one thread), or null when off.
std::unique_ptr<tc::server> start_admin(const tc::config::config& cfg,
                                        std::shared_ptr<tc::app::admin_state> st) {
  tc::server_options o;
  o.listen = {cfg.admin->address};
  o.workers = 1;
  o.max_connections = 64;
  auto admin = std::make_unique<tc::server>(o, tc::app::admin_handler(std::move(st)));
  std::string what;
  if (admin->start(what)) {
    std::fprintf(stderr, "trafficcop: admin: %s\n", what.c_str());
    return nullptr;
  }
  auto ep = admin->local_endpoints().at(0);
  tc::log::info("admin API on {}:{}", ep.address().to_string(), ep.port());
  return admin;
}

int run(const tc::config::config& cfg, const std::string& yaml) {
  // Signals are handled on the main thread only; no other thread ever sees them. Blocked
  // before anything starts a thread (health checks and DNS discovery do, in build_gateway),
  // since a thread inherits the mask and SIGHUP or SIGUSR1 delivered to one would kill us.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::shared_ptr<tc::app::metrics> m;
  if (cfg.admin) m = std::make_shared<tc::app::metrics>(cfg);
  auto g = tc::app::build_gateway(cfg, m);
  tc::handler h = g.h;
  std::shared_ptr<tc::app::access_log_sink> sink;
  if (cfg.access_log.path != "off") {
    try {
      sink = std::make_shared<tc::app::access_log_sink>(cfg.access_log.path, cfg.access_log.format,
                                                        cfg.access_log.fields);
      h = tc::app::with_access_log(std::move(h), sink);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "trafficcop: %s\n", e.what());
      return 1;
    }
  }
  tc::server srv(tc::app::to_server_options(cfg), std::move(h));
  std::string what;
  if (auto ec = srv.start(what)) {
    std::fprintf(stderr, "trafficcop: %s\n", what.c_str());
    return 1;
  }
  for (const auto& ep : srv.local_endpoints())
    tc::log::info("listening on {}:{}", ep.address().to_string(), ep.port());

  auto st = std::make_shared<tc::app::admin_state>();
  st->m = m;
  st->upstreams = g.upstreams;
  st->config_json = tc::app::config_as_json(yaml);
  st->srv = &srv;
  for (const auto& l : cfg.listeners) st->listeners.push_back(l.address);
  st->version = TRAFFICCOP_VERSION;
  st->process.last_reload_success = static_cast<double>(std::time(nullptr));
  // SIGHUP's work, also POST /reload's (run on the admin thread, one at a time).
  auto reload = [&srv, st](const char* who) {
    std::string err;
    if (auto ec = srv.reload_tls(err)) {
      tc::log::error("{}: certificates not reloaded, keeping the current ones: {}", who, err);
      st->process.reloads_failed.fetch_add(1);
      return err + "\n";
    }
    tc::log::info("{}: certificates reloaded", who);
    st->process.reloads_ok.fetch_add(1);
    st->process.last_reload_success = static_cast<double>(std::time(nullptr));
    return std::string();
  };
  std::mutex reload_mu;
  st->reload = [&] {
    std::lock_guard l(reload_mu);
    return reload("POST /reload");
  };
  st->drain = [] { ::kill(::getpid(), SIGTERM); };  // the main thread's sigwait takes it
  std::unique_ptr<tc::server> admin;
  if (cfg.admin) {
    if (cfg.admin->address.empty()) return 1;
    for (const auto& a : cfg.admin->allow) st->allow.push_back(*tc::cidr::parse(a));
    admin = start_admin(cfg, st);
    if (!admin) {
      srv.shutdown(std::chrono::milliseconds(0));
      srv.wait();
      return 1;
    }
  }
  st->ready = true;

  int sig = 0;
  for (;;) {
    sigwait(&set, &sig);
    if (sig == SIGUSR1) {  // logrotate moved the access log away: write to a new file
      if (!sink) continue;
      if (auto err = sink->reopen(); !err.empty())
        tc::log::error("SIGUSR1: access log not reopened, still writing the old file: {}", err);
      else
        tc::log::info("SIGUSR1: access log reopened");
      continue;
    }
    if (sig != SIGHUP) break;
    // SIGHUP: new certificates for new connections; on any failure the old ones stay.
    std::lock_guard l(reload_mu);
    reload("SIGHUP");
  }
  st->draining = true;
  tc::log::info("{}: draining for up to {} ms", sig == SIGINT ? "SIGINT" : "SIGTERM",
                cfg.timeouts.drain.count());
  srv.shutdown(cfg.timeouts.drain);
  srv.wait();
  if (admin) {
    admin->shutdown(std::chrono::milliseconds(0));
    admin->wait();
  }
  tc::log::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "trafficcop: a reverse proxy.\n"
      "  trafficcop --listen 127.0.0.1:8080 --upstream http://127.0.0.1:9000\n"
      "  trafficcop -c trafficcop.yaml\n"
      "  trafficcop check -c trafficcop.yaml"};
  cli_args a;
  app.set_version_flag("--version", std::string("trafficcop ") + TRAFFICCOP_VERSION);
  app.add_option("-c,--config", a.config_file, "YAML configuration file")->check(CLI::ExistingFile);
  app.add_option("--listen", a.listen, "Listen address host:port")->capture_default_str();
  app.add_option("--upstream", a.upstream, "Upstream base URL, e.g. http://127.0.0.1:9000/base");
  app.add_option("--workers", a.workers, "Worker threads (0 = one per core)")
      ->capture_default_str();
  app.add_option(
      "--upstream-timeout", a.upstream_timeout,
      "Time to wait for the upstream's response headers (e.g. 3s, 250ms); expiry gives 504");
  app.add_option("--access-log", a.access_log, "Access log: a file path, - for stdout, or off")
      ->capture_default_str();
  app.add_option("--access-log-format", a.log_format, "json or combined")->capture_default_str();
  app.add_option("--drain-timeout", a.drain, "How long in-flight requests may finish on SIGTERM")
      ->capture_default_str();
  app.add_option("--log-level", a.log_level,
                 "Error log verbosity: trace, debug, info, warn, error or off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->capture_default_str();
  app.footer(
      "Signals:\n"
      "  SIGTERM, SIGINT  stop accepting, let requests in flight finish (up to --drain-timeout\n"
      "                   or timeouts.drain), then exit\n"
      "  SIGHUP           reload: the listeners' TLS certificates are read again\n"
      "  SIGUSR1          reopen the access log file (for logrotate)\n"
      "\n"
      "Configuration reference: docs/config.md");
  auto* check = app.add_subcommand("check", "Validate a configuration file and exit");
  std::string check_file;
  check->add_option("-c,--config", check_file, "YAML configuration file")->required();
  CLI11_PARSE(app, argc, argv);

  tc::log::init(a.log_level);
  if (*check) {
    auto r = tc::config::load_file(check_file);
    if (int rc = report(r, check_file)) return rc;
    std::printf("%s\n", tc::config::summary(*r.cfg).c_str());
    return 0;
  }
  if (!a.config_file.empty() && !a.upstream.empty()) {
    std::fprintf(stderr, "trafficcop: use either -c FILE or --upstream URL, not both\n");
    return 2;
  }
  tc::config::load_result r;
  std::string source, yaml;
  if (!a.config_file.empty()) {
    r = tc::config::load_file(a.config_file);
    source = a.config_file;
    std::ifstream f(a.config_file);
    yaml.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  } else if (!a.upstream.empty()) {
    yaml = yaml_for_flags(a);
    r = tc::config::load_string(yaml, "command line");
    source = "command line";
  } else {
    std::fprintf(stderr,
                 "trafficcop: nothing to do: give --upstream URL or -c FILE (see --help)\n");
    return 2;
  }
  if (int rc = report(r, source)) return rc;
  return run(*r.cfg, yaml);
}
