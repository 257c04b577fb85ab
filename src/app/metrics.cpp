// SPDX-License-Identifier: MIT
// Per-route request counters and the Prometheus exposition (metrics.hpp).
#include "app/metrics.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>

#include "core/failures.hpp"
#include "lb/cluster.hpp"
#include "upstream/dispatch.hpp"

namespace trafficcop::app {
namespace {

using label = std::pair<std::string_view, std::string_view>;

/// A Prometheus label value: \, " and newline escaped.
void escaped(std::string& out, std::string_view v) {
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
}

class writer {
 public:
  explicit writer(bool openmetrics) : om_(openmetrics) {}

  /// The # HELP and # TYPE lines of a family. OpenMetrics names a counter family without
  /// its _total suffix.
  void family(std::string_view name, std::string_view type, std::string_view help) {
    std::string_view fam = name;
    if (om_ && type == "counter" && fam.ends_with("_total")) fam.remove_suffix(6);
    fmt::format_to(std::back_inserter(out_), "# HELP {} {}\n# TYPE {} {}\n", fam, help, fam, type);
  }
  void sample(std::string_view name, std::initializer_list<label> labels, double v) {
    out_ += name;
    if (labels.size() != 0) {
      out_ += '{';
      bool first = true;
      for (auto [k, val] : labels) {
        if (!first) out_ += ',';
        first = false;
        out_ += k;
        out_ += "=\"";
        escaped(out_, val);
        out_ += '"';
      }
      out_ += '}';
    }
    fmt::format_to(std::back_inserter(out_), " {}\n", v);
  }
  void histogram(std::string_view name, std::string_view route, std::string_view upstream,
                 const std::vector<std::uint64_t>& buckets, std::uint64_t sum_ns,
                 std::uint64_t count) {
    std::uint64_t cumulative = 0;
    std::string bucket = std::string(name) + "_bucket";
    for (std::size_t i = 0; i < buckets.size(); ++i) {
      cumulative += buckets[i];
      std::string le =
          i < duration_buckets.size() ? fmt::format("{}", duration_buckets[i]) : "+Inf";
      sample(bucket, {{"route", route}, {"upstream", upstream}, {"le", le}},
             static_cast<double>(cumulative));
    }
    sample(std::string(name) + "_sum", {{"route", route}, {"upstream", upstream}},
           static_cast<double>(sum_ns) / 1e9);
    sample(std::string(name) + "_count", {{"route", route}, {"upstream", upstream}},
           static_cast<double>(count));
  }
  std::string done() {
    if (om_) out_ += "# EOF\n";
    return std::move(out_);
  }

