// SPDX-License-Identifier: MIT
// The server on the live config, reloads, the admin listener, signals (runtime.hpp).
#include "app/runtime.hpp"

#include <signal.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
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
/// then the access log; `listener_ids` are the server's ids of cfg.listeners (empty: their
/// indexes). Throws std::runtime_error if the access log cannot be opened.
std::shared_ptr<const generation> build(const config::config& cfg, metrics* m,
                                        const std::vector<upstream_runtime>& before,
                                        const std::vector<std::size_t>& listener_ids = {},
                                        const rate_limit_set* before_limits = nullptr) {
  auto g = std::make_shared<generation>();
  g->cfg = cfg;
  auto gw = build_gateway(cfg, m, before, listener_ids, before_limits);
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
std::unique_ptr<server> start_admin(const config::config& cfg, std::shared_ptr<admin_state> st,
                                    std::vector<int> inherited) {
  server_options o;
  o.listen = {cfg.admin->address};
  o.workers = 1;
  o.max_connections = 64;
  o.inherited_fds = std::move(inherited);
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

  /// Runs `f` with no reload running (an upgrade hands over the listeners as they are).
  template <class F>
  auto exclusive(F f) {
    std::lock_guard l(mu_);
    return f();
  }

  /// "" once the new config is live; else every reason, one a line (the old config stays).
  std::string reload(const char* who) {
    std::lock_guard l(mu_);
    // Shutting down (or handed over to a new process): the workers are going away.
    if (st_->draining) return "draining: not reloaded\n";
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
    // Listeners added are bound first (they listen, nobody accepts yet), then the generation
    // that routes by their ids goes live, then they accept and removed ones close.
    std::shared_ptr<const generation> next;
    std::string what, build_error;
    std::vector<std::size_t> ids;
    std::chrono::steady_clock::time_point swapped;
    auto ec = srv_.update_listeners(to_server_options(*r.cfg), what, [&](const auto& got) {
      try {
        next = build(*r.cfg, m_.get(), old->upstreams, got, old->rate_limits.get());
      } catch (const std::exception& e) {
        build_error = e.what();
        return false;
      }
      ids = got;
      live_.swap(next);
      swapped = std::chrono::steady_clock::now();  // requests received before: old generations
      return true;
    });
    if (!build_error.empty()) {
      if (m_) m_->bind(old->cfg);  // the metrics show the routes that still serve
      if (m_) m_->bind_rate_limits(old->cfg);
      return file_ + ": " + build_error + "\n";
    }
    if (ec) return file_ + ": " + what + "\n";
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
      for (std::size_t i = 0; i < ids.size(); ++i) {  // metrics name listeners by id
        if (ids[i] >= st_->listeners.size()) st_->listeners.resize(ids[i] + 1);
        st_->listeners[ids[i]] = r.cfg->listeners[i].address;
      }
    }
    log::info("{}: config reloaded from {}", who, file_);
    if (auto d = r.cfg->timeouts.drain_on_reload) {
      srv_.close_started_before(swapped, swapped + *d);
      log::info("{}: requests started before this reload are closed if still running in {} ms", who,
                d->count());
    }
    return {};
  }

  std::mutex mu_;
  server& srv_;
  live_config& live_;
  std::shared_ptr<metrics> m_;
  std::shared_ptr<admin_state> st_;
  std::string file_;
};

/// A LISTEN_FDNAMES name: the listener's name when it is one (printable, no ':'), else
/// "listener". Informational: the new process matches sockets by address.
std::string fd_name(const config::config& cfg, std::size_t index) {
  std::string n = index < cfg.listeners.size() ? cfg.listeners[index].name : "";
  bool ok = !n.empty() && n.size() <= 255 &&
            std::all_of(n.begin(), n.end(), [](char c) { return c > ' ' && c < 127 && c != ':'; });
  return ok ? n : "listener";
}

/// How long a new binary may take to serve before the upgrade is given up (it is killed).
constexpr std::chrono::seconds upgrade_timeout{30};

