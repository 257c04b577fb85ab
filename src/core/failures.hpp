// SPDX-License-Identifier: MIT
// Spawned coroutines that end by an exception: each is logged and counted, never dropped
// (no asio::detached, no empty completion handler; issue 12). The data plane uses error
// codes, so a count above 0 is a bug to look at: /metrics shows it as
// trafficcop_coroutine_failures_total.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <string_view>

#include "core/log.hpp"

namespace trafficcop {

namespace detail {
inline std::atomic<std::uint64_t> coroutine_failures_count{0};  // rare: one shared cell
}  // namespace detail

/// Spawned coroutines that ended by an exception since start, all threads.
inline std::uint64_t coroutine_failures() noexcept {
  return detail::coroutine_failures_count.load(std::memory_order_relaxed);
}

/// The completion of the spawned coroutine `what`: an exception is counted and logged (error,
/// with its what()); a null `e` (the coroutine returned) does nothing.
inline void note_coroutine_failure(std::string_view what, std::exception_ptr e) noexcept {
  if (!e) return;
  detail::coroutine_failures_count.fetch_add(1, std::memory_order_relaxed);
  try {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      log::error("{} failed: {}", what, x.what());
    } catch (...) {
      log::error("{} failed: an exception that is not a std::exception", what);
    }
  } catch (...) {  // the logger itself threw (out of memory): the count stands
  }
}

/// A co_spawn completion token that only counts and logs a failure, in place of
/// asio::detached: `co_spawn(ex, f(), log_failure{"what"})`.
struct log_failure {
  const char* what;
  void operator()(std::exception_ptr e) const noexcept { note_coroutine_failure(what, e); }
};

}  // namespace trafficcop
