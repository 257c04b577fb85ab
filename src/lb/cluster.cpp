// SPDX-License-Identifier: MIT
// Endpoint choice and passive health of an upstream of many endpoints (cluster.hpp).
#include "lb/cluster.hpp"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "core/log.hpp"
#include "http/rules.hpp"

namespace trafficcop::lb {
namespace {

std::atomic<std::uint64_t> next_cluster_id{1};

/// ring_hash points per unit of weight: enough that removing one of N endpoints moves close to
/// 1/N of the keys (measured in tests/unit/lb_test.cpp), small enough to build fast.
constexpr std::uint32_t ring_points_per_weight = 160;
/// peak_ewma's decay time (Finagle's default): a peak is forgotten over about this long.
constexpr double ewma_decay_ns = 10e9;
/// peak_ewma: the cost of an endpoint not measured yet, so that each gets tried.
constexpr double unmeasured_ns = 1e3;

/// xorshift64*: per worker, seeded from the clock and the worker's address.
struct rng {
  std::uint64_t s;
  std::uint64_t next() noexcept {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1DULL;
  }
  std::size_t below(std::size_t n) noexcept { return static_cast<std::size_t>(next() % n); }
};

bool tried(std::uint64_t avoid, std::size_t i) noexcept { return i < 64 && (avoid >> i) & 1; }

}  // namespace

std::uint64_t stable_hash(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  // splitmix64's finaliser: FNV's low bits are weak for the ring's ordering.
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

struct cluster::worker_state {
  struct ep {
    std::int64_t current_weight = 0;  // smooth weighted round robin
    std::uint32_t in_flight = 0;
    double ewma_ns = 0;  // peak_ewma
    clock::time_point stamp{};
  };
  std::shared_ptr<const endpoint_set> set;  // the set this worker picks from
  std::uint64_t version = 0;                // the cluster's version of `set`
  std::vector<ep> eps;                      // parallel to set->eps
  /// Endpoints that left the set while attempts of this worker were on them: kept alive
  /// until done() has seen each attempt end.
  struct leaving {
    std::shared_ptr<endpoint> e;
    std::uint32_t in_flight;
  };
  std::vector<leaving> gone;
  std::size_t next = 0;  // round robin with equal weights
  rng random{0};

  /// This worker's state of `e`, or null if `e` is not in its set.
  ep* slot(const endpoint& e) {
    std::size_t i = e.index();
    if (i < eps.size() && set->eps[i].get() == &e) return &eps[i];
    for (i = 0; i < eps.size(); ++i)  // `e` moved in a newer set than this worker's
      if (set->eps[i].get() == &e) return &eps[i];
    return nullptr;
  }
};

endpoint::endpoint(const endpoint_options& o, std::size_t index)
    : host_(o.host), address_(o.address), port_(o.port), weight_(o.weight), index_(index) {
  const std::string& where = address_.empty() ? host_ : address_;
  authority_ = where.find(':') != std::string::npos ? "[" + where + "]" : where;
  authority_ += ":" + std::to_string(port_);
}

cluster::cluster(cluster_options o) : o_(std::move(o)) {
  std::vector<std::shared_ptr<endpoint>> eps;
  for (const auto& e : o_.endpoints) eps.push_back(std::make_shared<endpoint>(e, eps.size()));
  set_ = make_set(std::move(eps));
  id_ = next_cluster_id.fetch_add(1, std::memory_order_relaxed);
}

cluster::~cluster() = default;

std::shared_ptr<const cluster::endpoint_set> cluster::make_set(
    std::vector<std::shared_ptr<endpoint>> eps) const {
  auto s = std::make_shared<endpoint_set>();
  s->eps = std::move(eps);
  for (const auto& e : s->eps) {
    s->total_weight += e->weight();
    s->equal_weights = s->equal_weights && e->weight() == s->eps.front()->weight();
  }
  if (o_.lb == policy::ring_hash) {
    for (std::size_t i = 0; i < s->eps.size(); ++i) {
      const auto& e = *s->eps[i];
      for (std::uint32_t k = 0; k < e.weight() * ring_points_per_weight; ++k)
        s->ring.push_back(
            {stable_hash(e.authority() + "#" + std::to_string(k)), static_cast<std::uint32_t>(i)});
    }
    std::sort(s->ring.begin(), s->ring.end(),
              [](const auto& a, const auto& b) { return a.hash < b.hash; });
  }
  return s;
}

std::vector<std::shared_ptr<endpoint>> cluster::endpoints() const {
  std::lock_guard l(mu_);
  return set_->eps;
}

cluster::change cluster::update(const std::vector<endpoint_options>& list) {
  std::lock_guard l(mu_);  // workers take it only after the version moves, below
  auto same = [](const endpoint& e, const endpoint_options& o) {
    return e.host() == o.host && e.address() == o.address && e.port() == o.port &&
           e.weight() == o.weight;
  };
  change ch;
  std::vector<std::shared_ptr<endpoint>> eps;
  std::vector<bool> kept(set_->eps.size());
  for (const auto& o : list) {
    bool dup = std::any_of(eps.begin(), eps.end(), [&](const auto& e) { return same(*e, o); });
    if (dup) continue;
    std::size_t i = 0;
    while (i < kept.size() && (kept[i] || !same(*set_->eps[i], o))) ++i;
    if (i < kept.size()) {
      kept[i] = true;
      eps.push_back(set_->eps[i]);
    } else {
      eps.push_back(std::make_shared<endpoint>(o, eps.size()));
      ch.added.push_back(eps.back());
    }
  }
  for (std::size_t i = 0; i < kept.size(); ++i) {
    if (kept[i]) continue;
    set_->eps[i]->retired_->store(true, std::memory_order_relaxed);
    ch.removed.push_back(set_->eps[i]);
  }
  if (ch.added.empty() && ch.removed.empty()) return ch;
  for (std::size_t i = 0; i < eps.size(); ++i) eps[i]->index_.store(i, std::memory_order_relaxed);
  set_ = make_set(std::move(eps));
  version_.fetch_add(1, std::memory_order_release);
  return ch;
}

cluster::worker_state& cluster::local() {
  // One entry per cluster this worker has used, by id (never reused, unlike an address).
  thread_local std::unordered_map<std::uint64_t, std::unique_ptr<worker_state>> states;
  thread_local std::uint64_t last_id = 0;
  thread_local worker_state* last = nullptr;
  if (last_id == id_) return *last;
  auto& s = states[id_];
  if (!s) {
    s = std::make_unique<worker_state>();
    s->random.s = static_cast<std::uint64_t>(clock::now().time_since_epoch().count()) ^
                  reinterpret_cast<std::uintptr_t>(s.get()) ^ 0x9E3779B97F4A7C15ULL;
    if (s->random.s == 0) s->random.s = 1;
  }
  last_id = id_;
  last = s.get();
  return *s;
}

void cluster::sync(worker_state& w) {
  if (version_.load(std::memory_order_acquire) == w.version) return;
  std::shared_ptr<const endpoint_set> next;
  std::uint64_t version;
  {
    std::lock_guard l(mu_);
    next = set_;
    version = version_.load(std::memory_order_relaxed);
  }
  // Carry each staying endpoint's state over; keep those leaving with attempts under way.
  std::unordered_map<const endpoint*, std::size_t> before;
  if (w.set)
    for (std::size_t i = 0; i < w.set->eps.size(); ++i) before.emplace(w.set->eps[i].get(), i);
  std::vector<worker_state::ep> eps(next->eps.size());
  for (std::size_t i = 0; i < eps.size(); ++i) {
    auto it = before.find(next->eps[i].get());
    if (it == before.end()) continue;
    eps[i] = w.eps[it->second];
    before.erase(it);
  }
  for (auto [e, i] : before)
    if (w.eps[i].in_flight > 0) w.gone.push_back({w.set->eps[i], w.eps[i].in_flight});
  if (!w.set) w.next = w.random.below(std::max<std::size_t>(eps.size(), 1));
  w.set = std::move(next);
  w.eps = std::move(eps);
  w.version = version;
}

endpoint* cluster::pick(const pick_input& p) {
  auto& w = local();
  sync(w);
  const auto& set = *w.set;
  if (set.eps.empty()) return nullptr;
  auto now = clock::now();
  bool all = false;
  if (o_.panic_threshold > 0) {
    std::size_t up = set.eps.size() - ejected_now(set, now);
    all = up * 100 < set.eps.size() * o_.panic_threshold;
  }
  endpoint* e = nullptr;
  // A retry goes elsewhere when it can; when every endpoint was tried, anywhere.
  for (std::uint64_t avoid : {p.tried, std::uint64_t{0}}) {
    switch (o_.lb) {
      case policy::round_robin:
        e = pick_round_robin(w, now, avoid, all);
        break;
      case policy::least_request:
      case policy::peak_ewma:
        e = pick_p2c(w, now, avoid, all);
        break;
      case policy::random:
        e = pick_random(w, now, avoid, all);
        break;
      case policy::ring_hash: {
        pick_input q = p;
        q.tried = avoid;
        e = pick_ring(w, q, now, all);
        break;
      }
    }
    if (e || p.tried == 0) break;
  }
  if (e) {
    ++w.slot(*e)->in_flight;
    e->stats().local().picks.add();
  }
  return e;
}

endpoint* cluster::pick_round_robin(worker_state& w, clock::time_point now, std::uint64_t avoid,
                                    bool all) {
  const auto& eps = w.set->eps;
  const std::size_t n = eps.size();
  auto usable = [&](std::size_t i) { return !tried(avoid, i) && (all || eps[i]->available(now)); };
  if (w.set->equal_weights) {
    for (std::size_t k = 0; k < n; ++k) {
      std::size_t i = w.next++ % n;
      if (usable(i)) return eps[i].get();
    }
    return nullptr;
  }
  // nginx's smooth weighted round robin: every usable endpoint gains its weight, the largest
  // is chosen and pays the total back. Over any window of total_weight picks each endpoint is
  // chosen exactly its weight's share, interleaved rather than in runs.
  std::int64_t total = 0;
  std::size_t best = n;
  for (std::size_t i = 0; i < n; ++i) {
    if (!usable(i)) continue;
    auto& s = w.eps[i];
    s.current_weight += eps[i]->weight();
    total += eps[i]->weight();
    if (best == n || s.current_weight > w.eps[best].current_weight) best = i;
  }
  if (best == n) return nullptr;
  w.eps[best].current_weight -= total;
  return eps[best].get();
}

endpoint* cluster::pick_p2c(worker_state& w, clock::time_point now, std::uint64_t avoid, bool all) {
  const auto& eps = w.set->eps;
  const std::size_t n = eps.size();
  auto usable = [&](std::size_t i) { return !tried(avoid, i) && (all || eps[i]->available(now)); };
  // Two distinct usable candidates at random: a few draws, then a scan when most are out.
  std::size_t cand[2] = {n, n};
  for (std::size_t k = 0, found = 0; found < 2 && k < 16; ++k) {
    std::size_t i = w.random.below(n);
    if (usable(i) && i != cand[0]) cand[found++] = i;
  }
  if (cand[1] == n) {
    std::vector<std::size_t> ok;
    for (std::size_t i = 0; i < n; ++i)
      if (usable(i)) ok.push_back(i);
    if (ok.empty()) return nullptr;
    if (ok.size() == 1) return eps[ok[0]].get();
    std::size_t a = w.random.below(ok.size());
    std::size_t b = w.random.below(ok.size() - 1);
    if (b >= a) ++b;
    cand[0] = ok[a];
    cand[1] = ok[b];
  }
  auto cost = [&](std::size_t i) {
    auto& s = w.eps[i];
    double load = static_cast<double>(s.in_flight) + 1;
    if (o_.lb == policy::peak_ewma) {
      // Finagle's peak EWMA, decayed when read so that a slow endpoint that is no longer
      // chosen (and so not measured) is tried again once its peak has faded.
      if (s.ewma_ns > 0) {
        double dt = std::chrono::duration<double, std::nano>(now - s.stamp).count();
        s.ewma_ns *= std::exp(-std::max(dt, 0.0) / ewma_decay_ns);
        s.stamp = now;
      }
      load *= s.ewma_ns + unmeasured_ns;
    }
    return load / eps[i]->weight();
  };
  return eps[cost(cand[1]) < cost(cand[0]) ? cand[1] : cand[0]].get();
}

endpoint* cluster::pick_random(worker_state& w, clock::time_point now, std::uint64_t avoid,
                               bool all) {
  const auto& eps = w.set->eps;
  const std::size_t n = eps.size();
  auto usable = [&](std::size_t i) { return !tried(avoid, i) && (all || eps[i]->available(now)); };
  auto weighted = [&](std::uint64_t r) {
    for (std::size_t i = 0; i < n; ++i) {
      if (r < eps[i]->weight()) return i;
      r -= eps[i]->weight();
    }
    return n - 1;
  };
  for (int k = 0; k < 8; ++k) {
    std::size_t i =
        w.set->equal_weights ? w.random.below(n) : weighted(w.random.next() % w.set->total_weight);
    if (usable(i)) return eps[i].get();
  }
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (usable(i)) total += eps[i]->weight();
  if (total == 0) return nullptr;
  std::uint64_t r = w.random.next() % total;
  for (std::size_t i = 0; i < n; ++i) {
    if (!usable(i)) continue;
    if (r < eps[i]->weight()) return eps[i].get();
    r -= eps[i]->weight();
  }
  return nullptr;
}

endpoint* cluster::pick_ring(worker_state& w, const pick_input& p, clock::time_point now,
                             bool all) {
  auto key = p.in ? key_of(*p.in) : std::nullopt;
  if (!key) return pick_random(w, now, p.tried, all);
  const auto& eps = w.set->eps;
  return w.set->ring_owner(
      *key, [&](std::size_t i) { return !tried(p.tried, i) && (all || eps[i]->available(now)); });
}

std::optional<std::uint64_t> cluster::key_of(const request& in) const {
  switch (o_.hash.what) {
    case hash_on::kind::client_ip:
      return stable_hash(http::host_of(in.remote_addr));
    case hash_on::kind::path:
      return stable_hash(in.path());
    case hash_on::kind::header:
      if (auto v = in.header.get(o_.hash.name)) return stable_hash(*v);
      return std::nullopt;
    case hash_on::kind::cookie: {
      for (const auto& f : in.header) {
        if (!iequals(f.name, "cookie")) continue;
        std::string_view v = f.value;
        while (!v.empty()) {
          auto semi = v.find(';');
          auto pair = v.substr(0, semi);
          while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
          auto eq = pair.find('=');
          if (eq != std::string_view::npos && pair.substr(0, eq) == o_.hash.name)
            return stable_hash(pair.substr(eq + 1));
          if (semi == std::string_view::npos) break;
          v.remove_prefix(semi + 1);
        }
      }
      return std::nullopt;
    }
  }
  return std::nullopt;
}

void cluster::done(endpoint& e, const attempt_result& r) {
  auto now = clock::now();
  auto& stats = e.stats().local();
  stats.dones.add();
  auto& w = local();
  sync(w);
  auto* slot = w.slot(e);
  if (!slot) {
    // It left the set during the attempt: nothing to learn, one attempt fewer to wait for.
    auto it = std::find_if(w.gone.begin(), w.gone.end(),
                           [&](const worker_state::leaving& g) { return g.e.get() == &e; });
    if (it != w.gone.end() && --it->in_flight == 0) w.gone.erase(it);
    return;
  }
  auto& s = *slot;
  if (s.in_flight > 0) --s.in_flight;
  if (o_.lb == policy::peak_ewma && !r.failure) {
    double rtt = static_cast<double>(r.latency.count());
    if (rtt > s.ewma_ns) {
      s.ewma_ns = rtt;  // peak: a slow answer counts at once
    } else {
      double dt = std::chrono::duration<double, std::nano>(now - s.stamp).count();
      double keep = std::exp(-std::max(dt, 0.0) / ewma_decay_ns);
      s.ewma_ns = s.ewma_ns * keep + rtt * (1 - keep);
    }
    s.stamp = now;
    stats.ewma_ns.store(s.ewma_ns, std::memory_order_relaxed);
  }
  if (r.failure) return record_failure(*w.set, e, now);
  if (e.failures_.load(std::memory_order_relaxed) != 0)
    e.failures_.store(0, std::memory_order_relaxed);
  auto until = e.ejected_until_.load(std::memory_order_relaxed);
  auto ticks = now.time_since_epoch().count();
  if (until != 0 && until <= ticks &&
      e.ejected_until_.compare_exchange_strong(until, 0, std::memory_order_relaxed)) {
    e.back_at_.store(ticks, std::memory_order_relaxed);
    log::info("endpoint {} of {} is back after its ejection", e.authority(), o_.name);
  }
  // Healthy for a whole base ejection time since it came back: the next ejection is short.
  if (e.ejections_.load(std::memory_order_relaxed) != 0) {
    auto back = e.back_at_.load(std::memory_order_relaxed);
    if (back != 0 && clock::duration(ticks - back) >= o_.outlier.ejection_time)
      e.ejections_.store(0, std::memory_order_relaxed);
  }
}

void cluster::record_failure(const endpoint_set& set, endpoint& e, clock::time_point now) {
  const auto& od = o_.outlier;
  if (od.consecutive_failures == 0) return;
  auto n = e.failures_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n < od.consecutive_failures || !e.available(now)) return;
  std::size_t allowed = set.eps.size() * od.max_ejection_percent / 100;
  if (ejected_now(set, now) >= allowed) return;
  auto k = std::min<std::uint32_t>(e.ejections_.fetch_add(1, std::memory_order_relaxed), 16);
  auto t = std::min(od.ejection_time * (std::int64_t{1} << k), od.max_ejection_time);
  auto until = (now + t).time_since_epoch().count();
  auto cur = e.ejected_until_.load(std::memory_order_relaxed);
  if (cur > now.time_since_epoch().count() ||
      !e.ejected_until_.compare_exchange_strong(cur, until, std::memory_order_relaxed))
    return;  // another worker ejected it meanwhile
  e.failures_.store(0, std::memory_order_relaxed);
  log::warn("endpoint {} of {} is ejected for {} ms: {} consecutive failures", e.authority(),
            o_.name, t.count(), n);
}

std::size_t cluster::ejected_now(const endpoint_set& set, clock::time_point now) {
  std::size_t n = 0;
  for (const auto& e : set.eps)
    if (!e->available(now)) ++n;
  return n;
}

}  // namespace trafficcop::lb
