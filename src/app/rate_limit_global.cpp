// SPDX-License-Identifier: MIT
// The seam of rate_limit.hpp to the redis client: the only file that calls redis_store. Built
// when src/ratelimit/redis_store.cpp exists (src/CMakeLists.txt); rate_limit_no_global.cpp
// stands in otherwise.
#include "app/rate_limit.hpp"
#include "ratelimit/redis_store.hpp"

namespace trafficcop::app {

std::shared_ptr<ratelimit::redis_store> make_redis_store(const config::redis& cfg) {
  return std::make_shared<ratelimit::redis_store>(cfg);  // throws naming what failed
}

boost::asio::awaitable<ratelimit::decision> acquire_global(ratelimit::redis_store& store,
                                                           std::string key, ratelimit::gcra shape) {
  // `key` lives in this frame until the store has answered.
  co_return co_await store.acquire(key, shape);
}

}  // namespace trafficcop::app
