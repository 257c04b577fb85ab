// SPDX-License-Identifier: MIT
// An upstream of many endpoints: the endpoint set, their health, and the choice of one endpoint
// per attempt (load balancing).
//
// A cluster is shared by every worker. What changes while it serves is per endpoint and
// atomic (ejection by passive outlier detection, relaxed loads on the request path); what a
// policy keeps between picks (round-robin weights, in-flight counts, latency averages, the
// random generator) is per worker, found through a thread-local table, so workers share no lock
// and no written cache line on the request path. The ring of ring_hash is built once and shared
// read-only.
//
// See docs/config.md (upstreams[].endpoints, load_balancing, outlier_detection) for the
// algorithms and their parameters.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "trafficcop/http.hpp"

namespace trafficcop::lb {

using clock = std::chrono::steady_clock;

enum class policy { round_robin, least_request, peak_ewma, ring_hash, random };

/// What ring_hash hashes.
struct hash_on {
  enum class kind { client_ip, header, cookie, path } what = kind::client_ip;
  std::string name;  // header or cookie name
};

/// Passive health: an endpoint that fails `consecutive_failures` times in a row is ejected for
/// `ejection_time`, doubled on each repeat ejection up to `max_ejection_time`; never more than
/// `max_ejection_percent` of the endpoints at once.
struct outlier_options {
  std::uint32_t consecutive_failures = 5;  // 0 = off
  std::chrono::milliseconds ejection_time{30'000};
  std::chrono::milliseconds max_ejection_time{300'000};
  std::uint32_t max_ejection_percent = 50;
};

struct endpoint_options {
  std::string host;  // name or IP literal, no brackets
  std::uint16_t port = 80;
  std::uint32_t weight = 1;
};

struct cluster_options {
  std::string name;  // the upstream's name, for logs
  std::vector<endpoint_options> endpoints;
  policy lb = policy::round_robin;
  struct hash_on hash;
  outlier_options outlier;
  /// Below this percentage of available endpoints, all are used (Envoy's panic mode); 0 = off.
  std::uint32_t panic_threshold = 0;
};

/// One endpoint; its health fields are shared by the workers.
class endpoint {
 public:
  endpoint(const endpoint_options& o, std::size_t index);
  const std::string& host() const noexcept { return host_; }
  std::uint16_t port() const noexcept { return port_; }
  std::uint32_t weight() const noexcept { return weight_; }
  /// "host:port" ("[v6]:port"): its name in logs and the Host authority sent to it.
  const std::string& authority() const noexcept { return authority_; }
  std::size_t index() const noexcept { return index_; }

  /// False while ejected, or while active health checks say it is down.
  bool available(clock::time_point now) const noexcept {
    return healthy_.load(std::memory_order_relaxed) &&
           ejected_until_.load(std::memory_order_relaxed) <= now.time_since_epoch().count();
  }
  /// Active health checks publish their verdict here (any thread).
  void set_healthy(bool up) noexcept { healthy_.store(up, std::memory_order_relaxed); }
  bool healthy() const noexcept { return healthy_.load(std::memory_order_relaxed); }

 private:
  friend class cluster;
  std::string host_;
  std::uint16_t port_;
  std::uint32_t weight_;
  std::string authority_;
  std::size_t index_;
  std::atomic<bool> healthy_{true};             // active health checks (up until proven down)
  std::atomic<std::int64_t> ejected_until_{0};  // clock ticks; 0 = never ejected
  std::atomic<std::uint32_t> failures_{0};      // consecutive
  std::atomic<std::uint32_t> ejections_{0};     // for the doubling
  std::atomic<std::int64_t> back_at_{0};        // clock ticks: when its last ejection ended
};

/// What a pick may use to choose: the request (ring_hash keys) and the endpoints an earlier
/// attempt of the same request went to (a retry goes elsewhere when it can).
struct pick_input {
  const request* in = nullptr;
  std::uint64_t tried = 0;  // bit i: endpoint i was tried (the first 64 endpoints)
};

/// The outcome of one attempt, as the balancer and outlier detection learn it.
struct attempt_result {
  bool failure = false;                 // connect failure, reset, or 502/503/504 from the endpoint
  std::chrono::nanoseconds latency{0};  // to the response head (peak_ewma)
};

class cluster {
 public:
  explicit cluster(cluster_options o);
  ~cluster();
  cluster(const cluster&) = delete;
  cluster& operator=(const cluster&) = delete;

  const cluster_options& options() const noexcept { return o_; }
  const std::vector<std::unique_ptr<endpoint>>& endpoints() const noexcept { return eps_; }

  /// An endpoint for the next attempt, or null when none is available (no healthy upstream:
  /// 503). Counts the attempt in flight on this worker until done() is called with the result.
  endpoint* pick(const pick_input& p);
  void done(endpoint& e, const attempt_result& r);

  /// The hash ring_hash looks up for `in`; nullopt when the request has no such key (no such
  /// header or cookie): it then goes to a random endpoint. Exposed for tests.
  std::optional<std::uint64_t> key_of(const request& in) const;
  /// ring_hash: the endpoint owning `key` among those for which `usable(i)` holds.
  template <class Usable>
  endpoint* ring_owner(std::uint64_t key, Usable usable) const;

  /// Per-worker policy state (in_flight, weights, averages), defined in cluster.cpp.
  struct worker_state;

 private:
  worker_state& local();
  endpoint* pick_round_robin(worker_state& w, clock::time_point now, std::uint64_t avoid, bool all);
  endpoint* pick_p2c(worker_state& w, clock::time_point now, std::uint64_t avoid, bool all);
  endpoint* pick_random(worker_state& w, clock::time_point now, std::uint64_t avoid, bool all);
  endpoint* pick_ring(worker_state& w, const pick_input& p, clock::time_point now, bool all);
  void record_failure(endpoint& e, clock::time_point now);
  std::size_t ejected_now(clock::time_point now) const;

  cluster_options o_;
  std::vector<std::unique_ptr<endpoint>> eps_;
  std::uint32_t total_weight_ = 0;
  bool equal_weights_ = true;
  struct ring_point {
    std::uint64_t hash;
    std::uint32_t endpoint;
  };
  std::vector<ring_point> ring_;  // ring_hash only; sorted by hash
  std::uint64_t id_ = 0;          // unique per cluster: the key of its per-worker state
};

/// 64-bit FNV-1a then a final mix: stable across runs and machines (ring positions must not
/// move between restarts).
std::uint64_t stable_hash(std::string_view s) noexcept;

template <class Usable>
endpoint* cluster::ring_owner(std::uint64_t key, Usable usable) const {
  if (ring_.empty()) return nullptr;
  auto it = std::lower_bound(ring_.begin(), ring_.end(), key,
                             [](const ring_point& p, std::uint64_t k) { return p.hash < k; });
  for (std::size_t n = 0; n < ring_.size(); ++n, ++it) {
    if (it == ring_.end()) it = ring_.begin();
    if (usable(it->endpoint)) return eps_[it->endpoint].get();
  }
  return nullptr;
}

}  // namespace trafficcop::lb
