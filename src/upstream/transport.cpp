// SPDX-License-Identifier: MIT
// The default transport, a thin dispatcher: it picks the protocol of each request (HTTP/2 as
// http2_mode says, else HTTP/1.1), takes a pooled connection or has the connector make one,
// hands the request to the exchange of that protocol, and decides alone what is replayed.
//
//   connector.cpp    resolve, connect, TLS and ALPN
//   h1_exchange.cpp  one HTTP/1.1 exchange on a connection; the response gives it back
//   h2_pooling.cpp   which HTTP/2 connection a request goes on; h2_client.cpp: the streams
#include <boost/asio/this_coro.hpp>

#include "core/stream_io.hpp"
#include "trafficcop/transport.hpp"
#include "upstream/connector.hpp"
#include "upstream/h1_exchange.hpp"
#include "upstream/h2_client.hpp"
#include "upstream/pool.hpp"

namespace trafficcop {
namespace {

using upstream::conn_ptr;
using upstream::pool_service;

/// HTTP/2 attempts of one request: the first, and a stream refused elsewhere twice.
constexpr int max_h2_attempts = 3;

round_trip_result client_gone() {
  return {nullptr, proxy_error{make_error_code(errc::client_gone), error_source::downstream,
                               "client went away"}};
}

/// RFC 9110 §9.2.2, and Go's Transport rule for replaying a request on a fresh connection.
bool idempotent(const outbound_request& req) {
  return req.method == "GET" || req.method == "HEAD" || req.method == "OPTIONS" ||
         req.method == "TRACE" || req.header.contains("idempotency-key") ||
         req.header.contains("x-idempotency-key");
}

bool without_body(const outbound_request& req) {
  return req.content_length == 0 || req.body == nullptr;
}

/// The one place that decides whether a failed attempt is sent again, from what the attempt
/// says about the upstream having seen it (retry_class). A connect failure has nowhere else
/// to go while an upstream is one address; a refused HTTP/2 stream goes on another connection
/// (the client made sure no body byte was taken); a request on a pooled HTTP/1.1 connection
/// that the upstream had closed is replayed on a new one only if it is idempotent and has no
/// body, as Go's Transport does.
bool may_replay(const proxy_error& e, const outbound_request& req, bool reused_connection) {
  switch (e.retry) {
    case retry_class::refused:
      return true;
    case retry_class::stale_connection:
      return reused_connection && idempotent(req) && without_body(req);
    case retry_class::connect_failure:
    case retry_class::none:
      return false;
  }
  return false;
}

class transport_impl final : public transport {
 public:
  explicit transport_impl(const http1_transport_options& o)
      : o_(o),
        connector_(o.connect_timeout, o.tls),
        h1_{o.max_response_header_bytes, o.idle_timeout, o.max_idle_per_host},
        h2_{o.http2, o.max_concurrent_streams, o.idle_timeout} {}

  asio::awaitable<round_trip_result> round_trip(outbound_request& req) override {
    // The pool key: this transport, scheme, host and port. Built in a per-thread buffer; a
    // new connection keeps its own copy (once per connection, not per request).
    thread_local std::string key;
    if (o_.http2 != http2_mode::never) {
      bool upgrade = req.header.contains("upgrade");
      if (upgrade && o_.http2 == http2_mode::always)
        co_return round_trip_result{
            nullptr, proxy_error{make_error_code(errc::upgrade_needs_http1), error_source::internal,
                                 "protocol upgrade to an HTTP/2-only upstream"}};
      if (!upgrade && (req.scheme == "https" || o_.http2 == http2_mode::always)) {
        std::string h2_key = make_key(req);  // not `key`: other coroutines share the buffer
        if (auto r = co_await round_trip_h2(req, h2_key)) co_return std::move(*r);
        // else the upstream chose HTTP/1.1
      }
    }
    key.clear();
    append_key(key, req);
    co_return co_await round_trip_h1(req, key);
  }

 private:
  asio::awaitable<std::optional<round_trip_result>> round_trip_h2(outbound_request& req,
                                                                  const std::string& key) {
    const upstream::h2_client* refused_by = nullptr;  // a refused stream goes elsewhere
    for (int attempt = 1;; ++attempt) {
      auto a = co_await upstream::h2_pooled_round_trip(req, key, connector_, h2_, h1_, refused_by);
      if (!a.result) co_return std::nullopt;
      auto& r = *a.result;
      if (r.response || !may_replay(r.error, req, true)) co_return std::move(r);
      if (attempt == max_h2_attempts)
        co_return round_trip_result{
            nullptr, upstream::upstream_error(errc::upstream_closed,
                                              "HTTP/2 streams refused by the upstream")};
      refused_by = a.used;
    }
  }

  asio::awaitable<round_trip_result> round_trip_h1(outbound_request& req, std::string& key) {
    auto ex = co_await asio::this_coro::executor;
    auto& pool = asio::use_service<pool_service>(asio::query(ex, asio::execution::context));
    // A request that can be replayed skips the liveness peek: if the upstream closed the
    // connection meanwhile, the exchange fails before any answer and is replayed.
    bool replayable = idempotent(req) && without_body(req);
    for (bool first = true;; first = false) {
      if (io::cancelled(co_await asio::this_coro::cancellation_state)) co_return client_gone();
      conn_ptr c = first ? pool.take(key, !replayable) : nullptr;
      bool reused = c != nullptr;
      if (!c) {
        auto r = co_await connector_.connect(req);
        if (!r.c) co_return round_trip_result{nullptr, std::move(r.err)};
        c = std::move(r.c);
        append_key(c->key, req);  // not `key`: other coroutines used the buffer meanwhile
        if (req.scheme == "https") {
          if (auto err = co_await connector_.start_tls(*c, req))
            co_return round_trip_result{nullptr, std::move(*err)};
        }
      }
      auto res = co_await upstream::h1_round_trip(req, std::move(c), h1_);
      if (res.response || !may_replay(res.error, req, reused)) co_return res;
    }
  }

  std::string make_key(const outbound_request& req) const {
    std::string k;
    append_key(k, req);
    return k;
  }

  void append_key(std::string& key, const outbound_request& req) const {
    char num[24];
    auto at = [&](std::uint64_t v) {
      char* e = num + sizeof num;
      char* b = e;
      do *--b = static_cast<char>('0' + v % 10);
      while ((v /= 10) != 0);
      key.append(b, e);
    };
    at(reinterpret_cast<std::uintptr_t>(this));
    key += req.scheme == "https" ? "|s|" : "|";
    key += req.host;
    key += ':';
    at(req.port);
  }

  http1_transport_options o_;
  upstream::connector connector_;
  upstream::h1_options h1_;
  upstream::h2_policy h2_;
};

}  // namespace

std::shared_ptr<transport> make_http1_transport(http1_transport_options opts) {
  return std::make_shared<transport_impl>(opts);
}

}  // namespace trafficcop
