// SPDX-License-Identifier: MIT
// An upstream of many endpoints: the endpoint set, their health, and the choice of one endpoint
// per attempt (load balancing).
//
// A cluster is shared by every worker. Its endpoints form an immutable set (with ring_hash's
// ring) that service discovery replaces as a whole (update(), off the workers); each worker
// holds the set it uses and swaps it, under a lock taken only then, when the cluster's version
// moved. What changes while a set serves is per endpoint and atomic (ejection by passive
// outlier detection, relaxed loads on the request path); what a policy keeps between picks
// (round-robin weights, in-flight counts, latency averages, the random generator) is per
// worker, found through a thread-local table, so workers share no lock and no written cache
// line on the request path. An endpoint that stays across an update keeps its health and its
// per-worker state; one that leaves is marked retired, and lives on while a worker still has
// an attempt on it.
//
// See docs/config.md (upstreams[].endpoints, load_balancing, outlier_detection) for the
// algorithms and their parameters.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/counters.hpp"
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
  std::string host;  // name or IP literal, no brackets: Host, SNI and the certificate's name
  std::uint16_t port = 80;
  std::uint32_t weight = 1;
  /// The IP literal to connect to, when service discovery resolved `host`; empty: `host`
  /// itself (a name is then resolved on each new connection).
  std::string address = {};
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

/// What an endpoint did, per thread (metrics and the admin API; counters.hpp).
struct alignas(64) endpoint_stats {
  counters::by_status responses;    // attempts answered, by the endpoint's status
  counters::cell connect_failures;  // attempts that never connected (TLS included)
  counters::cell errors;            // attempts that failed after connecting (reset, timeout)
  counters::cell picks;             // attempts begun (a pick) ...
  counters::cell dones;             // ... and ended: picks - dones is in flight
  std::atomic<double> ewma_ns{0};   // peak_ewma: this thread's latency average
};

/// One endpoint; its health fields are shared by the workers.
class endpoint {
 public:
  endpoint(const endpoint_options& o, std::size_t index);
  const std::string& host() const noexcept { return host_; }
  /// Where to connect: the resolved address, or empty for host().
  const std::string& address() const noexcept { return address_; }
  std::uint16_t port() const noexcept { return port_; }
  std::uint32_t weight() const noexcept { return weight_; }
  /// "address:port" ("[v6]:port"), or "host:port" when unresolved: its name in logs.
  const std::string& authority() const noexcept { return authority_; }
  /// Its position in the newest set that holds it (a hint: sets change under a worker).
  std::size_t index() const noexcept { return index_.load(std::memory_order_relaxed); }
  /// Set once it left the cluster's endpoint set: its connections are drained, its health
  /// checker stops. Shared so that a pooled connection can watch it without owning the endpoint.
  bool retired() const noexcept { return retired_->load(std::memory_order_relaxed); }
  const std::shared_ptr<const std::atomic<bool>>& retired_flag() const noexcept {
    return retired_view_;
  }

  /// False while ejected, or while active health checks say it is down.
  bool available(clock::time_point now) const noexcept {
    return healthy_.load(std::memory_order_relaxed) &&
           ejected_until_.load(std::memory_order_relaxed) <= now.time_since_epoch().count();
  }
  /// Ejected by passive outlier detection now.
  bool ejected(clock::time_point now) const noexcept {
    return ejected_until_.load(std::memory_order_relaxed) > now.time_since_epoch().count();
  }
  counters::per_thread<endpoint_stats>& stats() noexcept { return stats_; }
  const counters::per_thread<endpoint_stats>& stats() const noexcept { return stats_; }
  /// Active health checks publish their verdict here (any thread).
  void set_healthy(bool up) noexcept { healthy_.store(up, std::memory_order_relaxed); }
  bool healthy() const noexcept { return healthy_.load(std::memory_order_relaxed); }

