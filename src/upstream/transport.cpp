// SPDX-License-Identifier: MIT
// The default transport, a thin dispatcher: it picks the protocol of each request (HTTP/2 as
// http2_mode says, else HTTP/1.1), takes a pooled connection or has the connector make one,
// hands the request to the exchange of that protocol, and decides alone what is replayed.
//
//   connector.cpp    resolve, connect, TLS and ALPN
//   h1_exchange.cpp  one HTTP/1.1 exchange on a connection; the response gives it back
//   h2_pooling.cpp   which HTTP/2 connection a request goes on; h2_client.cpp: the streams
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <future>
#include <thread>
#include <unordered_map>

#include "core/counters.hpp"
#include "core/failures.hpp"
#include "core/log.hpp"

#include "core/stream_io.hpp"
#include "trafficcop/transport.hpp"
#include "upstream/connector.hpp"
#include "upstream/dispatch.hpp"
#include "upstream/h1_exchange.hpp"
#include "upstream/h2_client.hpp"
#include "upstream/pool.hpp"

namespace trafficcop {
namespace {

using upstream::conn_ptr;
using upstream::pool_service;

std::atomic<std::uint64_t> next_transport_id{1};

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
    case retry_class::reset_before_response:
      return reused_connection && idempotent(req) && without_body(req);
    case retry_class::connect_failure:
    case retry_class::none:
      return false;
  }
  return false;
}

/// The thread that runs active health checks and DNS discovery for every upstream: never a
/// worker, so neither costs the request path anything. Started on first use, stopped at exit.
class control_thread {
 public:
  static asio::io_context& context() {
    static control_thread t;
    return t.ctx_;
  }
  ~control_thread() {
    ctx_.stop();
    if (thread_.joinable()) thread_.join();
  }

 private:
  control_thread() : work_(ctx_.get_executor()), thread_([this] { ctx_.run(); }) {}
  asio::io_context ctx_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

class transport_impl final : public transport, public std::enable_shared_from_this<transport_impl> {
 public:
  explicit transport_impl(const http1_transport_options& o,
                          std::shared_ptr<lb::cluster> cluster = nullptr,
                          const upstream::retry_policy& retry = {},
                          const upstream::breaker_options& breakers = {},
                          const upstream::health_check_options& health = {})
      : o_(o),
        health_(health),
        cluster_(std::move(cluster)),
        retry_(retry),
        breakers_(breakers),
        connector_(o.connect_timeout, o.tls, cluster_ ? &breakers_ : nullptr,
                   cluster_ ? &counts_ : nullptr, o.send_proxy_protocol),
        h1_{o.max_response_header_bytes, o.idle_timeout, o.max_idle_per_host},
        h2_{o.http2, o.max_concurrent_streams, o.idle_timeout} {}

  std::vector<std::shared_ptr<lb::endpoint>> endpoints() const { return cluster_->endpoints(); }

  asio::awaitable<round_trip_result> round_trip(outbound_request& req) override {
    if (cluster_) co_return co_await round_trip_cluster(req);
    co_return co_await attempt(req);
  }

  /// One checker per endpoint on the control thread, until the endpoint leaves; each holds
  /// the transport alive.
  void start_health_checks(const std::vector<std::shared_ptr<lb::endpoint>>& eps) {
    if (!health_.enabled) return;
    for (const auto& e : eps) {
      asio::co_spawn(control_thread::context(), check_loop(shared_from_this(), e),
                     [name = e->authority()](std::exception_ptr ex) {
                       if (ex) note_coroutine_failure("health checker of " + name, ex);
                     });
    }
  }

