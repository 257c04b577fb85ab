// SPDX-License-Identifier: MIT
// Fixed-size copy buffers (spec 40: 32 KiB) recycled per thread, so streaming a body costs no
// allocation once a worker is warm.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "core/thread_caches.hpp"

namespace trafficcop {

class buffer_pool {
 public:
  static constexpr std::size_t buffer_size = 32 * 1024;

  class handle {
   public:
    explicit handle(std::unique_ptr<char[]> p) : p_(std::move(p)) {}
    handle(handle&&) noexcept = default;
    handle& operator=(handle&&) noexcept = default;
    ~handle() { buffer_pool::put(std::move(p_)); }
    char* data() const noexcept { return p_.get(); }
    static constexpr std::size_t size() noexcept { return buffer_size; }

   private:
    std::unique_ptr<char[]> p_;
  };

  static handle get() {
    auto& free = list();
    if (free.empty()) return handle(std::make_unique_for_overwrite<char[]>(buffer_size));
    auto p = std::move(free.back());
    free.pop_back();
    return handle(std::move(p));
  }

 private:
  static constexpr std::size_t max_free = 256;  // per thread: 8 MiB at most
  struct spares {
    spares() { thread_caches::add(&trim); }
    std::vector<std::unique_ptr<char[]>> v;
  };
  static void trim(std::size_t keep) {
    auto& free = list();
    if (free.size() > keep) free.resize(keep);
    free.shrink_to_fit();
  }
  static std::vector<std::unique_ptr<char[]>>& list() {
    thread_local spares free;
    return free.v;
  }
  static void put(std::unique_ptr<char[]> p) {
    if (!p) return;
    auto& free = list();
    if (free.size() < max_free) free.push_back(std::move(p));
  }
};

}  // namespace trafficcop
