// SPDX-License-Identifier: MIT
// Counters the request path bumps and a scraper sums: one block of cells per thread, so that
// workers never write the same cache line, and no lock anywhere.
//
// per_thread<T> holds a T per thread slot, made on the slot's first use. A thread takes a slot
// the first time it counts (thread_slot()); threads beyond `max_slots` share the last one. Cells
// are relaxed atomics bumped with fetch_add: uncontended on a thread's own line (a few cycles),
// and still exact when threads share a slot. A reader (the admin thread) sums the slots; it sees
// each cell whole, and the sum is as fresh as the last increments it raced with.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace trafficcop::counters {

inline constexpr std::size_t max_slots = 64;

/// This thread's slot in [0, max_slots).
std::size_t thread_slot() noexcept;

/// One counter cell.
struct cell {
  std::atomic<std::uint64_t> v{0};
  void add(std::uint64_t n = 1) noexcept { v.fetch_add(n, std::memory_order_relaxed); }
  void sub(std::uint64_t n = 1) noexcept { v.fetch_sub(n, std::memory_order_relaxed); }
  std::uint64_t get() const noexcept { return v.load(std::memory_order_relaxed); }
};

/// Counts by HTTP status: a few slots claimed by the first codes seen (a thread's own block
/// has one writer, but a shared slot may race: a claim is a compare-exchange), then "other".
struct by_status {
  static constexpr std::size_t n = 8;
  std::array<std::atomic<std::uint16_t>, n> code{};
  std::array<cell, n> count;
  cell other;  // codes beyond the n slots (rare: a route sees few distinct statuses)

  void add(int status) noexcept {
    auto s = static_cast<std::uint16_t>(status);
    for (std::size_t i = 0; i < n; ++i) {
      auto c = code[i].load(std::memory_order_relaxed);
      if (c == 0 && code[i].compare_exchange_strong(c, s, std::memory_order_relaxed)) c = s;
      if (c == s) return count[i].add();
    }
    other.add();
  }
  template <class F>  // f(status, count) per slot in use; status 0 = other
  void each(F f) const {
    for (std::size_t i = 0; i < n; ++i)
      if (auto c = code[i].load(std::memory_order_relaxed)) f(c, count[i].get());
    if (auto o = other.get()) f(0, o);
  }
};

template <class T>
class per_thread {
 public:
  per_thread() = default;
  ~per_thread() {
    for (auto& p : slots_) delete p.load(std::memory_order_relaxed);
  }
  per_thread(const per_thread&) = delete;
  per_thread& operator=(const per_thread&) = delete;

  /// This thread's block (made on first use).
  T& local() {
    auto& p = slots_[thread_slot()];
    if (T* t = p.load(std::memory_order_acquire)) return *t;
    auto* fresh = new T();
    T* expected = nullptr;
    if (p.compare_exchange_strong(expected, fresh, std::memory_order_acq_rel)) return *fresh;
    delete fresh;  // another thread of a shared slot made it first
    return *expected;
  }
  /// f(const T&) for every block made so far.
  template <class F>
  void each(F f) const {
    for (const auto& p : slots_)
      if (const T* t = p.load(std::memory_order_acquire)) f(*t);
  }

 private:
  alignas(64) std::array<std::atomic<T*>, max_slots> slots_{};
};

}  // namespace trafficcop::counters
