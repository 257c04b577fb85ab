// SPDX-License-Identifier: MIT
// The pool policy of an HTTP/2 attempt (h2_client.hpp: h2_pooled_round_trip): which
// connection a request goes on, and when a new one is made.
#include <boost/asio/this_coro.hpp>

#include "core/stream_io.hpp"
#include "upstream/connector.hpp"
#include "upstream/h1_exchange.hpp"
#include "upstream/h2_client.hpp"

namespace trafficcop::upstream {
namespace {

round_trip_result failed(proxy_error e) { return {nullptr, std::move(e)}; }

}  // namespace

asio::awaitable<h2_attempt> h2_pooled_round_trip(outbound_request& req, const std::string& key,
                                                 connector& connect, const h2_policy& policy,
                                                 const h1_options& h1, const h2_client* avoid,
                                                 const retired_flag* retired) {
  auto ex = co_await asio::this_coro::executor;
  auto& pool = asio::use_service<h2_pool>(asio::query(ex, asio::execution::context));
  const bool tls = req.scheme == "https";
  for (;;) {
    // automatic: an upstream that chose HTTP/1.1 in ALPN is not asked again.
    if (policy.mode == http2_mode::automatic && pool.speaks_h2(key) == false)
      co_return h2_attempt{};
    if (io::cancelled(co_await asio::this_coro::cancellation_state))
      co_return h2_attempt{failed(
          {make_error_code(errc::client_gone), error_source::downstream, "client went away"})};
    auto h = pool.find(key, avoid);
    if (!h && pool.connecting(key) > 0) {
      co_await pool.wait_connect(key);  // a connection is on its way: share it
      continue;
    }
    if (!h) {
      h2_pool::connect_guard connecting(pool, key);
      auto r = co_await connect.connect(req);
      if (!r.c) co_return h2_attempt{failed(std::move(r.err))};
      conn_ptr c = std::move(r.c);
      c->key = key;
      if (retired) c->retired = *retired;
      if (tls) {
        auto alpn = policy.mode == http2_mode::always ? alpn_h2_only : alpn_h2_or_http1;
        if (auto err = co_await connect.start_tls(*c, req, alpn))
          co_return h2_attempt{failed(std::move(*err))};
        bool h2 = connector::chose_h2(*c);
        if (!h2 && policy.mode == http2_mode::always)
          co_return h2_attempt{
              failed(upstream_error(errc::upstream_protocol_error,
                                    "upstream did not agree to HTTP/2 in ALPN (http2: always)"))};
        pool.remember(key, h2);
        if (!h2) {
          give_back(std::move(c), h1);  // the HTTP/1.1 path takes it from the pool
          co_return h2_attempt{};
        }
      }
      h = make_h2_client(std::move(c), policy.max_concurrent_streams, policy.idle_timeout);
      if (!h)
        co_return h2_attempt{
            failed(upstream_error(errc::upstream_protocol_error, "HTTP/2 session setup"))};
      // Its stream limit comes with its SETTINGS: requests waiting for this connection must
      // not all be sent before it is known (the excess would be refused).
      if (!co_await h2_wait_settings(*h, connect.connect_timeout()))
        co_return h2_attempt{failed(upstream_error(
            errc::upstream_connect_timeout,
            "HTTP/2: no SETTINGS from " + req.host + ":" + std::to_string(req.port)))};
      pool.add(key, h);
    }
    h2_attempt a;
    a.used = h.get();
    a.result = co_await h2_round_trip(*h, req);
    co_return a;
  }
}

}  // namespace trafficcop::upstream
