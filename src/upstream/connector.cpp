// SPDX-License-Identifier: MIT
// Resolve, connect and TLS towards an upstream (connector.hpp).
#include "upstream/connector.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "core/log.hpp"
#include "http/proxy_protocol.hpp"
#include "upstream/dispatch.hpp"

namespace trafficcop::upstream {

using asio::ip::tcp;

namespace {
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

/// The PROXY header for a connection made for `req`: its inbound client and the address that
/// client reached; v1 UNKNOWN / v2 LOCAL without them (a health check).
std::string proxy_header(const outbound_request& req, std::uint8_t version) {
  std::optional<tcp::endpoint> src, dst;
  if (req.inbound) {
    src = proxy_protocol::parse_endpoint(req.inbound->remote_addr);
    dst = proxy_protocol::parse_endpoint(req.inbound->local_addr);
  }
  return version == 1 ? proxy_protocol::make_v1(src, dst) : proxy_protocol::make_v2(src, dst);
}
}  // namespace

proxy_error upstream_error(errc e, std::string detail, retry_class retry) {
  return {make_error_code(e), error_source::upstream, std::move(detail), retry};
}

connector::connector(std::chrono::milliseconds connect_timeout, const upstream_tls_options& tls,
                     const breaker_options* limits, breaker_state* counts,
                     std::uint8_t send_proxy_protocol)
    : timeout_(connect_timeout),
      tls_(tls),
      limits_(limits),
      counts_(counts),
      send_proxy_(send_proxy_protocol) {
  if (tls.insecure_skip_verify)
    log::warn("upstream TLS: insecure_skip_verify is on: any certificate is accepted (tests only)");
}

asio::awaitable<connector::result> connector::connect(const outbound_request& req) {
  if (!counts_) co_return co_await dial(req);
  auto over = [](std::uint32_t n, std::uint32_t max) { return max != 0 && n >= max; };
  if (over(counts_->connections.load(std::memory_order_relaxed), limits_->max_connections))
    co_return result{nullptr,
                     proxy_error{make_error_code(errc::circuit_open), error_source::upstream,
                                 "circuit breaker: max_connections reached"}};
  if (over(counts_->pending.fetch_add(1, std::memory_order_relaxed), limits_->max_pending)) {
    counts_->pending.fetch_sub(1, std::memory_order_relaxed);
    co_return result{nullptr,
                     proxy_error{make_error_code(errc::circuit_open), error_source::upstream,
                                 "circuit breaker: max_pending reached"}};
  }
  auto r = co_await dial(req);
  counts_->pending.fetch_sub(1, std::memory_order_relaxed);
  if (r.c) {
    counts_->connections.fetch_add(1, std::memory_order_relaxed);
    r.c->open_count = &counts_->connections;
    r.c->idle_count = &counts_->idle;
  }
  co_return r;
}

asio::awaitable<connector::result> connector::dial(const outbound_request& req) {
  auto ex = co_await asio::this_coro::executor;
  tcp::socket sock(ex);
  tcp::resolver resolver(ex);
  // One deadline for resolving and connecting together.
  watchdog wd(ex, [&sock, &resolver] {
    resolver.cancel();
    error_code ignored;
    sock.close(ignored);
  });
  auto failed = [](errc e, std::string detail) {
    return result{nullptr, upstream_error(e, std::move(detail), retry_class::connect_failure)};
  };
  error_code ec;
  auto addr = asio::ip::make_address(req.address.empty() ? req.host : req.address, ec);
  std::vector<tcp::endpoint> eps;
  wd.arm(timeout_);
  if (!ec) {
    eps.emplace_back(addr, req.port);
  } else {
    auto [rec, results] =
        co_await resolver.async_resolve(req.host, std::to_string(req.port), use_nothrow);
    if (rec && wd.expired())
      co_return failed(errc::upstream_connect_timeout, "resolve " + req.host + ": timed out");
    if (rec)
      co_return failed(errc::upstream_connect_failed, "resolve " + req.host + ": " + rec.message());
    for (auto& r : results) eps.push_back(r.endpoint());
  }
  auto [cec, ep] = co_await asio::async_connect(sock, eps, use_nothrow);
  bool timed_out = wd.expired();
  wd.disarm();
  std::string where = req.host + ":" + std::to_string(req.port);
  if (!req.address.empty()) where += " (" + req.address + ")";
  if (timed_out)
    co_return failed(errc::upstream_connect_timeout, "connect " + where + ": timed out");
  if (cec)
    co_return failed(errc::upstream_connect_failed, "connect " + where + ": " + cec.message());
  sock.set_option(tcp::no_delay(true), ec);
  sock.non_blocking(true, ec);  // writes try a synchronous write first
  if (send_proxy_ != 0) {
    std::string header = proxy_header(req, send_proxy_);
    auto [wec, wn] = co_await asio::async_write(sock, asio::buffer(header), use_nothrow);
    if (wec)
      co_return failed(errc::upstream_connect_failed,
                       "PROXY header to " + where + ": " + wec.message());
  }
  auto c = std::make_unique<conn>(std::move(sock));
  auto a = ep.address();
  c->peer =
      (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
  co_return result{std::move(c), {}};
}

asio::awaitable<std::optional<proxy_error>> connector::start_tls(conn& c,
                                                                 const outbound_request& req,
                                                                 std::string_view alpn) {
  auto& wd = c.io.deadline();
  wd.arm(timeout_);
  if (!tls_.error().empty())
    co_return upstream_error(errc::upstream_connect_failed, "upstream TLS: " + tls_.error());
  std::string why = co_await tls_.handshake(c, req.host, alpn);
  bool timed_out = wd.expired();
  wd.disarm();
  if (why.empty()) co_return std::nullopt;
  std::string where = req.host + ":" + std::to_string(req.port);
  if (timed_out)
    co_return upstream_error(errc::upstream_connect_timeout,
                             "TLS handshake with " + where + ": timed out",
                             retry_class::connect_failure);
  log::error("TLS handshake with {} failed: {}", where, why);
  // No request byte was sent: another endpoint may take it.
  co_return upstream_error(errc::upstream_connect_failed,
                           "TLS handshake with " + where + ": " + why,
                           retry_class::connect_failure);
}

bool connector::chose_h2(const conn& c) {
  const unsigned char* p = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(c.io.tls()->native_handle(), &p, &len);
  return len == 2 && p[0] == 'h' && p[1] == '2';
}

}  // namespace trafficcop::upstream