 private:
  friend class cluster;
  std::string host_;
  std::string address_;
  std::uint16_t port_;
  std::uint32_t weight_;
  std::string authority_;
  std::atomic<std::size_t> index_;
  std::shared_ptr<std::atomic<bool>> retired_ = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<const std::atomic<bool>> retired_view_ = retired_;  // what retired_flag() lends
  counters::per_thread<endpoint_stats> stats_;
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

  /// The endpoints now (a snapshot: an update() does not change it).
  std::vector<std::shared_ptr<endpoint>> endpoints() const;

  /// Replaces the endpoint set (service discovery; any thread, never a worker's request
  /// path). An endpoint equal in host, address, port and weight to a current one is kept with
  /// its health; the others are new. Returns those that joined and those that left (now
  /// retired). Workers pick from the new set at their next pick.
  struct change {
    std::vector<std::shared_ptr<endpoint>> added, removed;
  };
  change update(const std::vector<endpoint_options>& endpoints);

  /// An endpoint for the next attempt, or null when none is available (no healthy upstream:
  /// 503). Counts the attempt in flight on this worker until done() is called with the result.
  endpoint* pick(const pick_input& p);
  void done(endpoint& e, const attempt_result& r);

  /// The hash ring_hash looks up for `in`; nullopt when the request has no such key (no such
  /// header or cookie): it then goes to a random endpoint. Exposed for tests.
  std::optional<std::uint64_t> key_of(const request& in) const;
  /// Per-worker policy state (in_flight, weights, averages), defined in cluster.cpp.
  struct worker_state;

  /// One generation of the endpoints, immutable once published.
  struct endpoint_set {
    std::vector<std::shared_ptr<endpoint>> eps;
    std::uint32_t total_weight = 0;
    bool equal_weights = true;
    struct ring_point {
      std::uint64_t hash;
      std::uint32_t endpoint;
    };
    std::vector<ring_point> ring;  // ring_hash only; sorted by hash

    /// ring_hash: the endpoint owning `key` among those for which `usable(i)` holds.
    template <class Usable>
    endpoint* ring_owner(std::uint64_t key, Usable usable) const;
  };

 private:
  worker_state& local();
  void sync(worker_state& w);
  std::shared_ptr<const endpoint_set> make_set(std::vector<std::shared_ptr<endpoint>> eps) const;
  endpoint* pick_round_robin(worker_state& w, clock::time_point now, std::uint64_t avoid, bool all);
  endpoint* pick_p2c(worker_state& w, clock::time_point now, std::uint64_t avoid, bool all);
  endpoint* pick_random(worker_state& w, clock::time_point now, std::uint64_t avoid, bool all);
  endpoint* pick_ring(worker_state& w, const pick_input& p, clock::time_point now, bool all);
  void record_failure(const endpoint_set& s, endpoint& e, clock::time_point now);
  static std::size_t ejected_now(const endpoint_set& s, clock::time_point now);

  cluster_options o_;
  mutable std::mutex mu_;  // guards set_ (workers take it only on a new version)
  std::shared_ptr<const endpoint_set> set_;
  std::atomic<std::uint64_t> version_{1};  // bumped by update()
  std::uint64_t id_ = 0;                   // unique per cluster: the key of its per-worker state
};

/// 64-bit FNV-1a then a final mix: stable across runs and machines (ring positions must not
/// move between restarts).
std::uint64_t stable_hash(std::string_view s) noexcept;

template <class Usable>
endpoint* cluster::endpoint_set::ring_owner(std::uint64_t key, Usable usable) const {
  if (ring.empty()) return nullptr;
  auto it = std::lower_bound(ring.begin(), ring.end(), key,
                             [](const ring_point& p, std::uint64_t k) { return p.hash < k; });
  for (std::size_t n = 0; n < ring.size(); ++n, ++it) {
    if (it == ring.end()) it = ring.begin();
    if (usable(it->endpoint)) return eps[it->endpoint].get();
  }
  return nullptr;
}

}  // namespace trafficcop::lb
