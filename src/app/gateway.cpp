// SPDX-License-Identifier: MIT
// Config → handler: the route table and one reverse_proxy per route.
#include "app/gateway.hpp"
#include "app/counting_body.hpp"
#include "app/request_identity.hpp"
#include "app/router.hpp"
#include "trafficcop/transport.hpp"

#include <algorithm>
#include <map>

#include "lb/cluster.hpp"
#include "trafficcop/reverse_proxy.hpp"
#include "upstream/dispatch.hpp"

namespace trafficcop::app {
namespace {

void apply_edits(header_map& h, const config::header_edits& e) {
  for (const auto& name : e.remove) h.erase(name);
  for (const auto& [name, value] : e.set) h.set(name, value);
  for (const auto& [name, value] : e.add) h.add(name, value);
}

/// The route table and a handler per route (router.hpp says which route wins); with
/// `metrics`, each request is counted under its route.
class router {
 public:
  router(route_table table, std::vector<handler> handlers,
         std::shared_ptr<const app::metrics::binding> m)
      : table_(std::move(table)), handlers_(std::move(handlers)), metrics_(std::move(m)) {}

  asio::awaitable<void> serve(response_writer& w, request& in) const {
    auto i = table_.match(in);
    if (!metrics_) {
      co_await dispatch(i, w, in);
      co_return;
    }
    counting_body body(in.body);
    in.body = &body;
    co_await dispatch(i, w, in);
    in.body = body.inner();  // `body` dies with this frame
    app::metrics::observe(*metrics_, i == route_table::none ? handlers_.size() : i, in, w,
                          body.bytes);
  }

 private:
  asio::awaitable<void> dispatch(std::size_t i, response_writer& w, request& in) const {
    if (i == route_table::none) {
      w.log().error = "no route";
      co_await write_text(w, 404, "Not Found\n");
      co_return;
    }
    co_await handlers_[i](w, in);
  }

