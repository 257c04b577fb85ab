// SPDX-License-Identifier: MIT
// What a rate limiter is asked and what it answers, shared by the local limiter (this
// instance's workers) and the global one (through redis). Both run GCRA, the "generic cell
// rate algorithm": a bucket is one time stamp, the theoretical arrival time (TAT) of the next
// request at the steady rate; a request is allowed when TAT - now <= (burst - 1) * interval,
// and then moves TAT to max(TAT, now) + interval.
#pragma once

#include <chrono>
#include <cstdint>

namespace trafficcop::ratelimit {

using nanos = std::chrono::nanoseconds;

/// A limit's shape: one request per `interval` at the steady rate, `burst` at once.
struct gcra {
  nanos interval{0};        // per / count: 100/s → 10 ms
  std::uint32_t burst = 1;  // ≥ 1

  nanos tolerance() const noexcept { return interval * (burst - 1); }
};

enum class verdict : std::uint8_t { allow, deny, error };

/// The answer for one request. `remaining`, `retry_after` and `reset` feed the RateLimit and
/// Retry-After fields of the response (draft-ietf-httpapi-ratelimit-headers).
struct decision {
  verdict v = verdict::error;
  std::uint32_t remaining = 0;  // requests still allowed right now, after this one
  nanos retry_after{0};         // deny: until one more request would be allowed
  nanos reset{0};               // until the bucket is full again (burst requests allowed)
};

}  // namespace trafficcop::ratelimit
