// SPDX-License-Identifier: MIT
// Objects kept per thread for reuse, so that the steady state allocates nothing: what is taken
// keeps the storage (strings, maps, buffers) of its last use. The taker resets what it reads.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "core/thread_caches.hpp"

namespace trafficcop {

template <class T, std::size_t Max>
class recycler {
 public:
  /// An object given back earlier on this thread, or a new one.
  static std::unique_ptr<T> take() {
    auto& s = spare();
    if (s.empty()) return std::make_unique<T>();
    auto p = std::move(s.back());
    s.pop_back();
    return p;
  }
  /// Keeps `p` for a later take() on this thread, up to Max; frees it beyond.
  static void give(std::unique_ptr<T> p) {
    auto& s = spare();
    if (p && s.size() < Max) s.push_back(std::move(p));
  }

 private:
  struct spares {
    spares() { thread_caches::add(&trim); }
    std::vector<std::unique_ptr<T>> v;
  };
  static void trim(std::size_t keep) {
    auto& s = spare();
    if (s.size() > keep) s.resize(keep);
    s.shrink_to_fit();
  }
  static std::vector<std::unique_ptr<T>>& spare() {
    thread_local spares s;
    return s.v;
  }
};

}  // namespace trafficcop
