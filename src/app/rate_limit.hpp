// SPDX-License-Identifier: MIT
// The rate limit middleware of the binary (issue 11, docs/config.md#rate_limits): a route's
// limits run in the order the route lists them, before its handler.
//
// Local limits (ratelimit/local.hpp) are decided synchronously: the middleware is a plain
// function that returns the next handler's awaitable when they allow, so a request that only
// meets local limits allocates no coroutine frame for them (one is made only to write a 429).
// A global limit co_awaits the redis store (ratelimit/redis_store.hpp).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "app/metrics.hpp"
#include "config/config.hpp"
#include "ratelimit/limit.hpp"
#include "ratelimit/local.hpp"
#include "trafficcop/http.hpp"

namespace trafficcop::ratelimit {
class redis_store;
}

namespace trafficcop::app {

/// One config's rate limits, by their index in config::rate_limits. Limiters and the redis
/// store live as long as a generation that uses them; a reload keeps those configured as before
/// (their buckets and connections go on).
struct rate_limit_set {
  struct limit {
    config::rate_limit cfg;
    ratelimit::gcra shape;
    std::shared_ptr<ratelimit::local_limiter> local;  // scope: local
    std::string policy;                               // RateLimit-Policy: "name";q=N;w=S
    std::string key_prefix;  // every bucket's name starts with it: name + 0x1f
    counters::per_thread<ratelimit_cells>* cells = nullptr;  // null without metrics
  };
  std::vector<limit> limits;
  std::optional<config::redis> redis;             // what `store` was made from
  std::shared_ptr<ratelimit::redis_store> store;  // when a limit is global
};

/// The limits of `cfg`, reusing `before`'s limiters and store where their config is the same.
/// Counts decisions in `m` when given. Throws std::runtime_error when the redis store cannot
/// be made (its password cannot be read, or this build has no redis client).
std::shared_ptr<const rate_limit_set> build_rate_limits(const config::config& cfg, metrics* m,
                                                        const rate_limit_set* before);

/// What a route's limits key on besides the request: its name (or index) and upstream.
struct route_identity {
  std::string route;
  std::string upstream;
};

/// Wraps `next` with route `r`'s limits (none: `next` itself).
handler with_rate_limits(handler next, std::shared_ptr<const rate_limit_set> set,
                         const config::route& r, route_identity id);

}  // namespace trafficcop::app
