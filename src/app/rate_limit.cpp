// SPDX-License-Identifier: MIT
// The rate limit middleware (rate_limit.hpp): keys, the order of checks, the 429 and 503.
#include "app/rate_limit.hpp"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>
#include <openssl/evp.h>

#include "ratelimit/redis_store.hpp"

namespace trafficcop::app {
namespace {

using ratelimit::decision;
using ratelimit::nanos;
using ratelimit::verdict;
using limit = rate_limit_set::limit;

/// A route's limits in the route's order, and what their keys take from the route.
struct route_limits {
  std::shared_ptr<const rate_limit_set> set;  // keeps the limiters alive
  std::vector<const limit*> limits;
  route_identity id;
};

void count(const limit& l, verdict v) {
  if (!l.cells) return;
  auto& c = l.cells->local();
  (v == verdict::allow ? c.allow : v == verdict::deny ? c.deny : c.error).add();
}

/// The IP of request::remote_addr, which the server always writes as "ip:port" or
/// "[v6]:port" (http::host_of validates any input, at several times the cost).
std::string_view ip_of(std::string_view remote) noexcept {
  auto colon = remote.rfind(':');
  if (colon == std::string_view::npos) return remote;
  remote = remote.substr(0, colon);
  if (remote.size() >= 2 && remote.front() == '[' && remote.back() == ']')
    remote = remote.substr(1, remote.size() - 2);
  return remote;
}

/// A header value as a key part. One longer than 64 bytes becomes "#" and 128 bits of its
/// SHA-256 in hex (the same in every instance, for global limits): a bucket's size is bounded
/// whatever a client sends (a 16 KiB value per request would otherwise make 100,000 buckets
/// 1.6 GB, and as many redis keys).
void append_header_value(std::string& key, std::string_view v) {
  if (v.size() <= 64) {
    key += v;
    return;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  std::size_t n = 0;
  if (!EVP_Q_digest(nullptr, "SHA256", nullptr, v.data(), v.size(), md, &n) || n < 16) {
    key.append(v.substr(0, 64));  // never expected; still bounded
    return;
  }
  key += '#';
  constexpr char hex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < 16; ++i) {
    key += hex[md[i] >> 4];
    key += hex[md[i] & 15];
  }
}

/// The bucket's name: the limit's name, then each key part's value, separated by a byte that
/// no header value, address or config name holds (0x1f), so that parts never run together.
void build_key(std::string& key, const limit& l, const request& in, const route_identity& id) {
  key.assign(l.key_prefix);  // name + 0x1f
  bool first = true;
  for (const auto& p : l.cfg.key) {
    if (!first) key += '\x1f';
    first = false;
    switch (p.what) {
      case config::rate_key_part::kind::client_ip:
        key += ip_of(in.remote_addr);  // after trusted_proxies, as the access log
        break;
      case config::rate_key_part::kind::header:
        // Absent: "", one bucket for every request without it (omitting it is no way out).
        append_header_value(key, in.header.get(p.header).value_or(std::string_view{}));
        break;
      case config::rate_key_part::kind::route:
        key += id.route;
        break;
      case config::rate_key_part::kind::upstream:
        key += id.upstream;
        break;
    }
  }
}

/// Whole seconds, rounded up (Retry-After and RateLimit's t are integers).
std::int64_t seconds_up(nanos d) {
  constexpr std::int64_t s = 1'000'000'000;
  return d.count() <= 0 ? 0 : (d.count() + s - 1) / s;
}

/// 429 with Retry-After and the fields of draft-ietf-httpapi-ratelimit-headers: the policy of
/// the limit that refused, nothing left (r=0), and t: until its bucket is full again.
asio::awaitable<void> refuse(response_writer& w, const limit& l, decision d) {
  w.log().rate_limit = l.cfg.name;
  w.header().set("Retry-After",
                 std::to_string(std::max<std::int64_t>(1, seconds_up(d.retry_after))));
  w.header().set("RateLimit-Policy", l.policy);
  w.header().set("RateLimit", fmt::format("\"{}\";r=0;t={}", l.cfg.name, seconds_up(d.reset)));
  co_await write_text(w, 429, "Too Many Requests\n");
}

/// failure_mode: closed, and the store failed.
asio::awaitable<void> unavailable(response_writer& w, const limit& l) {
  w.log().rate_limit = l.cfg.name;
  w.log().error = "rate limit store unavailable";
  w.header().set("Retry-After", "1");
  co_await write_text(w, 503, "Service Unavailable\n");
}

/// Decides the local limits from `i` on, synchronously. Stops at the first global limit, or at
/// the first local one that denies (then `d` is its decision); returns where it stopped
/// (limits.size(): every one allowed).
std::size_t run_local(const route_limits& rl, std::size_t i, const request& in, decision& d) {
  thread_local std::string key;  // one per worker, reused: no allocation per request
  for (; i < rl.limits.size(); ++i) {
    const limit& l = *rl.limits[i];
    if (!l.local) return i;
    build_key(key, l, in, rl.id);
    d = l.local->acquire(key, ratelimit::local_limiter::clock());
    count(l, d.v);
    if (d.v == verdict::deny) return i;
  }
  return i;
}

/// From global limit `i` on: awaits the store, then goes on as run_local does.
asio::awaitable<void> run_from_global(const route_limits& rl, std::size_t i, const handler& next,
                                      response_writer& w, request& in) {
  while (i < rl.limits.size()) {
    const limit& g = *rl.limits[i];
    std::string key;
    build_key(key, g, in, rl.id);
    // acquire() copies the key before it suspends; `key` outlives the call anyway.
    decision d = co_await rl.set->store->acquire(key, g.shape);
    count(g, d.v);
    if (d.v == verdict::deny) {
      co_await refuse(w, g, d);
      co_return;
    }
    if (d.v == verdict::error && !rl.set->redis->fail_open) {
      co_await unavailable(w, g);
      co_return;
    }
    i = run_local(rl, i + 1, in, d);
    if (i < rl.limits.size() && rl.limits[i]->local) {
      co_await refuse(w, *rl.limits[i], d);
      co_return;
    }
  }
  co_await next(w, in);
}

}  // namespace

std::shared_ptr<const rate_limit_set> build_rate_limits(const config::config& cfg, metrics* m,
                                                        const rate_limit_set* before) {
  auto set = std::make_shared<rate_limit_set>();
  bool global = std::any_of(cfg.rate_limits.begin(), cfg.rate_limits.end(),
                            [](const config::rate_limit& r) { return r.global; });
  if (global) {              // first: it may throw, and then nothing else changed
    set->redis = cfg.redis;  // the loader made sure there is one
    if (before && before->store && before->redis == cfg.redis)
      set->store = before->store;
    else
      set->store = std::make_shared<ratelimit::redis_store>(*cfg.redis);  // throws naming why
  }
  auto cells = m ? m->bind_rate_limits(cfg)
                 : std::vector<counters::per_thread<ratelimit_cells>*>(cfg.rate_limits.size());
  for (std::size_t i = 0; i < cfg.rate_limits.size(); ++i) {
    const auto& r = cfg.rate_limits[i];
    limit l;
    l.cfg = r;
    auto per = std::chrono::duration_cast<nanos>(r.per);
    l.shape = {per / static_cast<std::int64_t>(r.count), std::max<std::uint32_t>(r.burst, 1)};
    l.policy = fmt::format("\"{}\";q={};w={}", r.name, r.count,
                           std::chrono::duration_cast<std::chrono::seconds>(r.per).count());
    l.key_prefix = r.name + '\x1f';
    l.cells = cells[i];
    if (!r.global) {
      // A limit configured as before keeps its buckets: a reload is no way to a fresh burst.
      if (before)
        for (const auto& b : before->limits)
          if (b.local && b.cfg == r) l.local = b.local;
      if (!l.local) l.local = std::make_shared<ratelimit::local_limiter>(l.shape);
    }
    set->limits.push_back(std::move(l));
  }
  return set;
}

handler with_rate_limits(handler next, std::shared_ptr<const rate_limit_set> set,
                         const config::route& r, route_identity id) {
  if (r.rate_limits.empty() || !set) return next;
  auto rl = std::make_shared<route_limits>();
  rl->id = std::move(id);
  for (const auto& name : r.rate_limits)
    for (const auto& l : set->limits)
      if (l.cfg.name == name) rl->limits.push_back(&l);  // the loader checked the names
  rl->set = std::move(set);
  // Not a coroutine: when the local limits allow, the next handler's awaitable is returned
  // as it is, with no frame of ours around it.
  return [rl, next = std::move(next)](response_writer& w, request& in) -> asio::awaitable<void> {
    decision d;
    std::size_t i = run_local(*rl, 0, in, d);
    if (i == rl->limits.size()) return next(w, in);
    if (rl->limits[i]->local) return refuse(w, *rl->limits[i], d);
    return run_from_global(*rl, i, next, w, in);
  };
}

}  // namespace trafficcop::app
