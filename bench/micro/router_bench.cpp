// SPDX-License-Identifier: MIT
// Micro-benchmarks of the route table (src/app/router.hpp, issue 9.6): one lookup against
// tables of 10,000 routes of each kind and a mixed one, next to a 10-route table as the
// baseline; and the time to load a 10,000-route config (YAML → validated config → table),
// which the issue wants under a second.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "app/router.hpp"
#include "config/config.hpp"

namespace {

using trafficcop::request;
using trafficcop::app::route_table;
namespace config = trafficcop::config;

constexpr int table_size = 10000;

std::string with_routes(const std::string& routes) {
  return "listeners: [{name: public, address: '127.0.0.1:8080'}]\n"
         "upstreams: [{name: app, url: 'http://127.0.0.1:9000'}]\n"
         "routes:\n" +
         routes;
}

/// `n` routes made by `line(i)`, then a catch-all.
template <class Line>
std::string routes_yaml(int n, Line line) {
  std::string y;
  for (int i = 0; i < n; ++i) y += "  - " + line(std::to_string(i)) + "\n";
  return with_routes(y + "  - {path_prefix: /, upstream: app}\n");
}

// Every kind at once, a quarter each: exact host + prefix, wildcard host + exact path, any-host
// regex with a method, any-host prefix with a header condition.
std::string mixed_yaml(int n) {
  std::string y;
  for (int i = 0; i < n; ++i) {
    auto s = std::to_string(i);
    switch (i % 4) {
      case 0:
        y += "  - {host: h" + s + ".example, path_prefix: /api/" + s + ", upstream: app}\n";
        break;
      case 1:
        y += "  - {host: '*.w" + s + ".example', path: /p/" + s + ", upstream: app}\n";
        break;
      case 2:
        y += "  - {path_regex: '/r/" + s + "/[0-9]+', methods: [GET], upstream: app}\n";
        break;
      default:
        y += "  - {path_prefix: /s/" + s + ", headers: {X-V: '" + s + "'}, upstream: app}\n";
    }
  }
  return with_routes(y);
}

struct table {
  config::config cfg;
  route_table routes;
  explicit table(const std::string& yaml) : cfg(load(yaml)), routes(cfg.routes, cfg.listeners) {}
  static config::config load(const std::string& yaml) {
    auto r = config::load_string(yaml);
    return r.cfg.value_or(config::config{});  // an error leaves no routes: the run says so
  }
};

request make(std::string host, std::string target,
             std::vector<std::pair<std::string, std::string>> h = {}) {
  request r;
  r.method = "GET";
  r.host = std::move(host);
  r.target = std::move(target);
  r.raw_target = r.target;
  for (const auto& [n, v] : h) r.header.add(n, v);
  return r;
}

void run(benchmark::State& state, const table& t, const request& req, std::size_t want) {
  if (t.cfg.routes.empty()) return state.SkipWithError("config did not load");
  if (t.routes.match(req) != want) return state.SkipWithError("wrong route");
  for (auto _ : state) benchmark::DoNotOptimize(t.routes.match(req));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

const table& small() {
  static const table t(routes_yaml(10, [](const std::string& i) {
    return "{host: h" + i + ".example, path_prefix: /api/" + i + ", upstream: app}";
  }));
  return t;
}
const table& hosts() {
  static const table t(routes_yaml(table_size, [](const std::string& i) {
    return "{host: h" + i + ".example, path_prefix: /api/" + i + ", upstream: app}";
  }));
  return t;
}
const table& wildcards() {
  static const table t(routes_yaml(table_size, [](const std::string& i) {
    return "{host: '*.w" + i + ".example', upstream: app}";
  }));
  return t;
}
const table& prefixes() {
  static const table t(routes_yaml(table_size, [](const std::string& i) {
    return "{path_prefix: /svc/" + i + ", upstream: app}";
  }));
  return t;
}
const table& paths() {
  static const table t(routes_yaml(
      table_size, [](const std::string& i) { return "{path: /p/" + i + ", upstream: app}"; }));
  return t;
}
const table& mixed() {
  static const table t(mixed_yaml(table_size));
  return t;
}

void BM_match_10_routes_host_prefix(benchmark::State& state) {
  run(state, small(), make("h7.example", "/api/7/users/42?x=1"), 7);
}
void BM_match_10k_host_prefix(benchmark::State& state) {
  run(state, hosts(), make("h7777.example", "/api/7777/users/42?x=1"), 7777);
}
void BM_match_10k_wildcard(benchmark::State& state) {
  run(state, wildcards(), make("a.b.w7777.example:8443", "/x"), 7777);
}
void BM_match_10k_prefix(benchmark::State& state) {
  run(state, prefixes(), make("any.example", "/svc/7777/a/b/c"), 7777);
}
void BM_match_10k_exact_path(benchmark::State& state) {
  run(state, paths(), make("any.example", "/p/7777"), 7777);
}
// 2,500 regexes on the any-host level: one RE2::Set pass, then the method check.
void BM_match_10k_mixed_regex(benchmark::State& state) {
  run(state, mixed(), make("any.example", "/r/7778/123"), 7778);
}
void BM_match_10k_mixed_prefix_header(benchmark::State& state) {
  run(state, mixed(), make("any.example", "/s/7779/x", {{"X-V", "7779"}}), 7779);
}
void BM_match_10k_mixed_miss(benchmark::State& state) {
  run(state, mixed(), make("h1.example", "/nothing/here"), route_table::none);
}

BENCHMARK(BM_match_10_routes_host_prefix);
BENCHMARK(BM_match_10k_host_prefix);
BENCHMARK(BM_match_10k_wildcard);
BENCHMARK(BM_match_10k_prefix);
BENCHMARK(BM_match_10k_exact_path);
BENCHMARK(BM_match_10k_mixed_regex);
BENCHMARK(BM_match_10k_mixed_prefix_header);
BENCHMARK(BM_match_10k_mixed_miss);

// What `trafficcop check` and start-up do with a 10,000-route file, in two steps: the YAML
// loader (parse, validate, compile 2,500 regexes, duplicate checks), then the route table
// (hash maps, the RE2::Set of the 2,500 regexes).
void BM_load_10k_routes_config(benchmark::State& state) {
  const std::string yaml = mixed_yaml(table_size);
  for (auto _ : state) {
    auto r = config::load_string(yaml);
    if (!r.errors.empty()) return state.SkipWithError(r.errors.front().c_str());
    benchmark::DoNotOptimize(r);
  }
}
void BM_load_10k_routes_table(benchmark::State& state) {
  const auto& cfg = mixed().cfg;
  if (cfg.routes.empty()) return state.SkipWithError("config did not load");
  for (auto _ : state) {
    route_table t(cfg.routes, cfg.listeners);
    benchmark::DoNotOptimize(t);
  }
}
// 10,000 routes told apart only by a header (one per tenant): the never-matching check files
// earlier routes by condition, so this stays linear.
void BM_load_10k_tenant_routes_config(benchmark::State& state) {
  const std::string yaml = routes_yaml(table_size, [](const std::string& i) {
    return "{path_prefix: /, headers: {X-Tenant: 't" + i + "'}, upstream: app}";
  });
  for (auto _ : state) {
    auto r = config::load_string(yaml);
    if (!r.errors.empty()) return state.SkipWithError(r.errors.front().c_str());
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_load_10k_routes_config)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_load_10k_tenant_routes_config)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_load_10k_routes_table)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
