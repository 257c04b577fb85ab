// SPDX-License-Identifier: MIT
// Live reload of the binary's config: the handler chain of one config is a generation, and the
// server runs whichever generation is live. A reload builds the next one beside it and swaps
// it in; a request runs to its end on the generation it started with (upgraded tunnels, SSE,
// gRPC streams included), and the old generation goes when its last request does.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "app/metrics.hpp"
#include "config/config.hpp"
#include "trafficcop/http.hpp"

namespace trafficcop::app {

class access_log_sink;
struct rate_limit_set;

/// One config's handler chain (router, proxies, access log) and its upstreams.
struct generation {
  config::config cfg;
  handler h;
  std::vector<upstream_runtime> upstreams;
  std::shared_ptr<const rate_limit_set> rate_limits;  // rate_limit.hpp
  std::shared_ptr<access_log_sink> sink;              // null when the access log is off
};

class live_config {
 public:
  explicit live_config(std::shared_ptr<const generation> g) : current_(std::move(g)) {}
  live_config(const live_config&) = delete;
  live_config& operator=(const live_config&) = delete;

  /// The handler for the server (it must not outlive this object). Each worker pins the live
  /// generation in a holder of its own, so that requests share no reference count across
  /// workers; a worker looks for a new generation only when the version moved.
  handler entry();

  /// Makes `g` live for requests that start from now on.
  void swap(std::shared_ptr<const generation> g);
  std::shared_ptr<const generation> current() const;

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const generation> current_;
  std::atomic<std::uint64_t> version_{1};
};

/// The config keys a running server cannot take without a restart (workers, limits,
/// timeouts but drain_on_reload, the settings of a listener whose address is kept...): "" if `a`
/// and `b` agree on them, else which differ. Listeners added or removed are taken live.
std::string needs_restart(const config::config& a, const config::config& b);

}  // namespace trafficcop::app
