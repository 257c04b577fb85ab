// SPDX-License-Identifier: MIT
// The transport of an upstream of many endpoints: each attempt goes to an endpoint the
// cluster picks (src/lb/cluster.hpp), retries follow the upstream's policy and go elsewhere,
// and circuit breakers bound what the upstream is sent. docs/config.md says what each knob does.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "lb/cluster.hpp"
#include "trafficcop/transport.hpp"
#include "upstream/discovery.hpp"

namespace trafficcop::upstream {

struct retry_policy {
  /// Extra tries after the first; 0 disables retries to other endpoints (a pooled connection
  /// found closed is still replayed on a fresh one, and a refused HTTP/2 stream on another).
  std::uint32_t attempts = 1;
  bool on_connect_failure = true;
  bool on_refused_stream = true;
  bool on_reset_before_response = false;                // idempotent requests only
  bool on_502 = false, on_503 = false, on_504 = false;  // idempotent requests only
  /// Bound on each try's response head; 0 = the upstream's response_timeout.
  std::chrono::milliseconds per_try_timeout{0};
  /// Retries per worker over a sliding 10 s window: at most `budget_percent` of the requests,
  /// plus `budget_min_per_second` a second.
  std::uint32_t budget_percent = 20;
  std::uint32_t budget_min_per_second = 3;
  /// Before retry k (1, 2...): a random wait in [0, min(max, base * 2^(k-1))] (full jitter).
  std::chrono::milliseconds backoff_base{25};
  std::chrono::milliseconds backoff_max{250};
};

/// Per upstream, across workers; 0 = no limit.
struct breaker_options {
  std::uint32_t max_connections = 1024;  // upstream connections open
  std::uint32_t max_pending = 256;       // requests waiting for a new connection
  std::uint32_t max_requests = 1024;     // requests in flight
};

/// Active health checks: one checker per endpoint on a control thread shared by every upstream
/// (never a worker), a check at a time, every `interval` with ±10% jitter.
struct health_check_options {
  bool enabled = false;
  std::string scheme = "http";    // the upstream's
  std::string path = "/healthz";  // GET through the upstream's own transport (TLS, h2)
  bool tcp = false;               // a connect alone instead
  std::chrono::milliseconds interval{2000};
  std::chrono::milliseconds timeout{1000};
  std::uint32_t healthy_threshold = 2;
  std::uint32_t unhealthy_threshold = 3;
  int expected_min = 200, expected_max = 399;
};

/// Counters the breakers read, shared by the workers (relaxed atomics).
struct breaker_state {
  std::atomic<std::uint32_t> connections{0};
  std::atomic<std::uint32_t> pending{0};
  std::atomic<std::uint32_t> requests{0};
  std::atomic<std::uint32_t> idle{0};  // of `connections`, idle in a worker's pool
};

/// What the admin API shows of an upstream's transport.
struct upstream_stats {
  std::uint64_t retries = 0;
  std::uint64_t breaker_rejections = 0;  // requests refused by a circuit breaker
  std::uint32_t connections = 0;         // open to the upstream (HTTP/1.1 and HTTP/2)
  std::uint32_t idle = 0;                // of those, idle in a pool
  std::uint32_t pending = 0;             // connects under way
  std::uint32_t requests = 0;            // in flight
  bool circuit_open = false;             // a breaker is at its limit now
};

/// Stops the health checks and DNS discovery of a transport made by make_cluster_transport
/// (an upstream a reload dropped); requests it still carries are not affected.
void stop_background(transport& t);

/// The statistics of a transport made by make_cluster_transport; nullopt for another.
std::optional<upstream_stats> stats_of(const transport& t);

/// A transport for `cluster`'s endpoints with `retry` and `breakers`; `o` as for
/// make_http1_transport (its TLS, timeouts and pools apply to every endpoint). With
/// `resolve.refresh`, the endpoints named by host name are re-resolved in the background
/// (discovery.hpp) and the cluster's set follows.
std::shared_ptr<transport> make_cluster_transport(const http1_transport_options& o,
                                                  std::shared_ptr<lb::cluster> cluster,
                                                  const retry_policy& retry,
                                                  const breaker_options& breakers,
                                                  const health_check_options& health = {},
                                                  const resolve_options& resolve = {});

}  // namespace trafficcop::upstream
