// SPDX-License-Identifier: MIT
// Diagnostic logging (stderr, through spdlog). Access logs are separate: app/access_log.
#pragma once

#include <spdlog/spdlog.h>

namespace trafficcop::log {

/// Sends diagnostics to stderr at `level` ("debug", "info", "warn", "error"). Thread-safe.
void init(const std::string& level = "info");

template <class... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
  spdlog::debug(f, std::forward<Args>(args)...);
}
template <class... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
  spdlog::info(f, std::forward<Args>(args)...);
}
template <class... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
  spdlog::warn(f, std::forward<Args>(args)...);
}
template <class... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
  spdlog::error(f, std::forward<Args>(args)...);
}

}  // namespace trafficcop::log
