// SPDX-License-Identifier: MIT
// Service discovery by DNS: an upstream's endpoints named by host name are resolved again
// every `refresh`, each A and AAAA record becoming an endpoint of the cluster (connected to by
// address, still named by host for Host, SNI and certificates). It runs on the control thread,
// never a worker: resolving never blocks a request. A name that fails to resolve keeps the
// addresses it had (a DNS outage must not empty an upstream); one never resolved stays a name
// that the connector resolves per connection, as without discovery.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "lb/cluster.hpp"

namespace trafficcop::upstream {

struct resolve_options {
  std::chrono::milliseconds refresh{0};  // 0 = off: names are resolved per connection
  /// DNS servers to ask ("ip" or "ip:port", "[v6]:port"), in order; empty = the system's
  /// resolver (getaddrinfo: /etc/hosts, then /etc/resolv.conf).
  std::vector<std::string> servers;
  std::chrono::milliseconds timeout{2000};  // per server and query
};

/// The addresses of `name` (A, then AAAA records), or an error.
struct resolved {
  std::vector<std::string> addresses;  // IP literals, sorted, no duplicates
  std::string error;                   // set when the name could not be resolved
};
boost::asio::awaitable<resolved> resolve_name(const std::string& name, const resolve_options& o);

/// Resolves `configured`'s names now and then every refresh (±10%), publishing each new
/// endpoint set to `c`; `on_change` hears which endpoints joined and left (health checks),
/// `first_round` is called once after the first round. Ends when `alive` returns false.
boost::asio::awaitable<void> discovery_loop(
    std::shared_ptr<lb::cluster> c, std::vector<lb::endpoint_options> configured, resolve_options o,
    std::function<void(const lb::cluster::change&)> on_change, std::function<bool()> alive,
    std::function<void()> first_round);

}  // namespace trafficcop::upstream
