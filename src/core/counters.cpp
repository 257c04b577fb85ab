// SPDX-License-Identifier: MIT
#include "core/counters.hpp"

namespace trafficcop::counters {

std::size_t thread_slot() noexcept {
  static std::atomic<std::size_t> next{0};
  thread_local std::size_t slot = [] {
    auto s = next.fetch_add(1, std::memory_order_relaxed);
    return s < max_slots ? s : max_slots - 1;
  }();
  return slot;
}

}  // namespace trafficcop::counters
