// SPDX-License-Identifier: MIT
// Micro-benchmarks of the per-worker upstream keep-alive pool (src/upstream/pool.hpp).
//
// One connected loopback pair (acceptor on 127.0.0.1:0, a client socket, the accepted server
// side kept open and silent); the client side goes into the pool as an upstream `conn`, and each
// iteration is one take() + put() round trip, as one proxied request does. take() peeks the
// socket for a close by the upstream (recv MSG_PEEK|MSG_DONTWAIT, a system call): that is part
// of what is measured; BM_is_idle_and_open is the peek alone. The transport skips the peek for
// replayable requests (take(key, false): a stale connection fails before any answer and the
// request is retried): BM_pool_take_put_unchecked. The io_context is never run, so the pool's
// sweep timer never fires.
#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "upstream/pool.hpp"

namespace {

namespace asio = boost::asio;
using asio::ip::tcp;
using trafficcop::upstream::conn;
using trafficcop::upstream::conn_ptr;
using trafficcop::upstream::pool_service;

constexpr std::chrono::milliseconds idle_timeout{90'000};  // the transport's defaults
constexpr std::size_t max_idle = 64;

/// `n` connected loopback pairs: the client sides as pool connections, the accepted sides held.
struct loopback {
  loopback(asio::io_context& ioc, std::size_t n) : acceptor(ioc) {
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor.open(ep.protocol());
    acceptor.bind(ep);
    acceptor.listen();
    auto port = acceptor.local_endpoint().port();
    key = "127.0.0.1:" + std::to_string(port);
    for (std::size_t i = 0; i < n; ++i) {
      tcp::socket s(ioc);
      s.connect(tcp::endpoint(ep.address(), port));
      s.set_option(tcp::no_delay(true));
      servers.push_back(acceptor.accept());
      clients.push_back(std::make_unique<conn>(std::move(s)));
      clients.back()->key = key;  // as the transport sets it, once per connection
    }
  }
  tcp::acceptor acceptor;
  std::string key;
  std::vector<tcp::socket> servers;
  std::vector<conn_ptr> clients;
};

void pool_put(pool_service& pool, conn_ptr c) { pool.put(std::move(c), idle_timeout, max_idle); }

/// take() + put() of the newest of `state.range(0)` idle connections to the same upstream.
void take_put(benchmark::State& state, bool check) {
  asio::io_context ioc;
  auto& pool = asio::use_service<pool_service>(ioc);
  loopback lb(ioc, static_cast<std::size_t>(state.range(0)));
  for (auto& c : lb.clients) pool_put(pool, std::move(c));
  for (auto _ : state) {
    conn_ptr c = pool.take(lb.key, check);
    if (!c) {
      state.SkipWithError("take() found no live connection");
      break;
    }
    pool_put(pool, std::move(c));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void BM_pool_take_put(benchmark::State& state) { take_put(state, true); }
BENCHMARK(BM_pool_take_put)->ArgName("idle")->Arg(1)->Arg(16);

void BM_pool_take_put_unchecked(benchmark::State& state) { take_put(state, false); }
BENCHMARK(BM_pool_take_put_unchecked)->ArgName("idle")->Arg(1);

/// take() for an upstream with no idle connection: the lookup alone.
void BM_pool_take_miss(benchmark::State& state) {
  asio::io_context ioc;
  auto& pool = asio::use_service<pool_service>(ioc);
  loopback lb(ioc, 1);
  pool_put(pool, std::move(lb.clients[0]));
  const std::string other = "127.0.0.1:1";
  for (auto _ : state) {
    conn_ptr c = pool.take(other, true);
    benchmark::DoNotOptimize(c);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_pool_take_miss);

/// The liveness peek alone: one recv(MSG_PEEK | MSG_DONTWAIT) that finds nothing.
void BM_is_idle_and_open(benchmark::State& state) {
  asio::io_context ioc;
  loopback lb(ioc, 1);
  for (auto _ : state) {
    bool open = trafficcop::upstream::is_idle_and_open(lb.clients[0]->io.socket());
    if (!open) {
      state.SkipWithError("the connection looks closed");
      break;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_is_idle_and_open);

}  // namespace

BENCHMARK_MAIN();
