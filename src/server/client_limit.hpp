// SPDX-License-Identifier: MIT
// limits.max_connections_per_client (issue 11): open connections per client address, counted
// across all workers of the server.
//
// A count per address, in 64 shards by the address's hash, each with a short lock of its own:
// an accept and a close each take one shard's lock for one hash lookup, so workers accepting
// from different clients rarely meet, and no lock is shared by all connections. An address's
// entry goes when its count drops to zero, so memory follows the clients connected now.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include <boost/asio/ip/address.hpp>

namespace trafficcop::detail {

class client_limit {
 public:
  static constexpr std::size_t shards = 64;

  /// `max` ≥ 1 connections per address.
  explicit client_limit(std::uint32_t max);
  ~client_limit();
  client_limit(const client_limit&) = delete;
  client_limit& operator=(const client_limit&) = delete;

  /// Counts a new connection from `a` and returns true, or returns false (and counts nothing
  /// for `a`) when `a` already has `max` open: the caller closes it. An IPv4-mapped IPv6
  /// address counts as its IPv4 address.
  bool admit(const boost::asio::ip::address& a);
  /// A connection admitted for `a` ended.
  void release(const boost::asio::ip::address& a);

  /// Connections refused so far.
  std::uint64_t rejected() const noexcept { return rejected_.load(std::memory_order_relaxed); }
  /// Open connections counted for `a` now (tests).
  std::uint32_t open(const boost::asio::ip::address& a) const;

 private:
  struct shard;
  std::uint32_t max_;
  std::unique_ptr<shard[]> shards_;
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::int64_t> last_log_s_{0};
  std::atomic<std::uint64_t> unlogged_{0};
};

}  // namespace trafficcop::detail