/// SIGUSR2: starts the binary again with every listening socket; its pid once it serves, or
/// -1 (logged; this process goes on serving, having never stopped accepting).
pid_t upgrade(const server& srv, const server* admin, const config::config& cfg,
              const process_origin& origin) {
  std::vector<handed_socket> socks;
  for (const auto& s : srv.listening_sockets()) socks.push_back({s.fd, fd_name(cfg, s.listener)});
  if (admin)
    for (const auto& s : admin->listening_sockets()) socks.push_back({s.fd, "admin"});
  log::info("SIGUSR2: upgrade: starting {} with {} listening sockets", origin.exe, socks.size());
  std::string why;
  pid_t pid = start_successor(origin, socks, upgrade_timeout, why);
  if (pid < 0) {
    log::error("SIGUSR2: upgrade failed, this process goes on serving: {}", why);
    notify("STATUS=serving; the last upgrade failed (see the log)");
    return -1;
  }
  log::info("SIGUSR2: upgrade: pid {} serves; pid {} stops accepting and drains", pid, ::getpid());
  // Under systemd the service's main process is the new one from now on (its notifications
  // are the ones heard; this one's exit is not the service's).
  notify("MAINPID=" + std::to_string(pid) + "\nSTATUS=upgraded to pid " + std::to_string(pid));
  // Wait until systemd has read that: if it saw this process exit first, it would take the
  // service for stopped and kill the new one with the rest of the cgroup.
  if (std::getenv("NOTIFY_SOCKET")) sd_notify_barrier(0, 5'000'000);
  return pid;
}

/// Closes inherited sockets that no listener of this config has (their queued connections
/// are reset: the listener was removed).
void close_unused(const std::vector<int>& fds) {
  for (int fd : fds) ::close(fd);
  if (!fds.empty())
    log::warn("closed {} inherited listening socket(s) that no listener of the config has",
              fds.size());
}

}  // namespace

int run(const config::config& cfg, const std::string& yaml, const std::string& config_file,
        const std::string& version, const process_origin& origin) {
  // Signals are handled on the main thread only; no other thread ever sees them. Blocked
  // before anything starts a thread (health checks and DNS discovery do, in build), since a
  // thread inherits the mask and SIGHUP or SIGUSR1 delivered to one would kill the process.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  // Sockets from systemd (socket activation) or from the process we upgrade. Read (and their
  // variables unset) before any other thread runs: unsetenv races getenv in other threads.
  const bool upgraded = started_by_upgrade();
  auto inherited = inherited_sockets();

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

  auto so = to_server_options(cfg);
  so.inherited_fds = std::move(inherited);
  if (!so.inherited_fds.empty())
    log::info("{} listening socket(s) inherited (LISTEN_FDS)", so.inherited_fds.size());
  server srv(std::move(so), live.entry());
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
    admin = start_admin(cfg, st, srv.inherited_unused());
    if (!admin) {
      srv.shutdown(std::chrono::milliseconds(0));
      srv.wait();
      return 1;
    }
  }
  close_unused(admin ? admin->inherited_unused() : srv.inherited_unused());
  st->ready = true;
  if (upgraded)  // the old process hands systemd over to us (MAINPID) once it has read this
    announce_ready();
  else
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
    if (sig == SIGUSR2) {
      if (reloads.exclusive(
              [&] { return upgrade(srv, admin.get(), live.current()->cfg, origin); }) > 0)
        break;
      continue;
    }
    if (sig != SIGHUP) break;
    reloads.reload("SIGHUP");
  }
  reloads.exclusive([&] { return st->draining = true; });     // a reload under way ends first
  if (sig != SIGUSR2) notify("STOPPING=1\nSTATUS=draining");  // not the service's stop
  log::info("{}: draining for up to {} ms",
            sig == SIGUSR2  ? "SIGUSR2"
            : sig == SIGINT ? "SIGINT"
                            : "SIGTERM",
            cfg.timeouts.drain.count());
  // After an upgrade the new process answers the admin API (its /ready is 200): stop taking
  // admin connections at once, or a health check could reach this one's 503.
  if (sig == SIGUSR2 && admin) admin->shutdown(std::chrono::seconds(1));
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
