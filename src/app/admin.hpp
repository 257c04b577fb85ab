// SPDX-License-Identifier: MIT
// The admin API (docs/operations.md): a listener of its own, apart from the traffic, that
// answers /metrics, /healthz, /ready, /config, /upstreams, and POST /reload and /drain.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "app/metrics.hpp"
#include "trafficcop/http.hpp"
#include "trafficcop/ip_network.hpp"
#include "trafficcop/server.hpp"

namespace trafficcop::app {

/// What the admin API shows and does. The proxy's main thread fills it; the admin listener's
/// thread reads it under `mu` (a reload swaps the live parts).
struct admin_state {
  std::mutex mu;
  std::shared_ptr<metrics> m;
  std::vector<upstream_runtime> upstreams;
  std::string config_json;  // the live config as JSON, secrets redacted
  const server* srv = nullptr;
  std::vector<std::string> listeners;  // addresses, by index
  process_counters process;
  std::string version;
  std::vector<ip_network> allow;  // empty: any client

  std::atomic<bool> ready{false};     // serving with a live config
  std::atomic<bool> draining{false};  // stopping: /ready answers 503
  /// POST /reload: "" once the new config is live, else why not (every error, one a line).
  std::function<std::string()> reload;
  /// POST /drain: starts the graceful stop (as SIGTERM).
  std::function<void()> drain;
};

handler admin_handler(std::shared_ptr<admin_state> s);

/// YAML text → JSON, with the values of keys that name secrets or key files replaced by
/// "<redacted>" (key_file, and any key containing password, secret or token).
std::string config_as_json(const std::string& yaml);

}  // namespace trafficcop::app
