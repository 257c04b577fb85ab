// SPDX-License-Identifier: MIT
// The seam of rate_limit.hpp in a build without the redis client (src/ratelimit/redis_store.cpp
// absent): global limits cannot be served, and say so when the config is loaded into the
// server. src/CMakeLists.txt picks this file or rate_limit_global.cpp.
#include <stdexcept>

#include "app/rate_limit.hpp"

namespace trafficcop::app {

std::shared_ptr<ratelimit::redis_store> make_redis_store(const config::redis&) {
  throw std::runtime_error(
      "rate_limits: scope: global needs the redis client, and this build has none "
      "(src/ratelimit/redis_store.cpp)");
}

boost::asio::awaitable<ratelimit::decision> acquire_global(ratelimit::redis_store&, std::string,
                                                           ratelimit::gcra) {
  co_return ratelimit::decision{};  // never reached: no store is ever made
}

}  // namespace trafficcop::app
