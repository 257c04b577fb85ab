// SPDX-License-Identifier: MIT
// Open connections per client address (client_limit.hpp).
#include "server/client_limit.hpp"

#include <array>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string_view>
#include <unordered_map>

#include "core/log.hpp"

namespace trafficcop::detail {
namespace {

/// The address as 16 bytes (IPv4 as its IPv4-mapped IPv6 form), so one map holds both.
using key = std::array<unsigned char, 16>;

key key_of(const boost::asio::ip::address& a) {
  if (a.is_v4())
    return boost::asio::ip::make_address_v6(boost::asio::ip::v4_mapped, a.to_v4()).to_bytes();
  return a.to_v6().to_bytes();
}

struct key_hash {
  std::size_t operator()(const key& k) const noexcept {
    return std::hash<std::string_view>{}(
        std::string_view(reinterpret_cast<const char*>(k.data()), k.size()));
  }
};

std::size_t shard_of(const key& k) noexcept {
  return static_cast<std::size_t>((key_hash{}(k)*0x9E3779B97F4A7C15ull) >> 58);
}

}  // namespace

struct alignas(64) client_limit::shard {
  mutable std::mutex mu;
  std::unordered_map<key, std::uint32_t, key_hash> open;
};

client_limit::client_limit(std::uint32_t max) : max_(max), shards_(new shard[shards]) {}
client_limit::~client_limit() = default;

bool client_limit::admit(const boost::asio::ip::address& a) {
  key k = key_of(a);
  {
    shard& s = shards_[shard_of(k)];
    std::lock_guard l(s.mu);
    auto& n = s.open[k];
    if (n < max_) {
      ++n;
      return true;
    }
  }
  rejected_.fetch_add(1, std::memory_order_relaxed);
  // At most one message a second, saying how many went unlogged since the last one.
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
                 .count();
  auto last = last_log_s_.load(std::memory_order_relaxed);
  if (now > last && last_log_s_.compare_exchange_strong(last, now)) {
    auto more = unlogged_.exchange(0, std::memory_order_relaxed);
    log::warn("limits.max_connections_per_client: {} has {} connections open; closed a new one{}",
              a.to_string(), max_,
              more ? " (and " + std::to_string(more) + " more since the last message)" : "");
  } else {
    unlogged_.fetch_add(1, std::memory_order_relaxed);
  }
  return false;
}

void client_limit::release(const boost::asio::ip::address& a) {
  key k = key_of(a);
  shard& s = shards_[shard_of(k)];
  std::lock_guard l(s.mu);
  auto it = s.open.find(k);
  if (it == s.open.end()) return;
  if (--it->second == 0) s.open.erase(it);
}

std::uint32_t client_limit::open(const boost::asio::ip::address& a) const {
  key k = key_of(a);
  const shard& s = shards_[shard_of(k)];
  std::lock_guard l(s.mu);
  auto it = s.open.find(k);
  return it == s.open.end() ? 0 : it->second;
}

}  // namespace trafficcop::detail
