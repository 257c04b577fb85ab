// SPDX-License-Identifier: MIT
// Tests of the local GCRA limiter (issue 11): the arithmetic, the fields it answers, the key
// cap, and exactness when threads hammer one key.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "ratelimit/local.hpp"

namespace trafficcop::ratelimit {
namespace {

using namespace std::chrono_literals;

constexpr gcra ten_per_second{100ms, 5};  // 10/s, burst 5
const nanos t0 = 1000s;                   // an arbitrary clock origin

TEST(LocalLimiter, BurstThenRate) {
  local_limiter l(ten_per_second);
  for (std::uint32_t i = 0; i < 5; ++i) {
    auto d = l.acquire("k", t0);
    ASSERT_EQ(d.v, verdict::allow) << i;
    EXPECT_EQ(d.remaining, 4 - i);
    EXPECT_EQ(d.reset, 100ms * (i + 1));  // until the bucket is full again
  }
  auto d = l.acquire("k", t0);
  EXPECT_EQ(d.v, verdict::deny);
  EXPECT_EQ(d.remaining, 0u);
  EXPECT_EQ(d.retry_after, 100ms);
  EXPECT_EQ(d.reset, 500ms);
  // 30 ms later: 70 ms to wait; a denied request consumes nothing.
  d = l.acquire("k", t0 + 30ms);
  EXPECT_EQ(d.v, verdict::deny);
  EXPECT_EQ(d.retry_after, 70ms);
  EXPECT_EQ(l.acquire("k", t0 + 100ms).v, verdict::allow);
  EXPECT_EQ(l.acquire("k", t0 + 100ms).v, verdict::deny);
  // Idle for long: a full bucket again, never more than burst.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(l.acquire("k", t0 + 1h).v, verdict::allow);
  EXPECT_EQ(l.acquire("k", t0 + 1h).v, verdict::deny);
}

TEST(LocalLimiter, KeysAreSeparate) {
  local_limiter l(gcra{1s, 1});
  EXPECT_EQ(l.acquire("a", t0).v, verdict::allow);
  EXPECT_EQ(l.acquire("a", t0).v, verdict::deny);
  EXPECT_EQ(l.acquire("b", t0).v, verdict::allow);
  EXPECT_EQ(l.acquire("b", t0).v, verdict::deny);
  EXPECT_EQ(l.size(), 2u);
}

TEST(LocalLimiter, AtTheCapFullBucketsGoFirst) {
  // max_keys 64: one bucket per shard.
  local_limiter l(gcra{1s, 1}, local_limiter::shards);
  std::set<std::size_t> hit;
  for (int i = 0; i < 1000; ++i) hit.insert(local_limiter::shard_of("k" + std::to_string(i)));
  for (int i = 0; i < 1000; ++i) l.acquire("k" + std::to_string(i), t0);
  EXPECT_LE(l.size(), local_limiter::shards);
  // At one instant nothing is full again: each key after the first of its shard evicts one.
  EXPECT_EQ(l.evictions(), 1000 - hit.size());
  // A second later every bucket is full again: the first new key of each shard drops the old
  // one for free (no eviction); the rest evict as before.
  for (int i = 0; i < 1000; ++i) l.acquire("k" + std::to_string(i), t0 + 2s);
  EXPECT_EQ(l.evictions(), 2 * (1000 - hit.size()));
  EXPECT_LE(l.size(), local_limiter::shards);
}

TEST(LocalLimiter, EvictionDropsTheBucketNearestToFull) {
  local_limiter l(gcra{1s, 10}, 2 * local_limiter::shards);  // two keys per shard
  std::vector<std::string> same;                             // keys of one shard
  for (int n = 0; same.size() < 3; ++n) {
    auto k = "k" + std::to_string(n);
    if (local_limiter::shard_of(k) == local_limiter::shard_of("k0")) same.push_back(k);
  }
  for (int i = 0; i < 6; ++i) l.acquire(same[0], t0);         // 6 of 10 used: TAT t0 + 6s
  for (int i = 0; i < 2; ++i) l.acquire(same[1], t0);         // 2 of 10 used: TAT t0 + 2s
  EXPECT_EQ(l.acquire(same[2], t0 + 1ms).v, verdict::allow);  // the shard is full
  EXPECT_EQ(l.evictions(), 1u);
  // same[1], nearest to full, was forgotten: 10 again. same[0] kept its count: 4 left.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(l.acquire(same[1], t0 + 2ms).v, verdict::allow) << i;
  EXPECT_EQ(l.evictions(), 2u);  // same[1] came back to a full shard: same[2] went
  for (int i = 0; i < 4; ++i) EXPECT_EQ(l.acquire(same[0], t0 + 2ms).v, verdict::allow) << i;
  EXPECT_EQ(l.acquire(same[0], t0 + 2ms).v, verdict::deny);
}

/// N threads hammer one key through phases; between phases the clock moves on. Every phase
/// drains the bucket, so exactly burst + elapsed / interval requests are allowed, however the
/// threads interleave.
TEST(LocalLimiter, ExactUnderConcurrency) {
  constexpr int threads = 8, per_phase = 400, phases = 50;
  const gcra shape{10ms, 20};
  local_limiter l(shape);
  std::atomic<std::int64_t> clock{t0.count()};
  std::atomic<std::uint64_t> allowed{0}, denied{0};
  // Steps of 0..3.7 intervals (not multiples: the TAT carries the fractions).
  auto step = [](int phase) { return nanos(37ms) * (phase % 4) / 4 + nanos(3ms) * (phase % 3); };
  nanos elapsed{0};
  for (int p = 1; p < phases; ++p) elapsed += step(p);
  std::barrier sync(threads, [&, p = 0]() mutable noexcept {
    ++p;
    if (p < phases) clock.fetch_add(step(p).count());
  });
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i)
    pool.emplace_back([&] {
      for (int p = 0; p < phases; ++p) {
        for (int r = 0; r < per_phase; ++r) {
          auto d = l.acquire("hot", nanos(clock.load()));
          (d.v == verdict::allow ? allowed : denied).fetch_add(1);
        }
        sync.arrive_and_wait();
      }
    });
  for (auto& t : pool) t.join();
  EXPECT_EQ(allowed.load(), shape.burst + static_cast<std::uint64_t>(elapsed / shape.interval));
  EXPECT_EQ(allowed.load() + denied.load(), std::uint64_t{threads} * per_phase * phases);
}

/// Many keys from many threads: each key's count is exact on its own.
TEST(LocalLimiter, ExactPerKeyUnderConcurrency) {
  constexpr int threads = 4, keys = 300, rounds = 5;
  local_limiter l(gcra{1s, 3});
  std::vector<std::atomic<int>> allowed(keys);
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i)
    pool.emplace_back([&] {
      for (int r = 0; r < rounds; ++r)
        for (int k = 0; k < keys; ++k)
          if (l.acquire("key-" + std::to_string(k), t0).v == verdict::allow) allowed[k]++;
    });
  for (auto& t : pool) t.join();
  for (int k = 0; k < keys; ++k) EXPECT_EQ(allowed[k].load(), 3) << k;
}

}  // namespace
}  // namespace trafficcop::ratelimit