 private:
  bool om_;
  std::string out_;
};

/// Resident set, open descriptors and CPU time of this process, from /proc and getrusage.
void process_metrics(writer& w) {
  long pages = 0, resident = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  w.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
  w.sample("process_resident_memory_bytes", {},
           static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)));
  std::error_code ec;
  std::size_t fds = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++fds;
  w.family("process_open_fds", "gauge", "Number of open file descriptors.");
  w.sample("process_open_fds", {}, static_cast<double>(fds));
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    w.family("process_max_fds", "gauge", "Maximum number of open file descriptors.");
    w.sample("process_max_fds", {}, static_cast<double>(rl.rlim_cur));
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto secs = [](timeval t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  w.family("process_cpu_seconds_total", "counter", "Total user and system CPU time in seconds.");
  w.sample("process_cpu_seconds_total", {}, secs(ru.ru_utime) + secs(ru.ru_stime));
  w.family("trafficcop_coroutine_failures_total", "counter",
           "Spawned coroutines that ended by an exception (each logged; a bug).");
  w.sample("trafficcop_coroutine_failures_total", {}, static_cast<double>(coroutine_failures()));
}

void upstream_metrics(writer& w, const std::vector<upstream_runtime>& ups) {
  struct row {
    std::string upstream, endpoint;
    std::map<int, std::uint64_t> codes;
    std::uint64_t connect_failures = 0, errors = 0, in_flight = 0;
    bool healthy = true;
  };
  std::vector<row> rows;
  auto now = lb::clock::now();
  for (const auto& u : ups) {
    if (!u.cluster) continue;
    for (const auto& e : u.cluster->endpoints()) {
      row r{u.name, e->authority()};
      std::uint64_t picks = 0, dones = 0;
      e->stats().each([&](const lb::endpoint_stats& s) {
        s.responses.each([&](int code, std::uint64_t n) { r.codes[code] += n; });
        r.connect_failures += s.connect_failures.get();
        r.errors += s.errors.get();
        picks += s.picks.get();
        dones += s.dones.get();
      });
      r.in_flight = picks > dones ? picks - dones : 0;
      r.healthy = e->available(now);
      rows.push_back(std::move(r));
    }
  }
  w.family("trafficcop_upstream_requests_total", "counter",
           "Attempts an endpoint answered, by the endpoint's status.");
  for (const auto& r : rows)
    for (auto [code, n] : r.codes)
      w.sample("trafficcop_upstream_requests_total",
               {{"upstream", r.upstream},
                {"endpoint", r.endpoint},
                {"code", code ? std::to_string(code) : "other"}},
               static_cast<double>(n));
  w.family("trafficcop_upstream_connect_failures_total", "counter",
           "Attempts that could not connect (TCP or TLS).");
  for (const auto& r : rows)
    w.sample("trafficcop_upstream_connect_failures_total",
             {{"upstream", r.upstream}, {"endpoint", r.endpoint}},
             static_cast<double>(r.connect_failures));
  w.family("trafficcop_upstream_errors_total", "counter",
           "Attempts that failed after connecting: reset, closed or timed out before a response.");
  for (const auto& r : rows)
    w.sample("trafficcop_upstream_errors_total",
             {{"upstream", r.upstream}, {"endpoint", r.endpoint}}, static_cast<double>(r.errors));
  w.family("trafficcop_endpoint_healthy", "gauge",
           "1 if the endpoint may be chosen (health checks pass, not ejected), else 0.");
  for (const auto& r : rows)
    w.sample("trafficcop_endpoint_healthy", {{"upstream", r.upstream}, {"endpoint", r.endpoint}},
             r.healthy ? 1 : 0);
  w.family("trafficcop_endpoint_requests_in_flight", "gauge", "Attempts under way now.");
  for (const auto& r : rows)
    w.sample("trafficcop_endpoint_requests_in_flight",
             {{"upstream", r.upstream}, {"endpoint", r.endpoint}},
             static_cast<double>(r.in_flight));

  std::vector<std::pair<std::string, upstream::upstream_stats>> stats;
  for (const auto& u : ups)
    if (auto s = upstream::stats_of(*u.t)) stats.emplace_back(u.name, *s);
  w.family("trafficcop_upstream_retries_total", "counter", "Retries sent to the upstream.");
  for (const auto& [name, s] : stats)
    w.sample("trafficcop_upstream_retries_total", {{"upstream", name}},
             static_cast<double>(s.retries));
  w.family("trafficcop_upstream_breaker_rejections_total", "counter",
           "Requests a circuit breaker answered with 503.");
  for (const auto& [name, s] : stats)
    w.sample("trafficcop_upstream_breaker_rejections_total", {{"upstream", name}},
             static_cast<double>(s.breaker_rejections));
  w.family("trafficcop_circuit_open", "gauge",
           "1 while a circuit breaker of the upstream is at its limit.");
  for (const auto& [name, s] : stats)
    w.sample("trafficcop_circuit_open", {{"upstream", name}}, s.circuit_open ? 1 : 0);
  w.family("trafficcop_upstream_pool_connections", "gauge",
           "Connections open to the upstream: idle in a pool, or carrying a request.");
  for (const auto& [name, s] : stats) {
    w.sample("trafficcop_upstream_pool_connections", {{"upstream", name}, {"state", "idle"}},
             s.idle);
    w.sample("trafficcop_upstream_pool_connections", {{"upstream", name}, {"state", "active"}},
             s.connections > s.idle ? s.connections - s.idle : 0);
  }
}

void listener_metrics(writer& w, const server& srv, const std::vector<std::string>& ids) {
  // By listener id; a listener removed and added again by reloads has two ids and one
  // address: one series per address, summed, so that its counters never go back.
  auto by_id = srv.listener_stats();
  std::vector<std::string_view> names;
  std::vector<listener_counters> stats;
  for (std::size_t id = 0; id < by_id.size(); ++id) {
    std::string_view n = id < ids.size() ? std::string_view(ids[id]) : std::string_view();
    auto at = std::find(names.begin(), names.end(), n);
    if (at == names.end()) {
      names.push_back(n);
      stats.push_back(by_id[id]);
      continue;
    }
    auto& s = stats[static_cast<std::size_t>(at - names.begin())];
    const auto& t = by_id[id];
    s.accepted += t.accepted;
    s.open_http1 += t.open_http1;
    s.open_http2 += t.open_http2;
    s.tls_handshakes_ok += t.tls_handshakes_ok;
    s.tls_handshakes_failed += t.tls_handshakes_failed;
  }
  auto name = [&](std::size_t i) { return names[i]; };
  w.family("trafficcop_connections", "gauge", "Client connections open now.");
  for (std::size_t i = 0; i < stats.size(); ++i) {
    w.sample("trafficcop_connections", {{"listener", name(i)}, {"protocol", "http1"}},
             static_cast<double>(stats[i].open_http1));
    w.sample("trafficcop_connections", {{"listener", name(i)}, {"protocol", "http2"}},
             static_cast<double>(stats[i].open_http2));
  }
  w.family("trafficcop_connections_total", "counter", "Client connections accepted.");
  for (std::size_t i = 0; i < stats.size(); ++i)
    w.sample("trafficcop_connections_total", {{"listener", name(i)}},
             static_cast<double>(stats[i].accepted));
  w.family("trafficcop_connections_rejected_total", "counter",
           "Client connections closed at accept: over limits.max_connections_per_client.");
  w.sample("trafficcop_connections_rejected_total", {{"reason", "per_client"}},
           static_cast<double>(srv.rejected_per_client()));
  w.family("trafficcop_tls_handshakes_total", "counter", "TLS handshakes with clients.");
  for (std::size_t i = 0; i < stats.size(); ++i) {
    w.sample("trafficcop_tls_handshakes_total", {{"listener", name(i)}, {"result", "ok"}},
             static_cast<double>(stats[i].tls_handshakes_ok));
    w.sample("trafficcop_tls_handshakes_total", {{"listener", name(i)}, {"result", "error"}},
             static_cast<double>(stats[i].tls_handshakes_failed));
  }
}

}  // namespace

