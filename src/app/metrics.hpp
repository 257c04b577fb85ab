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
#include <memory>
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

/// An upstream as the gateway built it: what metrics and the admin API read.
struct upstream_runtime {
  std::string name;
  std::shared_ptr<transport> t;
  std::shared_ptr<lb::cluster> cluster;
};

/// Process-wide figures kept outside the request path (reloads).
struct process_counters {
  std::atomic<std::uint64_t> reloads_ok{0}, reloads_failed{0};
  std::atomic<double> last_reload_success{0};  // Unix time, seconds
};

class metrics {
 public:
  /// Series for `cfg`'s routes (and one for requests no route took).
  explicit metrics(const config::config& cfg);

  /// Counts a finished request of route `route` (routes.size() = no route).
  void observe(std::size_t route, const request& in, response_writer& w, std::uint64_t bytes_in);

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
  struct route_series {
    std::string route, upstream;  // label values
    counters::per_thread<route_cells> cells;
  };
  std::vector<std::unique_ptr<route_series>> routes_;  // by route index, then "no route"
};

}  // namespace trafficcop::app
