// SPDX-License-Identifier: MIT
// spdlog setup: one thread-safe stderr logger, so stdout stays free for access logs.
#include "core/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

namespace trafficcop::log {

void init(const std::string& level) {
  auto logger = spdlog::get("trafficcop");
  if (!logger) logger = spdlog::stderr_color_mt("trafficcop");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace trafficcop::log