void histogram_cells::observe(std::chrono::nanoseconds d) noexcept {
  double s = static_cast<double>(d.count()) / 1e9;
  std::size_t i = 0;
  while (i < duration_buckets.size() && s > duration_buckets[i]) ++i;
  bucket[i].add();
  sum_ns.add(static_cast<std::uint64_t>(std::max<std::int64_t>(d.count(), 0)));
  count.add();
}

std::shared_ptr<const metrics::binding> metrics::bind(const config::config& cfg) {
  std::lock_guard l(mu_);
  auto b = std::make_shared<binding>();
  auto series = [&](std::string route, std::string upstream) {
    auto& s = all_[{route, upstream}];
    if (!s) {
      s = std::make_unique<route_series>();
      s->route = std::move(route);
      s->upstream = std::move(upstream);
    }
    b->push_back(s.get());
  };
  for (std::size_t i = 0; i < cfg.routes.size(); ++i)
    series(cfg.routes[i].name.empty() ? std::to_string(i) : cfg.routes[i].name,
           cfg.routes[i].upstream);
  series("", "");  // no route
  live_ = b;
  return b;
}

std::vector<counters::per_thread<ratelimit_cells>*> metrics::bind_rate_limits(
    const config::config& cfg) {
  std::lock_guard l(mu_);
  std::vector<counters::per_thread<ratelimit_cells>*> out;
  live_rate_limits_.clear();
  for (const auto& rl : cfg.rate_limits) {
    auto& s = rate_limits_[rl.name];
    if (!s) {
      s = std::make_unique<ratelimit_series>();
      s->name = rl.name;
    }
    out.push_back(&s->cells);
    live_rate_limits_.push_back(s.get());
  }
  return out;
}

void metrics::observe(const binding& b, std::size_t route, const request& in, response_writer& w,
                      std::uint64_t bytes_in) {
  auto& c = b[std::min(route, b.size() - 1)]->cells.local();
  // 499 when the client left before a response was complete (nginx's, as the access log).
  int status = w.status();
  if (in.client_gone() && (status == 0 || !w.head_sent())) status = 499;
  c.codes.add(status != 0 ? status : 200);
  c.total.observe(std::chrono::steady_clock::now() - in.received_at);
  auto up = w.log().upstream_latency;
  if (up.count() >= 0) c.upstream.observe(up);
  c.bytes_in.add(bytes_in);
  c.bytes_out.add(w.bytes_written());
}

