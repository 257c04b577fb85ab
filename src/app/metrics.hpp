// SPDX-License-Identifier: MIT
// Request metrics of the binary, in the Prometheus text format (docs/operations.md lists every
// series). The request path only bumps per-thread cells (core/counters.hpp): no lock, no
// shared written cache line. Labels come from the config (route and upstream names, listener
// addresses) or from a bounded set (status codes), never from requests.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/counters.hpp"
#include "trafficcop/http.hpp"
#include "trafficcop/server.hpp"
#include "trafficcop/transport.hpp"

namespace trafficcop::lb {
class cluster;
}

namespace trafficcop::app {

/// Histogram buckets (seconds, Prometheus's defaults with 1 and 2.5 ms added).
inline constexpr std::array<double, 13> duration_buckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

struct histogram_cells {
  std::array<counters::cell, duration_buckets.size() + 1> bucket;  // the last: +Inf
  counters::cell sum_ns, count;
  void observe(std::chrono::nanoseconds d) noexcept;
};

/// One route's requests, per thread.
struct alignas(64) route_cells {
  counters::by_status codes;
  histogram_cells total;     // request duration
  histogram_cells upstream;  // to the upstream's response head
  counters::cell bytes_in, bytes_out;
};

/// One rate limit's decisions, per thread (issue 11).
struct alignas(64) ratelimit_cells {
  counters::cell allow, deny, error;
};

/// An upstream as the gateway built it: what metrics and the admin API read.
struct upstream_runtime {
  std::string name;
  std::shared_ptr<transport> t;
  std::shared_ptr<lb::cluster> cluster;
  config::upstream cfg;  // what it was made from (a reload reuses it when unchanged)
};

/// Process-wide figures kept outside the request path (reloads).
struct process_counters {
  std::atomic<std::uint64_t> reloads_ok{0}, reloads_failed{0};
  std::atomic<double> last_reload_success{0};  // Unix time, seconds
};

class metrics {
 public:
  struct route_series {
    std::string route, upstream;  // label values
    counters::per_thread<route_cells> cells;
  };
  /// The series of one config's routes, by route index, then one for requests no route took.
  using binding = std::vector<route_series*>;

  /// The series of `cfg`'s routes, made live for render(). A route keeps its series (its
  /// counts) across reloads as long as its labels stay the same.
  std::shared_ptr<const binding> bind(const config::config& cfg);

  /// The decision counters of `cfg`'s rate limits, by index in cfg.rate_limits, made live for
  /// render(). A limit keeps its counts across reloads as long as its name stays. The cells
  /// live as long as this object.
  std::vector<counters::per_thread<ratelimit_cells>*> bind_rate_limits(const config::config& cfg);

  /// Counts a finished request of route `route` of `b` (b.size() - 1: no route).
  static void observe(const binding& b, std::size_t route, const request& in, response_writer& w,
                      std::uint64_t bytes_in);

  /// What render() reads besides the routes.
  struct sources {
    const std::vector<upstream_runtime>* upstreams = nullptr;
    const server* srv = nullptr;
    const std::vector<std::string>* listeners = nullptr;  // addresses, by index
    const process_counters* process = nullptr;
    std::string version;
  };
  /// The Prometheus text format 0.0.4; `openmetrics`: OpenMetrics 1.0 (counters end in
  /// _total in both; the document ends with # EOF).
  std::string render(const sources& s, bool openmetrics = false) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<route_series>> all_;
  std::shared_ptr<const binding> live_;  // what render() shows
  struct ratelimit_series {
    std::string name;
    counters::per_thread<ratelimit_cells> cells;
  };
  std::map<std::string, std::unique_ptr<ratelimit_series>> rate_limits_;
  std::vector<const ratelimit_series*> live_rate_limits_;  // what render() shows
};

}  // namespace trafficcop::app
