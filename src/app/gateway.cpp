// SPDX-License-Identifier: MIT
// Config → handler: the route table and one reverse_proxy per route.
#include "app/gateway.hpp"
#include "trafficcop/transport.hpp"

#include <algorithm>
#include <map>

#include "trafficcop/reverse_proxy.hpp"

namespace trafficcop::app {
namespace {

/// Host without port, lower-cased: "Example.COM:8080" → "example.com".
std::string bare_host(std::string_view h) {
  if (!h.empty() && h.front() == '[') {
    auto close = h.find(']');
    h = h.substr(0, close == std::string_view::npos ? h.size() : close + 1);
  } else if (auto colon = h.rfind(':'); colon != std::string_view::npos) {
    h = h.substr(0, colon);
  }
  std::string s(h);
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

/// Segment-aware prefix: "/api" matches "/api" and "/api/x", not "/apix".
bool path_matches(std::string_view prefix, std::string_view path) {
  if (!path.starts_with(prefix)) return false;
  return prefix.empty() || prefix.back() == '/' || path.size() == prefix.size() ||
         path[prefix.size()] == '/' || path[prefix.size()] == '?';
}

void apply_edits(header_map& h, const config::header_edits& e) {
  for (const auto& name : e.remove) h.erase(name);
  for (const auto& [name, value] : e.set) h.set(name, value);
  for (const auto& [name, value] : e.add) h.add(name, value);
}

struct compiled_route {
  std::string host;  // bare, lower-case; "" = any
  std::string prefix;
  handler h;
};

/// Routes sorted so that the first match is the most specific: host routes before any-host
/// ones, longer prefixes first; file order breaks ties.
class router {
 public:
  explicit router(std::vector<compiled_route> routes) : routes_(std::move(routes)) {
    std::stable_sort(routes_.begin(), routes_.end(), [](const auto& a, const auto& b) {
      if (a.host.empty() != b.host.empty()) return !a.host.empty();
      return a.prefix.size() > b.prefix.size();
    });
  }

  asio::awaitable<void> serve(response_writer& w, request& in) const {
    std::string host = bare_host(in.host);
    std::string_view path = in.path();
    for (const auto& r : routes_) {
      if (!r.host.empty() && r.host != host) continue;
      if (!path_matches(r.prefix, path)) continue;
      co_return co_await r.h(w, in);
    }
    w.log().error = "no route";
    co_await write_text(w, 404, "Not Found\n");
  }

 private:
  std::vector<compiled_route> routes_;
};

upstream_tls_options tls_options(const config::upstream_tls& t) {
  return {t.ca_file, t.server_name, t.insecure_skip_verify, t.cert_file, t.key_file};
}

std::shared_ptr<transport> transport_for(const config::upstream& u) {
  http1_transport_options o;
  o.connect_timeout = u.connect_timeout;
  o.idle_timeout = u.idle_timeout;
  o.max_idle_per_host = u.max_idle;
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
  return make_http1_transport(o);
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
  if (!r.request_headers.set.empty() || !r.request_headers.add.empty() ||
      !r.request_headers.remove.empty())
    o.rewrite = [edits = r.request_headers](const request&, outbound_request& out) {
      apply_edits(out.header, edits);
    };
  if (!r.response_headers.set.empty() || !r.response_headers.add.empty() ||
      !r.response_headers.remove.empty())
    o.modify_response = [edits = r.response_headers](upstream_response& res, const request&) {
      apply_edits(res.header, edits);
      return error_code{};
    };
  return make_reverse_proxy(std::move(o));
}

}  // namespace

handler build_router(const config::config& cfg) {
  // One transport (and so one pool per worker) per upstream, shared by its routes.
  std::map<std::string, std::shared_ptr<transport>> transports;
  std::map<std::string, const config::upstream*> upstreams;
  for (const auto& u : cfg.upstreams) {
    transports[u.name] = transport_for(u);
    upstreams[u.name] = &u;
  }
  std::vector<compiled_route> routes;
  for (const auto& r : cfg.routes) {
    const auto& u = *upstreams.at(r.upstream);  // the loader checked the name
    routes.push_back({bare_host(r.host), r.path_prefix, proxy_for(cfg, r, u, transports[u.name])});
  }
  auto rt = std::make_shared<router>(std::move(routes));
  return [rt](response_writer& w, request& in) { return rt->serve(w, in); };
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
  }
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
