// SPDX-License-Identifier: MIT
// The per-thread caches (recycler, buffer_pool) of a worker, trimmed together after a burst
// (issue 14.6): a cache keeps what the busiest moment needed, and without a trim a worker
// that once held 1,000 slow readers would keep their buffers for good.
#pragma once

#include <cstddef>
#include <vector>

namespace trafficcop {

class thread_caches {
 public:
  using trim_fn = void (*)(std::size_t keep);
  /// Called once per cache and thread, when the cache is first used on it.
  static void add(trim_fn f) { list().push_back(f); }
  /// Drops all but `keep` spare objects of every cache of this thread.
  static void trim(std::size_t keep) {
    for (auto f : list()) f(keep);
  }

 private:
  static std::vector<trim_fn>& list() {
    thread_local std::vector<trim_fn> l;
    return l;
  }
};

}  // namespace trafficcop
