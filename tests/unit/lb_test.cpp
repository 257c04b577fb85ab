// SPDX-License-Identifier: MIT
// The endpoint choice of src/lb/cluster.hpp without sockets: the distribution of each policy,
// retries going elsewhere, ring_hash's key movement, and passive ejection.
#include "lb/cluster.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace trafficcop::lb {
namespace {

cluster_options with(std::vector<std::uint32_t> weights, policy p) {
  cluster_options o;
  o.name = "test";
  o.lb = p;
  for (std::size_t i = 0; i < weights.size(); ++i)
    o.endpoints.push_back({"127.0.0." + std::to_string(i + 1), 9000, weights[i]});
  return o;
}

/// Picks `n` times (each attempt finished at once, a success): picks per endpoint index.
std::vector<std::size_t> spread(cluster& c, std::size_t n, const request* in = nullptr) {
  std::vector<std::size_t> count(c.endpoints().size());
  for (std::size_t i = 0; i < n; ++i) {
    auto* e = c.pick({in, 0});
    EXPECT_NE(e, nullptr);
    if (!e) break;
    ++count[e->index()];
    c.done(*e, {false, std::chrono::microseconds(100)});
  }
  return count;
}

TEST(RoundRobin, SmoothWeightedIsExactOverEveryWindow) {
  cluster c(with({1, 3, 6}, policy::round_robin));
  auto count = spread(c, 10'000);
  EXPECT_EQ(count, (std::vector<std::size_t>{1000, 3000, 6000}));
  // Smooth: within any window of total weight (10) picks, each has exactly its share.
  std::vector<std::size_t> window(3);
  for (int i = 0; i < 10; ++i) ++window[c.pick({})->index()];
  EXPECT_EQ(window, (std::vector<std::size_t>{1, 3, 6}));
}

TEST(RoundRobin, EqualWeightsRotate) {
  cluster c(with({2, 2, 2, 2}, policy::round_robin));
  auto count = spread(c, 10'000);
  for (auto n : count) EXPECT_EQ(n, 2500u);
}

TEST(Random, WeightedWithinTwoPercent) {
  cluster c(with({1, 3}, policy::random));
  auto count = spread(c, 20'000);
  EXPECT_NEAR(static_cast<double>(count[1]) / 20'000, 0.75, 0.02);
}

TEST(LeastRequest, PrefersTheLessLoaded) {
  cluster c(with({1, 1}, policy::least_request));
  // Twenty picks held open (P2C alternates them: 10 each), then those of endpoint 1 finish:
  // endpoint 0 keeps 10 in flight on this worker. With two endpoints the candidates are
  // always 0 and 1, and 1 must win every time.
  std::vector<endpoint*> held;
  for (int i = 0; i < 20; ++i) held.push_back(c.pick({}));
  std::size_t busy = 0;
  for (auto* e : held) {
    if (e->index() == 0)
      ++busy;
    else
      c.done(*e, {});
  }
  ASSERT_GT(busy, 0u);
  auto count = spread(c, 1000);
  EXPECT_EQ(count[0], 0u);
  EXPECT_EQ(count[1], 1000u);
}

TEST(LeastRequest, WeightedEvenlyWhenIdle) {
  cluster c(with({1, 1, 1}, policy::least_request));
  auto count = spread(c, 9000);
  for (auto n : count) EXPECT_NEAR(static_cast<double>(n), 3000, 300);
}

TEST(PeakEwma, AvoidsTheSlowEndpointAtOnce) {
  cluster c(with({1, 1}, policy::peak_ewma));
  // Both measured fast, then one slow answer from endpoint 1: its peak counts at once.
  for (int i = 0; i < 50; ++i) {
    auto* e = c.pick({});
    c.done(*e, {false, std::chrono::milliseconds(1)});
  }
  auto* e = c.pick({});
  while (e->index() != 1) {
    c.done(*e, {false, std::chrono::milliseconds(1)});
    e = c.pick({});
  }
  c.done(*e, {false, std::chrono::milliseconds(500)});
  auto count = spread(c, 100);
  EXPECT_EQ(count[1], 0u) << "P2C of two always compares both: the slow one must lose";
}

TEST(Pick, RetryGoesToAnEndpointNotTriedYet) {
  for (auto p : {policy::round_robin, policy::least_request, policy::peak_ewma, policy::random,
                 policy::ring_hash}) {
    cluster c(with({1, 1, 1}, p));
    request in;
    in.remote_addr = "10.0.0.1:5000";
    std::uint64_t tried = 0;
    std::set<std::size_t> seen;
    for (int i = 0; i < 3; ++i) {
      auto* e = c.pick({&in, tried});
      ASSERT_NE(e, nullptr);
      EXPECT_TRUE(seen.insert(e->index()).second) << "policy " << static_cast<int>(p);
      tried |= std::uint64_t{1} << e->index();
      c.done(*e, {true, {}});
    }
    // Every endpoint tried: a fourth attempt may go anywhere rather than nowhere.
    EXPECT_NE(c.pick({&in, tried}), nullptr);
  }
}

TEST(RingHash, SameKeySameEndpointAndRemovingOneMovesAboutItsShare) {
  constexpr int n = 10, keys = 20'000;
  cluster all(with(std::vector<std::uint32_t>(n, 1), policy::ring_hash));
  auto fewer_opts = with(std::vector<std::uint32_t>(n, 1), policy::ring_hash);
  fewer_opts.endpoints.erase(fewer_opts.endpoints.begin() + 3);
  cluster fewer(fewer_opts);
  int moved = 0;
  std::vector<int> per(n);
  for (int k = 0; k < keys; ++k) {
    request in;
    in.remote_addr = "10." + std::to_string(k / 65536) + "." + std::to_string((k / 256) % 256) +
                     "." + std::to_string(k % 256) + ":1234";
    auto* a = all.pick({&in, 0});
    auto* again = all.pick({&in, 0});
    ASSERT_EQ(a, again);
    auto* b = fewer.pick({&in, 0});
    ++per[a->index()];
    if (a->authority() != b->authority()) ++moved;
  }
  // Only the removed endpoint's keys move (1/N = 10%): none of another endpoint's.
  EXPECT_EQ(moved, per[3]);
  EXPECT_NEAR(static_cast<double>(moved) / keys, 1.0 / n, 0.03);
  for (int c : per) EXPECT_NEAR(static_cast<double>(c) / keys, 1.0 / n, 0.04);
}

TEST(RingHash, HeaderAndCookieKeys) {
  auto o = with({1, 1, 1, 1}, policy::ring_hash);
  o.hash.what = hash_on::kind::cookie;
  o.hash.name = "session";
  cluster c(o);
  request a, b;
  a.header.add("Cookie", "theme=dark; session=abc");
  b.header.add("Cookie", "session=abc");
  EXPECT_EQ(c.key_of(a), c.key_of(b));
  request none;
  EXPECT_EQ(c.key_of(none), std::nullopt);  // a random endpoint then
  EXPECT_NE(c.pick({&none, 0}), nullptr);
}

TEST(Outlier, EjectsAfterConsecutiveFailuresAndReturns) {
  auto o = with({1, 1}, policy::round_robin);
  o.outlier.consecutive_failures = 3;
  o.outlier.ejection_time = std::chrono::milliseconds(50);
  o.outlier.max_ejection_percent = 50;
  cluster c(o);
  auto& bad = *c.endpoints()[0];
  for (int i = 0; i < 2; ++i) c.done(bad, {true, {}});
  EXPECT_TRUE(bad.available(clock::now()));
  c.done(*c.endpoints()[0], {false, {}});  // a success resets the run
  for (int i = 0; i < 3; ++i) c.done(bad, {true, {}});
  EXPECT_FALSE(bad.available(clock::now()));
  auto count = spread(c, 100);
  EXPECT_EQ(count[0], 0u);
  // max_ejection_percent 50: the second endpoint stays whatever it does.
  for (int i = 0; i < 10; ++i) c.done(*c.endpoints()[1], {true, {}});
  EXPECT_TRUE(c.endpoints()[1]->available(clock::now()));
  auto until = clock::now() + std::chrono::milliseconds(200);
  while (!bad.available(clock::now()) && clock::now() < until) {
  }
  EXPECT_TRUE(bad.available(clock::now())) << "ejection_time over";
}

TEST(Outlier, AllEjectedMeansNoEndpointUnlessPanic) {
  auto o = with({1, 1}, policy::round_robin);
  o.outlier.consecutive_failures = 1;
  o.outlier.max_ejection_percent = 100;
  cluster c(o);
  c.done(*c.endpoints()[0], {true, {}});
  c.done(*c.endpoints()[1], {true, {}});
  EXPECT_EQ(c.pick({}), nullptr);
  o.panic_threshold = 50;
  cluster panic(o);
  panic.done(*panic.endpoints()[0], {true, {}});
  panic.done(*panic.endpoints()[1], {true, {}});
  EXPECT_NE(panic.pick({}), nullptr) << "below the panic threshold every endpoint is used";
}

// --- update(): the endpoint set replaced by service discovery --------------------------------

std::vector<endpoint_options> hosts(std::vector<std::string> addrs) {
  std::vector<endpoint_options> v;
  for (auto& a : addrs) v.push_back({"api.internal", 9000, 1, a});
  return v;
}

TEST(Update, KeepsStayingEndpointsWithTheirHealthAndDropsTheOthers) {
  cluster_options o;
  o.name = "api";
  o.endpoints = hosts({"10.0.0.1", "10.0.0.2"});
  o.outlier.consecutive_failures = 1;
  cluster c(o);
  auto before = c.endpoints();
  ASSERT_EQ(before.size(), 2u);
  EXPECT_EQ(before[0]->authority(), "10.0.0.1:9000");
  EXPECT_EQ(before[0]->host(), "api.internal");
  c.done(*before[1], {true, {}});  // 10.0.0.2 ejected
  ASSERT_FALSE(before[1]->available(clock::now()));

  auto ch = c.update(hosts({"10.0.0.2", "10.0.0.3"}));
  ASSERT_EQ(ch.added.size(), 1u);
  EXPECT_EQ(ch.added[0]->address(), "10.0.0.3");
  ASSERT_EQ(ch.removed.size(), 1u);
  EXPECT_EQ(ch.removed[0].get(), before[0].get());
  EXPECT_TRUE(before[0]->retired());
  auto after = c.endpoints();
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].get(), before[1].get()) << "the same endpoint, its ejection kept";
  EXPECT_FALSE(after[0]->available(clock::now()));
  EXPECT_FALSE(after[0]->retired());
  // Only 10.0.0.3 is available now: every pick goes there, none to the retired 10.0.0.1.
  auto count = spread(c, 50);
  EXPECT_EQ(count, (std::vector<std::size_t>{0, 50}));
  EXPECT_TRUE(c.update(hosts({"10.0.0.3", "10.0.0.2"})).added.empty()) << "order alone: no change";
}

TEST(Update, AnAttemptOnALeavingEndpointEndsSafely) {
  for (auto p : {policy::round_robin, policy::least_request, policy::peak_ewma, policy::random,
                 policy::ring_hash}) {
    cluster_options o;
    o.lb = p;
    o.endpoints = hosts({"10.0.0.1"});
    cluster c(o);
    auto* e = c.pick({});
    ASSERT_NE(e, nullptr);
    auto ch = c.update(hosts({"10.0.0.9"}));
    ASSERT_EQ(ch.removed.size(), 1u);
    ch = {};               // the worker's table now holds the last reference but for the set below
    auto* f = c.pick({});  // this worker moves to the new set; `e` is kept for its attempt
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->address(), "10.0.0.9");
    EXPECT_TRUE(e->retired());
    c.done(*e, {true, std::chrono::milliseconds(1)});  // ASan: no use after free
    c.done(*f, {false, std::chrono::milliseconds(1)});
  }
}

TEST(Update, WorkersPickWhileTheSetChanges) {
  cluster_options o;
  o.lb = policy::least_request;
  o.endpoints = hosts({"10.0.0.1", "10.0.0.2"});
  cluster c(o);
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> picks{0}, misses{0};
  auto worker = [&] {
    while (!stop.load()) {
      auto* e = c.pick({});
      if (!e) {
        ++misses;
        continue;
      }
      // Every address ever published is one of these.
      if (e->address() != "10.0.0.1" && e->address() != "10.0.0.2" && e->address() != "10.0.0.3")
        ++misses;
      c.done(*e, {false, std::chrono::microseconds(50)});
      ++picks;
    }
  };
  std::thread a(worker), b(worker);
  for (int i = 0; i < 200; ++i) {
    c.update(i % 2 ? hosts({"10.0.0.1", "10.0.0.2"}) : hosts({"10.0.0.2", "10.0.0.3"}));
    std::this_thread::yield();
  }
  while (picks.load() < 1000) std::this_thread::yield();
  stop = true;
  a.join();
  b.join();
  EXPECT_EQ(misses.load(), 0u);
}

}  // namespace
}  // namespace trafficcop::lb