std::string metrics::render(const sources& src, bool openmetrics) const {
  std::shared_ptr<const binding> live;
  std::vector<const ratelimit_series*> limits;
  {
    std::lock_guard l(mu_);
    live = live_;
    limits = live_rate_limits_;  // the series themselves are never freed
  }
  static const binding none;
  const binding& routes_ = live ? *live : none;
  writer w(openmetrics);
  struct sums {
    std::map<int, std::uint64_t> codes;
    std::vector<std::uint64_t> total, upstream;
    std::uint64_t total_sum = 0, total_count = 0, up_sum = 0, up_count = 0;
  };
  std::vector<sums> per(routes_.size());
  std::uint64_t in = 0, out = 0;
  for (std::size_t i = 0; i < routes_.size(); ++i) {
    auto& p = per[i];
    p.total.assign(duration_buckets.size() + 1, 0);
    p.upstream.assign(duration_buckets.size() + 1, 0);
    routes_[i]->cells.each([&](const route_cells& c) {
      c.codes.each([&](int code, std::uint64_t n) { p.codes[code] += n; });
      for (std::size_t b = 0; b < p.total.size(); ++b) {
        p.total[b] += c.total.bucket[b].get();
        p.upstream[b] += c.upstream.bucket[b].get();
      }
      p.total_sum += c.total.sum_ns.get();
      p.total_count += c.total.count.get();
      p.up_sum += c.upstream.sum_ns.get();
      p.up_count += c.upstream.count.get();
      in += c.bytes_in.get();
      out += c.bytes_out.get();
    });
  }
  w.family("trafficcop_requests_total", "counter",
           "Requests answered, by route, upstream and the status sent to the client.");
  for (std::size_t i = 0; i < routes_.size(); ++i)
    for (auto [code, n] : per[i].codes)
      w.sample("trafficcop_requests_total",
               {{"route", routes_[i]->route},
                {"upstream", routes_[i]->upstream},
                {"code", code ? std::to_string(code) : "other"}},
               static_cast<double>(n));
  w.family("trafficcop_request_duration_seconds", "histogram",
           "From the request's first byte to the end of its response.");
  for (std::size_t i = 0; i < routes_.size(); ++i)
    if (per[i].total_count)
      w.histogram("trafficcop_request_duration_seconds", routes_[i]->route, routes_[i]->upstream,
                  per[i].total, per[i].total_sum, per[i].total_count);
  w.family("trafficcop_upstream_duration_seconds", "histogram",
           "From sending the request upstream to the response head (the last try's).");
  for (std::size_t i = 0; i < routes_.size(); ++i)
    if (per[i].up_count)
      w.histogram("trafficcop_upstream_duration_seconds", routes_[i]->route, routes_[i]->upstream,
                  per[i].upstream, per[i].up_sum, per[i].up_count);
  w.family("trafficcop_bytes_total", "counter",
           "Body bytes: read from clients (in) and written to them (out).");
  w.sample("trafficcop_bytes_total", {{"direction", "in"}}, static_cast<double>(in));
  w.sample("trafficcop_bytes_total", {{"direction", "out"}}, static_cast<double>(out));

  if (!limits.empty()) {
    w.family("trafficcop_ratelimit_decisions_total", "counter",
             "Rate limit decisions, by limit: allow, deny, or error (the global store failed; "
             "the failure mode then applied).");
    for (const auto* rl : limits) {
      std::uint64_t allow = 0, deny = 0, error = 0;
      rl->cells.each([&](const ratelimit_cells& c) {
        allow += c.allow.get();
        deny += c.deny.get();
        error += c.error.get();
      });
      w.sample("trafficcop_ratelimit_decisions_total", {{"limit", rl->name}, {"decision", "allow"}},
               static_cast<double>(allow));
      w.sample("trafficcop_ratelimit_decisions_total", {{"limit", rl->name}, {"decision", "deny"}},
               static_cast<double>(deny));
      w.sample("trafficcop_ratelimit_decisions_total", {{"limit", rl->name}, {"decision", "error"}},
               static_cast<double>(error));
    }
  }
  if (src.upstreams) upstream_metrics(w, *src.upstreams);
  if (src.srv && src.listeners) listener_metrics(w, *src.srv, *src.listeners);
  if (src.process) {
    w.family("trafficcop_config_reloads_total", "counter", "Configuration reloads, by result.");
    w.sample("trafficcop_config_reloads_total", {{"result", "ok"}},
             static_cast<double>(src.process->reloads_ok.load()));
    w.sample("trafficcop_config_reloads_total", {{"result", "error"}},
             static_cast<double>(src.process->reloads_failed.load()));
    w.family("trafficcop_config_last_reload_success_timestamp_seconds", "gauge",
             "When the configuration now live was loaded (Unix time).");
    w.sample("trafficcop_config_last_reload_success_timestamp_seconds", {},
             src.process->last_reload_success.load());
  }
  w.family("trafficcop_build_info", "gauge", "The running version (always 1).");
  w.sample("trafficcop_build_info", {{"version", src.version}}, 1);
  process_metrics(w);
  return w.done();
}

}  // namespace trafficcop::app