  route_table table_;
  std::vector<handler> handlers_;  // by route index
  std::shared_ptr<const app::metrics::binding> metrics_;
};

/// strip_prefix / prefix_rewrite: the path the next handler sees, and so the one the proxy
/// joins to the upstream URL's base path, starts with `replacement` instead of `prefix`
/// (Go's http.StripPrefix, Caddy's handle_path). The request-target is edited in place and put
/// back before returning, so that the access log shows what the client sent; nothing is
/// allocated once the target's storage is large enough.
handler with_prefix_rewrite(handler next, std::string prefix, std::string replacement) {
  return [next = std::move(next), prefix = std::move(prefix), replacement = std::move(replacement)](
             response_writer& w, request& in) -> asio::awaitable<void> {
    auto [n, head] = prefix_rewrite(in.path(), prefix, replacement);
    in.target.replace(0, n, head);
    // What was replaced: the prefix, or part of it, or the prefix and the '/' after it.
    auto restore = [&, n = n, head_size = head.size()] {
      std::string_view was(prefix.data(), std::min(n, prefix.size()));
      in.target.replace(0, head_size, was);
      if (n > prefix.size()) in.target.insert(prefix.size(), 1, '/');
    };
    try {
      co_await next(w, in);
    } catch (...) {
      restore();
      throw;
    }
    restore();
  };
}

/// `redirect:` routes: the Location from the template, no body.
handler redirect_handler(config::redirect rd, config::header_edits edits) {
  return [rd = std::move(rd), edits = std::move(edits)](response_writer& w,
                                                        request& in) -> asio::awaitable<void> {
    w.header().set("Location", redirect_location(rd.to, in));
    apply_edits(w.header(), edits);
    w.header().set("Content-Length", "0");
    if (co_await w.write_header(rd.status)) co_return;
    co_await w.flush();
  };
}

/// `respond:` routes: a fixed status, headers and body.
handler respond_handler(config::respond rs, config::header_edits edits) {
  std::string length = std::to_string(rs.body.size());
  return [rs = std::move(rs), edits = std::move(edits), length = std::move(length)](
             response_writer& w, request&) -> asio::awaitable<void> {
    if (!rs.body.empty()) w.header().set("Content-Type", "text/plain; charset=utf-8");
    for (const auto& [name, value] : rs.headers) w.header().set(name, value);
    apply_edits(w.header(), edits);
    w.header().set("Content-Length", length);
    if (co_await w.write_header(rs.status)) co_return;
    if (!rs.body.empty())
      if (co_await w.write(asio::buffer(rs.body.data(), rs.body.size()))) co_return;
    co_await w.flush();
  };
}

upstream_tls_options tls_options(const config::upstream_tls& t) {
  return {t.ca_file, t.server_name, t.insecure_skip_verify, t.cert_file, t.key_file};
}

lb::policy to_policy(config::lb_policy p) {
  switch (p) {
    case config::lb_policy::round_robin:
      return lb::policy::round_robin;
    case config::lb_policy::least_request:
      return lb::policy::least_request;
    case config::lb_policy::peak_ewma:
      return lb::policy::peak_ewma;
    case config::lb_policy::ring_hash:
      return lb::policy::ring_hash;
    case config::lb_policy::random:
      return lb::policy::random;
  }
  return lb::policy::round_robin;
}

std::shared_ptr<lb::cluster> cluster_for(const config::upstream& u) {
  lb::cluster_options c;
  c.name = u.name;
  for (const auto& e : u.endpoints) c.endpoints.push_back({e.host, e.port, e.weight});
  c.lb = to_policy(u.load_balancing);
  if (u.hash_on) {
    c.hash.name = u.hash_on->name;
    switch (u.hash_on->what) {
      case config::hash_key::kind::client_ip:
        c.hash.what = lb::hash_on::kind::client_ip;
        break;
      case config::hash_key::kind::path:
        c.hash.what = lb::hash_on::kind::path;
        break;
      case config::hash_key::kind::header:
        c.hash.what = lb::hash_on::kind::header;
        break;
      case config::hash_key::kind::cookie:
        c.hash.what = lb::hash_on::kind::cookie;
        break;
    }
  }
  c.outlier.consecutive_failures = u.outlier.consecutive_failures;
  c.outlier.ejection_time = u.outlier.ejection_time;
  c.outlier.max_ejection_percent = u.outlier.max_ejection_percent;
  c.panic_threshold = u.panic_threshold;
  return std::make_shared<lb::cluster>(std::move(c));
}

upstream::retry_policy retry_for(const config::upstream& u) {
  upstream::retry_policy r;
  const auto& c = u.retries;
  r.attempts = c.attempts;
  auto on = [&](std::string_view what) {
    return std::find(c.on.begin(), c.on.end(), what) != c.on.end();
  };
  r.on_connect_failure = on("connect_failure");
  r.on_refused_stream = on("refused_stream");
  r.on_reset_before_response = on("reset_before_response");
  r.on_502 = on("502");
  r.on_503 = on("503");
  r.on_504 = on("504");
  r.per_try_timeout = c.per_try_timeout;
  r.budget_percent = c.budget_percent;
  r.budget_min_per_second = c.budget_min_per_second;
  r.backoff_base = c.backoff_base;
  r.backoff_max = c.backoff_max;
  return r;
}

std::shared_ptr<transport> transport_for(const config::upstream& u,
                                         std::shared_ptr<lb::cluster> cluster) {
  http1_transport_options o;
  o.connect_timeout = u.connect_timeout;
  o.idle_timeout = u.idle_timeout;
  o.max_idle_per_host = u.max_idle;
  o.send_proxy_protocol = u.send_proxy_protocol;
  o.tls = tls_options(u.tls);
  switch (u.http2) {
    case config::upstream_http2::automatic:
      o.http2 = http2_mode::automatic;
      break;
    case config::upstream_http2::always:
      o.http2 = http2_mode::always;
      break;
    case config::upstream_http2::never:
      o.http2 = http2_mode::never;
      break;
  }
  o.max_concurrent_streams = u.max_concurrent_streams;
  upstream::breaker_options b{u.breaker.max_connections, u.breaker.max_pending,
                              u.breaker.max_requests};
  upstream::health_check_options h;
  if (u.health_check) {
    const auto& c = *u.health_check;
    h.enabled = true;
    h.scheme = u.scheme;
    h.path = c.path;
    h.tcp = c.tcp;
    h.interval = c.interval;
    h.timeout = c.timeout;
    h.healthy_threshold = c.healthy_threshold;
    h.unhealthy_threshold = c.unhealthy_threshold;
    h.expected_min = c.expected_min;
    h.expected_max = c.expected_max;
  }
  upstream::resolve_options r;
  if (u.resolve) {
    r.refresh = u.resolve->refresh;
    r.servers = u.resolve->servers;
    r.timeout = u.resolve->timeout;
  }
  return upstream::make_cluster_transport(o, std::move(cluster), retry_for(u), b, h, r);
}

forwarded_mode to_mode(config::forwarded_policy p) {
  switch (p) {
    case config::forwarded_policy::append:
      return forwarded_mode::append;
    case config::forwarded_policy::replace:
      return forwarded_mode::replace;
    case config::forwarded_policy::off:
      return forwarded_mode::off;
  }
  return forwarded_mode::append;
}

handler proxy_for(const config::config& cfg, const config::route& r, const config::upstream& u,
                  std::shared_ptr<transport> t) {
  reverse_proxy_options o;
  o.upstream = u.url;
  o.transport = std::move(t);
  o.keep_host = r.host_header.value_or(cfg.host_header) == config::host_policy::keep;
  o.forwarded = to_mode(cfg.forwarded);
  o.raw_target = r.upstream_target.value_or(cfg.upstream_target) == config::target_policy::raw;
  o.response_timeout = u.response_timeout;
  // Unset: flush when the upstream pauses (a demanding user expects nginx's behaviour: bytes
  // do not wait for more bytes), see docs/config.md.
  o.flush_interval = r.flush_interval.value_or(cfg.flush_interval.value_or(config::duration{100}));
  o.request_buffering = r.request_buffering.value_or(cfg.request_buffering);
  if (!r.request_headers.set.empty() || !r.request_headers.add.empty() ||
      !r.request_headers.remove.empty())
    o.rewrite = [edits = r.request_headers](const request&, outbound_request& out) {
      apply_edits(out.header, edits);
    };
  // The request id middleware already set the response's id field: the upstream's own line
  // (an echo, or another id) would be a second one. The route's edits still come last.
  std::string drop = cfg.request_id.response ? cfg.request_id.header : std::string();
  if (!r.response_headers.set.empty() || !r.response_headers.add.empty() ||
      !r.response_headers.remove.empty() || !drop.empty())
    o.modify_response = [edits = r.response_headers, drop](upstream_response& res, const request&) {
      if (!drop.empty()) res.header.erase(drop);
      apply_edits(res.header, edits);
      return error_code{};
    };
  return make_reverse_proxy(std::move(o));
}

}  // namespace

handler build_router(const config::config& cfg) { return build_gateway(cfg).h; }

gateway build_gateway(const config::config& cfg, metrics* m,
                      const std::vector<upstream_runtime>& before,
                      const std::vector<std::size_t>& listener_ids,
                      const rate_limit_set* before_limits) {
  gateway g;
  g.rate_limits = build_rate_limits(cfg, m, before_limits);  // may throw: before any upstream
  // One transport (and so one pool per worker) per upstream, shared by its routes. An
  // upstream configured as before keeps its transport: its pools stay warm, its health and
  // balancer state stay, its checks go on.
  std::map<std::string, std::shared_ptr<transport>> transports;
  std::map<std::string, const config::upstream*> upstreams;
  for (const auto& u : cfg.upstreams) {
    auto same = std::find_if(before.begin(), before.end(),
                             [&](const upstream_runtime& r) { return r.cfg == u; });
    if (same != before.end()) {
      g.upstreams.push_back(*same);
    } else {
      auto cluster = cluster_for(u);
      auto t = transport_for(u, cluster);
      g.upstreams.push_back({u.name, std::move(t), std::move(cluster), u});
    }
    transports[u.name] = g.upstreams.back().t;
    upstreams[u.name] = &u;
  }
  std::vector<handler> handlers;
  handlers.reserve(cfg.routes.size());
  for (std::size_t i = 0; i < cfg.routes.size(); ++i) {
    const auto& r = cfg.routes[i];
    route_identity id{r.name.empty() ? std::to_string(i) : r.name, r.upstream};
    if (r.redirect) {
      handlers.push_back(with_rate_limits(redirect_handler(*r.redirect, r.response_headers),
                                          g.rate_limits, r, std::move(id)));
      continue;
    }
    if (r.respond) {
      handlers.push_back(with_rate_limits(respond_handler(*r.respond, r.response_headers),
                                          g.rate_limits, r, std::move(id)));
      continue;
    }
    const auto& u = *upstreams.at(r.upstream);  // the loader checked the name
    handler h;
    if (r.host_rewrite.empty()) {
      h = proxy_for(cfg, r, u, transports[u.name]);
    } else {
      // The route's request edits run last on the outbound request (the proxy's rewrite hook),
      // after the proxy set Host: setting it there wins over host_header, as host_rewrite must.
      config::route with_host = r;
      with_host.request_headers.set.emplace_back("Host", r.host_rewrite);
      h = proxy_for(cfg, with_host, u, transports[u.name]);
    }
    if (r.strip_prefix || !r.prefix_rewrite.empty())
      h = with_prefix_rewrite(std::move(h), r.path_prefix, r.strip_prefix ? "/" : r.prefix_rewrite);
    handlers.push_back(with_rate_limits(std::move(h), g.rate_limits, r, std::move(id)));
  }
  auto rt = std::make_shared<router>(route_table(cfg.routes, cfg.listeners, listener_ids),
                                     std::move(handlers), m ? m->bind(cfg) : nullptr);
  handler h = [rt](response_writer& w, request& in) { return rt->serve(w, in); };
  g.h = with_request_identity(std::move(h), cfg.request_id, cfg.trace_context);
  return g;
}

server_options to_server_options(const config::config& cfg) {
  server_options o;
  o.listen.clear();
  for (const auto& l : cfg.listeners) {
    o.listen.push_back(l.address);
    listener_tls t;
    for (const auto& c : l.tls.certificates) t.certificates.push_back({c.cert_file, c.key_file});
    t.min_version = l.tls.min_version;
    t.ciphers = l.tls.ciphers;
    t.client_ca_file = l.tls.client_ca_file;
    t.require_client_cert = l.tls.require_client_cert;
    if (l.tls.hsts)
      t.hsts =
          listener_hsts{l.tls.hsts->max_age, l.tls.hsts->include_subdomains, l.tls.hsts->preload};
    o.tls.push_back(std::move(t));
    listener_http2 h;
    h.enabled = l.http2.enabled;
    h.h2c = l.http2.h2c;
    h.max_concurrent_streams = l.http2.max_concurrent_streams;
    h.initial_window_size = static_cast<std::uint32_t>(l.http2.initial_window_size);
    h.connection_window_size = static_cast<std::uint32_t>(l.http2.connection_window_size);
    h.max_header_list_size = static_cast<std::uint32_t>(
        std::min<std::uint64_t>(l.http2.max_header_list_size, 0x7fffffff));
    o.http2.push_back(h);
    o.proxy_protocol.push_back(l.proxy_protocol);
  }
  for (const auto& cidr : cfg.trusted_proxies)  // checked by the loader
    if (auto n = ip_network::parse(cidr)) o.trusted_proxies.push_back(*n);
  o.workers = cfg.workers;
  o.max_header_bytes = cfg.limits.max_header_bytes;
  o.max_headers = cfg.limits.max_headers;
  o.max_uri_bytes = cfg.limits.max_uri_bytes;
  o.max_body_bytes = cfg.limits.max_body_bytes;
  switch (cfg.headers_with_underscores) {
    case config::underscore_policy::drop:
      o.headers_with_underscores = underscore_fields::drop;
      break;
    case config::underscore_policy::keep:
      o.headers_with_underscores = underscore_fields::keep;
      break;
    case config::underscore_policy::reject:
      o.headers_with_underscores = underscore_fields::reject;
      break;
  }
  o.max_connections = cfg.limits.max_connections;
  o.max_connections_per_client = cfg.limits.max_connections_per_client;
  o.read_header_timeout = cfg.timeouts.read_header;
  o.idle_timeout = cfg.timeouts.idle;
  o.read_body_timeout = cfg.timeouts.read_body;
  return o;
}

std::vector<std::string> check_files(const config::config& cfg) {
  std::vector<std::string> errors;
  auto so = to_server_options(cfg);
  for (std::size_t i = 0; i < so.tls.size(); ++i) {
    if (so.tls[i].certificates.empty()) continue;
    if (auto err = check_listener_tls(so.tls[i]); !err.empty())
      errors.push_back("listeners[" + std::to_string(i) + "].tls: " + err);
  }
  for (std::size_t i = 0; i < cfg.upstreams.size(); ++i) {
    const auto& u = cfg.upstreams[i];
    if (u.scheme != "https") continue;
    if (auto err = check_upstream_tls(tls_options(u.tls)); !err.empty())
      errors.push_back("upstreams[" + std::to_string(i) + "].tls: " + err);
  }
  return errors;
}

}  // namespace trafficcop::app