  /// Re-resolves the cluster's names on the control thread; new endpoints get checkers.
  /// Waits for the first round (bounded by the resolver's timeouts), so that a proxy starts
  /// with its names resolved as far as DNS allows.
  void start_discovery(const upstream::resolve_options& r) {
    std::weak_ptr<transport_impl> weak = shared_from_this();
    auto resolved = std::make_shared<std::promise<void>>();
    auto first = resolved->get_future();
    asio::co_spawn(control_thread::context(),
                   upstream::discovery_loop(
                       cluster_, cluster_->options().endpoints, r,
                       [weak](const lb::cluster::change& ch) {
                         if (auto self = weak.lock()) self->start_health_checks(ch.added);
                       },
                       [weak] {
                         auto self = weak.lock();
                         return self && !self->stopped_.load();
                       },
                       [resolved] { resolved->set_value(); }),
                   [name = cluster_->options().name](std::exception_ptr ex) {
                     if (ex) note_coroutine_failure("service discovery of " + name, ex);
                   });
    auto names = cluster_->options().endpoints.size();
    auto servers = std::max<std::size_t>(r.servers.size(), 1);
    first.wait_for(2 * r.timeout * static_cast<int>(names * servers) + std::chrono::seconds(1));
  }

 private:
  /// One attempt at req.host:req.port, over the protocol http2_mode picks; a stale pooled
  /// connection or a refused stream is replayed inside it (may_replay).
  /// `retired`: the endpoint's flag, watched by the connections made for it; null when the
  /// address never leaves (a transport without load balancing).
  asio::awaitable<round_trip_result> attempt(outbound_request& req,
                                             const upstream::retired_flag* retired = nullptr) {
    // Go's ResponseHeaderTimeout: the transport's bound on the head, if it is the shorter.
    if (auto t = o_.response_header_timeout;
        t.count() > 0 && (req.head_timeout.count() == 0 || t < req.head_timeout))
      req.head_timeout = t;
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
        if (auto r = co_await round_trip_h2(req, h2_key, retired)) co_return std::move(*r);
        // else the upstream chose HTTP/1.1
      }
    }
    key.clear();
    append_key(key, req);
    co_return co_await round_trip_h1(req, key, retired);
  }

  asio::awaitable<std::optional<round_trip_result>> round_trip_h2(
      outbound_request& req, const std::string& key, const upstream::retired_flag* retired) {
    const upstream::h2_client* refused_by = nullptr;  // a refused stream goes elsewhere
    for (int attempt = 1;; ++attempt) {
      auto a = co_await upstream::h2_pooled_round_trip(req, key, connector_, h2_, h1_, refused_by,
                                                       retired);
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

  asio::awaitable<round_trip_result> round_trip_h1(outbound_request& req, std::string& key,
                                                   const upstream::retired_flag* retired) {
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
        if (retired) c->retired = *retired;
        if (req.scheme == "https") {
          if (auto err = co_await connector_.start_tls(*c, req))
            co_return round_trip_result{nullptr, std::move(*err)};
        }
      }
      auto res = co_await upstream::h1_round_trip(req, std::move(c), h1_);
      if (res.response || !may_replay(res.error, req, reused)) co_return res;
    }
  }

  /// An upstream of many endpoints: an endpoint per attempt, retries elsewhere as the policy
  /// allows, the max_requests breaker.
  asio::awaitable<round_trip_result> round_trip_cluster(outbound_request& req) {
    auto& b = budget();
    b.count(budget_window::request);
    // Counted first, then checked: concurrent workers cannot all pass the same last slot.
    if (counts_.requests.fetch_add(1, std::memory_order_relaxed) >= breakers_.max_requests &&
        breakers_.max_requests != 0) {
      counts_.requests.fetch_sub(1, std::memory_order_relaxed);
      rejections_.local().add();
      co_return failed(errc::circuit_open, "circuit breaker: max_requests reached");
    }
    struct release {
      std::atomic<std::uint32_t>& n;
      ~release() { n.fetch_sub(1, std::memory_order_relaxed); }
    } in_flight{counts_.requests};

    if (retry_.per_try_timeout.count() > 0) req.head_timeout = retry_.per_try_timeout;
    lb::pick_input p{req.inbound, 0};
    std::string tried;  // built only on a retry: the first try allocates nothing
    const lb::endpoint* first = nullptr;
    for (std::uint32_t tries = 1;; ++tries) {
      auto* e = cluster_->pick(p);
      if (!e) {
        auto r = failed(errc::no_healthy_upstream, "no healthy upstream");
        r.tries = tries - 1;
        if (tries > 2) r.tried = std::move(tried);
        co_return r;
      }
      if (tries == 1) first = e;
      if (tries == 2) tried = first->authority();
      if (tries > 1) {
        tried += ", ";
        tried += e->authority();
      }
      req.host = e->host();
      req.address = e->address();
      req.port = e->port();
      if (req.host_follows_endpoint) req.header.set("Host", host_for(*e, req.scheme));
      std::size_t index = e->index();  // `e` may be gone after done()
      auto t0 = lb::clock::now();
      auto r = co_await attempt(req, &e->retired_flag());
      auto latency = lb::clock::now() - t0;
      int status = r.response ? r.response->status : 0;
      bool failure = r.response ? status == 502 || status == 503 || status == 504
                                : r.error.source == error_source::upstream &&
                                      r.error.ec != make_error_code(errc::circuit_open);
      count_outcome(*e, r);
      cluster_->done(*e, {failure, latency});
      r.tries = tries;
      if (tries > 1) r.tried = tried;
      if (tries > retry_.attempts || !should_retry(r, req) || !b.allow_retry(retry_)) co_return r;
      r.response.reset();  // a retried 5xx: its connection is closed, not pooled
      b.count(budget_window::retry);
      retries_.local().add();
      if (index < 64) p.tried |= std::uint64_t{1} << index;
      if (auto wait = backoff(tries); wait.count() > 0) {
        asio::steady_timer t(co_await asio::this_coro::executor, wait);
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
      }
      if (io::cancelled(co_await asio::this_coro::cancellation_state)) co_return client_gone();
    }
  }

 public:
  /// Ends the background work (health checks, discovery) at its next wake-up.
  void stop() { stopped_ = true; }

  upstream::upstream_stats stats() const {
    upstream::upstream_stats s;
    retries_.each([&](const counters::cell& c) { s.retries += c.get(); });
    rejections_.each([&](const counters::cell& c) { s.breaker_rejections += c.get(); });
    s.connections = counts_.connections.load(std::memory_order_relaxed);
    s.idle = counts_.idle.load(std::memory_order_relaxed);
    s.pending = counts_.pending.load(std::memory_order_relaxed);
    s.requests = counts_.requests.load(std::memory_order_relaxed);
    auto at = [](std::uint32_t n, std::uint32_t max) { return max != 0 && n >= max; };
    s.circuit_open = at(s.requests, breakers_.max_requests) ||
                     at(s.connections, breakers_.max_connections) ||
                     at(s.pending, breakers_.max_pending);
    return s;
  }

 private:
  /// An attempt's outcome in the endpoint's counters (metrics).
  void count_outcome(lb::endpoint& e, const round_trip_result& r) {
    auto& s = e.stats().local();
    if (r.response)
      s.responses.add(r.response->status);
    else if (r.error.ec == make_error_code(errc::circuit_open))
      rejections_.local().add();  // max_connections or max_pending (the connector's breakers)
    else if (r.error.retry == retry_class::connect_failure)
      s.connect_failures.add();
    else if (r.error.source == error_source::upstream)
      s.errors.add();
  }

  static asio::awaitable<void> check_loop(std::shared_ptr<transport_impl> self,
                                          std::shared_ptr<lb::endpoint> e) {
    const auto& h = self->health_;
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer timer(ex);
    std::uint64_t seed = reinterpret_cast<std::uintptr_t>(e.get()) ^ 0x9E3779B97F4A7C15ULL;
    auto jitter = [&](std::chrono::milliseconds span) {
      seed ^= seed << 13;
      seed ^= seed >> 7;
      seed ^= seed << 17;
      return std::chrono::milliseconds(
          static_cast<std::int64_t>(seed % static_cast<std::uint64_t>(span.count() + 1)));
    };
    timer.expires_after(jitter(h.interval));  // spread the first checks over an interval
    std::uint32_t passed = 0, failed = 0;
    for (;;) {
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
      // It left the upstream (service discovery), or the upstream left the config (reload).
      if (e->retired() || self->stopped_.load()) co_return;
      auto started = lb::clock::now();
      std::string why = co_await self->check_once(*e);
      if (why.empty()) {
        failed = 0;
        if (++passed == h.healthy_threshold && !e->healthy()) {
          e->set_healthy(true);
          log::warn("endpoint {} of {} is up: {} checks passed", e->authority(),
                    self->cluster_->options().name, passed);
        }
      } else {
        passed = 0;
        if (++failed == h.unhealthy_threshold && e->healthy()) {
          e->set_healthy(false);
          log::warn("endpoint {} of {} is down: {} checks failed: {}", e->authority(),
                    self->cluster_->options().name, failed, why);
        }
      }
      // The next check an interval after this one started (never two at once), ±10%.
      auto next = h.interval - h.interval / 10 + jitter(h.interval / 5);
      timer.expires_at(started + next);
    }
  }

  /// One check: "" if the endpoint passed, else why not.
  asio::awaitable<std::string> check_once(const lb::endpoint& e) {
    outbound_request req;
    req.method = "GET";
    req.scheme = health_.scheme;
    req.host = e.host();
    req.address = e.address();
    req.port = e.port();
    req.target = health_.path;
    req.header.add("Host", host_for(e, req.scheme));
    req.header.add("User-Agent", "trafficcop-health-check");
    req.response_timeout = health_.timeout;
    if (health_.tcp) {
      auto r = co_await connector_.connect(req);
      co_return r.c ? std::string{} : r.err.detail;
    }
    auto r = co_await attempt(req, &e.retired_flag());
    if (!r.response) co_return r.error.detail;
    int status = r.response->status;
    // Read the body out so that the connection is pooled for the next check.
    char scratch[4096];
    for (;;) {
      auto rd = co_await r.response->body().read(asio::buffer(scratch));
      if (rd.ec || rd.n == 0) break;
    }
    if (status < health_.expected_min || status > health_.expected_max)
      co_return "status " + std::to_string(status);
    co_return std::string{};
  }

  /// The retry policy's conditions. The body: a request whose body reached the upstream is
  /// never sent again (nothing is buffered to replay it); before any byte was sent (a connect
  /// failure, a refused stream) any request may go elsewhere.
  bool should_retry(const round_trip_result& r, const outbound_request& req) const {
    bool replayable = idempotent(req) && without_body(req);
    if (r.response) {
      int s = r.response->status;
      bool on =
          (s == 502 && retry_.on_502) || (s == 503 && retry_.on_503) || (s == 504 && retry_.on_504);
      return on && replayable;
    }
    switch (r.error.retry) {
      case retry_class::connect_failure:
        return retry_.on_connect_failure;
      case retry_class::refused:
        return retry_.on_refused_stream;
      case retry_class::reset_before_response:
        return retry_.on_reset_before_response && replayable;
      case retry_class::none:
        // A response head timeout is a 504 to the client.
        return retry_.on_504 && replayable && r.error.ec == make_error_code(errc::upstream_timeout);
    }
    return false;
  }

  std::chrono::milliseconds backoff(std::uint32_t tries) {
    std::chrono::milliseconds cap =
        retry_.backoff_base * (std::int64_t{1} << std::min(tries - 1, 20u));
    cap = std::min(cap, retry_.backoff_max);
    if (cap.count() <= 0) return cap;
    thread_local std::uint64_t s = 0x9E3779B97F4A7C15ULL ^ reinterpret_cast<std::uintptr_t>(&s);
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return std::chrono::milliseconds(
        static_cast<std::int64_t>(s % static_cast<std::uint64_t>(cap.count() + 1)));
  }

  /// Requests and retries of this upstream on this worker, in 1 s buckets over 10 s.
  struct budget_window {
    enum kind { request = 0, retry = 1 };
    std::int64_t second[10] = {};
    std::uint32_t n[10][2] = {};

    static std::int64_t now_s() {
      return std::chrono::duration_cast<std::chrono::seconds>(lb::clock::now().time_since_epoch())
          .count();
    }
    void count(kind k) {
      auto now = now_s();
      auto i = static_cast<std::size_t>(now % 10);
      if (second[i] != now) {
        second[i] = now;
        n[i][request] = n[i][retry] = 0;
      }
      ++n[i][k];
    }
    bool allow_retry(const upstream::retry_policy& p) const {
      auto now = now_s();
      std::uint64_t reqs = 0, retries = 0;
      for (std::size_t i = 0; i < 10; ++i) {
        if (second[i] <= now - 10) continue;
        reqs += n[i][request];
        retries += n[i][retry];
      }
      return retries < reqs * p.budget_percent / 100 + std::uint64_t{p.budget_min_per_second} * 10;
    }
  };

  budget_window& budget() {
    // This worker's window, by transport id; the last one is cached (one upstream is the
    // common case), so the table is looked up only when the upstream changes.
    thread_local std::unordered_map<std::uint64_t, budget_window> windows;
    thread_local std::uint64_t last_id = 0;
    thread_local budget_window* last = nullptr;
    if (last_id != id_) {
      last = &windows[id_];  // nodes stay put when the table grows
      last_id = id_;
    }
    return *last;
  }

  static round_trip_result failed(errc e, std::string detail) {
    return {nullptr, upstream::upstream_error(e, std::move(detail))};
  }

  /// Host for an endpoint: its host (a name even when resolved) and port, without the
  /// scheme's default port (as for a URL).
  static std::string host_for(const lb::endpoint& e, const std::string& scheme) {
    std::string h = e.host().find(':') != std::string::npos ? "[" + e.host() + "]" : e.host();
    if (e.port() != (scheme == "https" ? 443 : 80)) h += ":" + std::to_string(e.port());
    return h;
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
    if (!req.address.empty()) {
      key += '@';
      key += req.address;
    }
    // A connection that sent a PROXY header speaks for that client alone (HAProxy keeps such
    // connections private to their client): only a request with the same header may reuse it.
    if (o_.send_proxy_protocol != 0 && req.inbound) {
      key += "|pp:";
      key += req.inbound->remote_addr;
      key += '>';
      key += req.inbound->local_addr;
    }
  }

  http1_transport_options o_;
  upstream::health_check_options health_;
  std::shared_ptr<lb::cluster> cluster_;
  upstream::retry_policy retry_;
  upstream::breaker_options breakers_;
  upstream::breaker_state counts_;
  counters::per_thread<counters::cell> retries_, rejections_;  // metrics
  std::atomic<bool> stopped_{false};
  std::uint64_t id_ = next_transport_id.fetch_add(1, std::memory_order_relaxed);
  upstream::connector connector_;
  upstream::h1_options h1_;
  upstream::h2_policy h2_;
};

}  // namespace

void upstream::stop_background(transport& t) {
  if (auto* impl = dynamic_cast<transport_impl*>(&t)) impl->stop();
}

std::optional<upstream::upstream_stats> upstream::stats_of(const transport& t) {
  auto* impl = dynamic_cast<const transport_impl*>(&t);
  if (!impl) return std::nullopt;
  return impl->stats();
}

std::shared_ptr<transport> make_transport(transport_options opts) {
  return std::make_shared<transport_impl>(opts);
}

std::shared_ptr<transport> make_http1_transport(http1_transport_options opts) {
  return make_transport(std::move(opts));
}

std::shared_ptr<transport> upstream::make_cluster_transport(const http1_transport_options& o,
                                                            std::shared_ptr<lb::cluster> cluster,
                                                            const retry_policy& retry,
                                                            const breaker_options& breakers,
                                                            const health_check_options& health,
                                                            const resolve_options& resolve) {
  auto t = std::make_shared<transport_impl>(o, std::move(cluster), retry, breakers, health);
  t->start_health_checks(t->endpoints());
  if (resolve.refresh.count() > 0) t->start_discovery(resolve);
  return t;
}

}  // namespace trafficcop
