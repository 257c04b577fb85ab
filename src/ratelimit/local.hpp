// SPDX-License-Identifier: MIT
// Local rate limits (issue 11): GCRA buckets in this process, shared by all its workers.
//
// Concurrency: the buckets of a limit are spread over 64 shards by the hash of their key; a
// request takes its shard's mutex for one hash lookup and a few additions (tens of
// nanoseconds), never a lock shared by all keys. Why a short per-shard lock and not a CAS on
// an atomic TAT per bucket: the map itself must insert new keys and drop old ones, and a CAS
// loop would still need the map to be safe to read while another thread erases from it (the
// standard has no concurrent hash map; boost::concurrent_flat_map arrived in Boost 1.83, we
// have 1.81). With the lock, the decision and the map's upkeep are one critical section and
// exact by construction; one hot key costs one contended mutex, as a hot atomic would cost
// one contended cache line. Workers are few (one per core), shards are 64: two workers meet
// on a shard only when their keys collide there.
//
// Memory: a bucket is one time stamp (the TAT). A bucket whose TAT is in the past is the same
// as a full bucket, i.e. as no bucket at all, so it may be dropped at any time. Each shard holds
// at most max_keys / 64 buckets (rounded up). When a new key arrives at a full shard, the shard
// first drops every bucket whose TAT has passed; if none has, it drops the bucket closest to
// full (smallest TAT): that key forgets what it consumed, and may get up to that many requests
// through again — the least damage that keeps memory bounded. New keys are never refused for
// lack of room (refusing would let a flood of keys lock out every new client). Such evictions
// are counted (evictions()).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "ratelimit/limit.hpp"

namespace trafficcop::ratelimit {

class local_limiter {
 public:
  static constexpr std::size_t shards = 64;
  static constexpr std::size_t default_max_keys = 100'000;

  /// `shape.interval` > 0 and `shape.burst` ≥ 1 (the loader checked the config).
  explicit local_limiter(gcra shape, std::size_t max_keys = default_max_keys);
  ~local_limiter();
  local_limiter(const local_limiter&) = delete;
  local_limiter& operator=(const local_limiter&) = delete;

  /// One request against bucket `key` at time `now` (any monotonic clock, the same for every
  /// call: the caller's, so that tests control it). Thread-safe; never allocates for a key it
  /// already holds.
  decision acquire(std::string_view key, nanos now);

  /// The monotonic clock the server uses for `now`.
  static nanos clock() noexcept;
  /// The shard of `key`, in [0, shards).
  static std::size_t shard_of(std::string_view key) noexcept;

  const gcra& shape() const noexcept { return shape_; }
  /// Buckets held now (all shards; approximate while requests run).
  std::size_t size() const;
  /// Buckets dropped while not yet full, because their shard was at its cap.
  std::uint64_t evictions() const noexcept { return evictions_.load(std::memory_order_relaxed); }

 private:
  struct shard;
  gcra shape_;
  std::size_t per_shard_;
  std::unique_ptr<shard[]> shards_;
  std::atomic<std::uint64_t> evictions_{0};
};

}  // namespace trafficcop::ratelimit
