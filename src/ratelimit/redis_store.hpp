// SPDX-License-Identifier: MIT
// The store of global rate limits: GCRA run inside redis, so that every trafficcop instance
// sharing the redis server shares the buckets.
//
// One redis_store per `redis:` block of a config, shared by all workers; acquire() may be
// called from any worker's coroutine. Each worker talks to redis over its own connection on its
// own event loop (made on first use), pipelining the requests of that worker; no lock is taken
// on the request path.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <string_view>

#include "config/config.hpp"
#include "ratelimit/limit.hpp"

namespace trafficcop::ratelimit {

class redis_store {
 public:
  /// Reads the password (password_file or password_env) now. Throws std::runtime_error naming
  /// what failed ("redis.password_file: cannot read /x: No such file or directory").
  explicit redis_store(const config::redis& cfg);
  ~redis_store();
  redis_store(const redis_store&) = delete;
  redis_store& operator=(const redis_store&) = delete;

  /// One request against the bucket `key` (the caller's full key: limit name and key values).
  /// At most one redis round trip. verdict::error when redis is down, restarting, answers an
  /// error, or is slower than cfg.timeout; never throws, never waits longer than the timeout.
  boost::asio::awaitable<decision> acquire(std::string_view key, gcra shape);

  /// Failures so far (all workers): timeouts, refused or broken connections, error replies.
  std::uint64_t errors() const noexcept;

  const config::redis& settings() const noexcept;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace trafficcop::ratelimit
