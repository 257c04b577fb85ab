// SPDX-License-Identifier: MIT
// The server on the live config, reloads, the admin listener, signals (runtime.hpp).
#include "app/runtime.hpp"

#include <signal.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <mutex>

#include "app/admin.hpp"
#include "app/gateway.hpp"
#include "app/live.hpp"
#include "core/log.hpp"
#include "upstream/dispatch.hpp"

namespace trafficcop::app {
namespace {

/// Tells systemd (Type=notify) what the service is doing; nothing without NOTIFY_SOCKET.
void notify(const std::string& state) { sd_notify(0, state.c_str()); }

/// RELOADING=1 needs the monotonic time with it (systemd 253's reload protocol).
std::string reloading() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return "RELOADING=1\nMONOTONIC_USEC=" +
         std::to_string(static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000 +
                        static_cast<std::uint64_t>(ts.tv_nsec) / 1000);
}

/// The handler chain of `cfg`: router and proxies (reusing `before`'s unchanged upstreams),
/// then the access log. Throws std::runtime_error if the access log cannot be opened.
std::shared_ptr<const generation> build(const config::config& cfg, metrics* m,
                                        const std::vector<upstream_runtime>& before,
                                        const rate_limit_set* before_limits = nullptr) {
  auto g = std::make_shared<generation>();
  g->cfg = cfg;
  auto gw = build_gateway(cfg, m, before, before_limits);
  g->h = std::move(gw.h);
  g->upstreams = std::move(gw.upstreams);
  g->rate_limits = std::move(gw.rate_limits);
  if (cfg.access_log.path != "off") {
    g->sink = std::make_shared<access_log_sink>(cfg.access_log.path, cfg.access_log.format,
                                                cfg.access_log.fields);
    g->h = with_access_log(std::move(g->h), g->sink);
  }
  return g;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

/// The admin listener of `cfg.admin` on its own server (one thread), or null if it fails.
std::unique_ptr<server> start_admin(const config::config& cfg, std::shared_ptr<admin_state> st) {
  server_options o;
  o.listen = {cfg.admin->address};
  o.workers = 1;
  o.max_connections = 64;
  auto admin = std::make_unique<server>(o, admin_handler(std::move(st)));
  std::string what;
  if (admin->start(what)) {
    std::fprintf(stderr, "trafficcop: admin: %s\n", what.c_str());
    return nullptr;
  }
  auto ep = admin->local_endpoints().at(0);
  log::info("admin API on {}:{}", ep.address().to_string(), ep.port());
  return admin;
}

/// Reloads: the config file (when there is one) and the listeners' certificates, one at a
/// time (SIGHUP on the main thread, POST /reload on the admin thread).
class reloader {
 public:
  reloader(server& srv, live_config& live, std::shared_ptr<metrics> m,
           std::shared_ptr<admin_state> st, std::string file)
      : srv_(srv), live_(live), m_(std::move(m)), st_(std::move(st)), file_(std::move(file)) {}

  /// "" once the new config is live; else every reason, one a line (the old config stays).
  std::string reload(const char* who) {
    std::lock_guard l(mu_);
    notify(reloading());
    std::string errors = reload_config(who);
    if (errors.empty()) {
      std::string err;
      if (srv_.reload_tls(err)) {
        log::error("{}: certificates not reloaded, keeping the current ones: {}", who, err);
        errors = "certificates: " + err + "\n";
      } else {
        log::info("{}: certificates reloaded", who);
      }
    }
    if (!errors.empty()) {
      log::error("{}: not reloaded, the running config stays:\n{}", who, errors);
      st_->process.reloads_failed.fetch_add(1);
      notify("READY=1\nSTATUS=serving; the last reload failed (see the log)");
      return errors;
    }
    notify("READY=1\nSTATUS=serving; reloaded");
    st_->process.reloads_ok.fetch_add(1);
    st_->process.last_reload_success = static_cast<double>(std::time(nullptr));
    return {};
  }

 private:
  std::string reload_config(const char* who) {
    if (file_.empty()) {
      log::info("{}: no config file (flags): the certificates alone are reloaded", who);
      return {};
    }
    std::string yaml = read_file(file_);
    auto r = config::load_string(yaml, file_);
    if (r.errors.empty() && r.cfg) r.errors = check_files(*r.cfg);
    std::string errors;
    for (const auto& e : r.errors) errors += file_ + ": " + e + "\n";
    if (!errors.empty()) return errors;
    auto old = live_.current();
    if (auto keys = needs_restart(old->cfg, *r.cfg); !keys.empty())
      return file_ + ": " + keys + " changed: these need a restart (or an upgrade, SIGUSR2)\n";
    std::shared_ptr<const generation> next;
    try {
      next = build(*r.cfg, m_.get(), old->upstreams, old->rate_limits.get());
    } catch (const std::exception& e) {
      if (m_) m_->bind(old->cfg);  // the metrics show the routes that still serve
      if (m_) m_->bind_rate_limits(old->cfg);
      return file_ + ": " + e.what() + "\n";
    }
    live_.swap(next);
    // Upstreams the new config no longer has (or changed) stop their background work; their
    // requests in flight go on, on the old generation.
    for (const auto& u : old->upstreams) {
      bool kept = std::any_of(next->upstreams.begin(), next->upstreams.end(),
                              [&](const upstream_runtime& n) { return n.t == u.t; });
      if (!kept) upstream::stop_background(*u.t);
    }
    {
      std::lock_guard l(st_->mu);
      st_->upstreams = next->upstreams;
      st_->config_json = config_as_json(yaml);
    }
    log::info("{}: config reloaded from {}", who, file_);
    return {};
  }

  std::mutex mu_;
  server& srv_;
  live_config& live_;
  std::shared_ptr<metrics> m_;
  std::shared_ptr<admin_state> st_;
  std::string file_;
};

}  // namespace

int run(const config::config& cfg, const std::string& yaml, const std::string& config_file,
        const std::string& version) {
  // Signals are handled on the main thread only; no other thread ever sees them. Blocked
  // before anything starts a thread (health checks and DNS discovery do, in build), since a
  // thread inherits the mask and SIGHUP or SIGUSR1 delivered to one would kill the process.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::shared_ptr<metrics> m;
  if (cfg.admin) m = std::make_shared<metrics>();
  std::shared_ptr<const generation> first;
  try {
    first = build(cfg, m.get(), {});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trafficcop: %s\n", e.what());
    return 1;
  }
  live_config live(first);

  server srv(to_server_options(cfg), live.entry());
  std::string what;
  if (auto ec = srv.start(what)) {
    std::fprintf(stderr, "trafficcop: %s\n", what.c_str());
    return 1;
  }
  for (const auto& ep : srv.local_endpoints())
    log::info("listening on {}:{}", ep.address().to_string(), ep.port());

  auto st = std::make_shared<admin_state>();
  st->m = m;
  st->upstreams = first->upstreams;
  st->config_json = config_as_json(yaml);
  st->srv = &srv;
  for (const auto& l : cfg.listeners) st->listeners.push_back(l.address);
  st->version = version;
  st->process.last_reload_success = static_cast<double>(std::time(nullptr));
  reloader reloads(srv, live, m, st, config_file);
  st->reload = [&reloads] { return reloads.reload("POST /reload"); };
  st->drain = [] { ::kill(::getpid(), SIGTERM); };  // the main thread's sigwait takes it
  std::unique_ptr<server> admin;
  if (cfg.admin) {
    for (const auto& a : cfg.admin->allow)
      if (auto n = ip_network::parse(a)) st->allow.push_back(*n);  // checked by the loader
    admin = start_admin(cfg, st);
    if (!admin) {
      srv.shutdown(std::chrono::milliseconds(0));
      srv.wait();
      return 1;
    }
  }
  st->ready = true;
  notify("READY=1\nSTATUS=serving on " + std::to_string(srv.local_endpoints().size()) +
         " listener(s)");

  int sig = 0;
  for (;;) {
    sigwait(&set, &sig);
    if (sig == SIGUSR1) {  // logrotate moved the access log away: write to a new file
      auto sink = live.current()->sink;
      if (!sink) continue;
      if (auto err = sink->reopen(); !err.empty())
        log::error("SIGUSR1: access log not reopened, still writing the old file: {}", err);
      else
        log::info("SIGUSR1: access log reopened");
      continue;
    }
    if (sig != SIGHUP) break;
    reloads.reload("SIGHUP");
  }
  st->draining = true;
  notify("STOPPING=1\nSTATUS=draining");
  log::info("{}: draining for up to {} ms", sig == SIGINT ? "SIGINT" : "SIGTERM",
            cfg.timeouts.drain.count());
  srv.shutdown(cfg.timeouts.drain);
  srv.wait();
  if (admin) {
    admin->shutdown(std::chrono::milliseconds(0));
    admin->wait();
  }
  log::info("stopped");
  return 0;
}

}  // namespace trafficcop::app
