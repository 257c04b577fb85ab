// SPDX-License-Identifier: MIT
// The cost of choosing an endpoint (src/lb/cluster.hpp): pick() and done() of one attempt, per
// policy, for upstreams of 3 and 1,000 endpoints (issue 9). Equal weights, except the
// `weighted` rows (weights 1..5), where round robin runs nginx's O(n) smooth weighted pass.
#include <benchmark/benchmark.h>

#include <string>

#include "lb/cluster.hpp"

namespace {

namespace lb = trafficcop::lb;

void BM_pick(benchmark::State& state, lb::policy p, bool weighted) {
  lb::cluster_options o;
  o.name = "bench";
  o.lb = p;
  auto n = static_cast<std::size_t>(state.range(0));
  for (std::size_t i = 0; i < n; ++i)
    o.endpoints.push_back({"10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256), 8080,
                           weighted ? static_cast<std::uint32_t>(1 + i % 5) : 1});
  lb::cluster c(o);
  trafficcop::request in;
  in.remote_addr = "192.0.2.7:40000";
  in.header.add("Host", "api.example.com");
  std::uint32_t k = 0;
  for (auto _ : state) {
    in.remote_addr[10] = static_cast<char>('0' + (k++ % 10));  // another client each time
    auto* e = c.pick({&in, 0});
    benchmark::DoNotOptimize(e);
    c.done(*e, {false, std::chrono::microseconds(200)});
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

#define LB_ROWS(name, policy, weighted) \
  BENCHMARK_CAPTURE(BM_pick, name, policy, weighted)->Arg(3)->Arg(1000)

LB_ROWS(round_robin, lb::policy::round_robin, false);
LB_ROWS(round_robin_weighted, lb::policy::round_robin, true);
LB_ROWS(least_request, lb::policy::least_request, false);
LB_ROWS(peak_ewma, lb::policy::peak_ewma, false);
LB_ROWS(ring_hash, lb::policy::ring_hash, false);
LB_ROWS(random, lb::policy::random, false);
LB_ROWS(random_weighted, lb::policy::random, true);

}  // namespace

BENCHMARK_MAIN();
