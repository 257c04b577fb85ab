// SPDX-License-Identifier: MIT
// Local rate limits: GCRA over a sharded map of TATs (local.hpp says why so).
#include "ratelimit/local.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

namespace trafficcop::ratelimit {
namespace {

/// A key with its hash, computed once per request for both the shard and the map.
struct hashed {
  std::string_view s;
  std::size_t h;
};

std::size_t hash_of(std::string_view s) noexcept { return std::hash<std::string_view>{}(s); }

/// Heterogeneous lookup: find() by `hashed`, no std::string made for a key already held, and
/// no second pass over its bytes.
struct key_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return hash_of(s); }
  std::size_t operator()(const hashed& k) const noexcept { return k.h; }
};
struct key_equal {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
  bool operator()(const hashed& a, std::string_view b) const noexcept { return a.s == b; }
  bool operator()(std::string_view a, const hashed& b) const noexcept { return a == b.s; }
};

std::size_t shard_from_hash(std::size_t h) noexcept {
  // The top bits of a multiplicative mix: independent of the low bits the map's buckets use.
  return static_cast<std::size_t>((static_cast<std::uint64_t>(h) * 0x9E3779B97F4A7C15ull) >> 58);
}

}  // namespace

std::size_t local_limiter::shard_of(std::string_view key) noexcept {
  return shard_from_hash(hash_of(key));  // 64 shards
}
static_assert(local_limiter::shards == 64);

namespace {

std::uint32_t whole(nanos a, nanos interval) noexcept {
  return a.count() <= 0 ? 0 : static_cast<std::uint32_t>(a.count() / interval.count());
}

}  // namespace

struct alignas(64) local_limiter::shard {
  std::mutex mu;
  std::unordered_map<std::string, std::int64_t, key_hash, key_equal> tat;  // ns
};

local_limiter::local_limiter(gcra shape, std::size_t max_keys)
    : shape_(shape),
      per_shard_(std::max<std::size_t>(1, (max_keys + shards - 1) / shards)),
      shards_(new shard[shards]) {}

local_limiter::~local_limiter() = default;

nanos local_limiter::clock() noexcept {
  return std::chrono::duration_cast<nanos>(std::chrono::steady_clock::now().time_since_epoch());
}

decision local_limiter::acquire(std::string_view key, nanos now) {
  const std::int64_t t = now.count(), interval = shape_.interval.count();
  const std::int64_t tolerance = shape_.tolerance().count();
  const hashed k{key, hash_of(key)};
  shard& s = shards_[shard_from_hash(k.h)];
  std::lock_guard lock(s.mu);
  auto it = s.tat.find(k);
  // An unknown key is a full bucket: its TAT is now.
  std::int64_t tat = std::max(it == s.tat.end() ? t : it->second, t);
  decision d;
  if (tat - t > tolerance) {  // the next request conforms at tat - tolerance
    d.v = verdict::deny;
    d.retry_after = nanos(tat - tolerance - t);
    d.reset = nanos(tat - t);
    return d;
  }
  std::int64_t next = tat + interval;
  d.v = verdict::allow;
  d.reset = nanos(next - t);
  // Conforming requests left after this one: how far next is below t + tolerance + interval.
  d.remaining = whole(nanos(tolerance + interval - (next - t)), shape_.interval);
  if (it != s.tat.end()) {
    it->second = next;
    return d;
  }
  if (s.tat.size() >= per_shard_) {
    // Full shard: drop the buckets that are full again; else the one nearest to full.
    auto oldest = s.tat.end();
    std::size_t before = s.tat.size();
    for (auto i = s.tat.begin(); i != s.tat.end();) {
      if (i->second <= t) {
        i = s.tat.erase(i);
        continue;
      }
      if (oldest == s.tat.end() || i->second < oldest->second) oldest = i;
      ++i;
    }
    if (s.tat.size() == before && oldest != s.tat.end()) {
      s.tat.erase(oldest);
      evictions_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  s.tat.emplace(std::string(key), next);
  return d;
}

std::size_t local_limiter::size() const {
  std::size_t n = 0;
  for (std::size_t i = 0; i < shards; ++i) {
    std::lock_guard lock(shards_[i].mu);
    n += shards_[i].tat.size();
  }
  return n;
}

}  // namespace trafficcop::ratelimit
