// SPDX-License-Identifier: MIT
// The loader for upstreams[]: URL or endpoints, balancing, health, retries, breakers, TLS.
#include "config/loader.hpp"
#include "core/ip_port.hpp"

#include <charconv>

namespace trafficcop::config::detail {

void loader::read_upstream(const node& n, const std::string& path) {
  upstream& u = cfg_.upstreams.emplace_back();
  auto name = [&](const node& v, const std::string& at) {
    if (!read_non_empty(v, at, u.name)) return;
    if (!upstream_names_.insert(u.name).second)
      fail(at, "duplicate upstream name " + quote(u.name));
  };
  bool has_url = false;
  auto url = [&](const node& v, const std::string& at) {
    has_url = true;
    if (!read(v, at, u.url)) return;
    if (auto err = parse_url(u.url, u)) return fail(at, *err);
    u.endpoints.push_back({u.url, u.host, u.port, 1});
  };
  auto endpoints = [&](const node& v, const std::string& at) {
    read_list(v, at, [&](const node& e, const std::string& eat) { read_endpoint(e, eat, u); });
  };
  auto percent = [&](std::uint32_t& out) {
    return [this, &out](const node& v, const std::string& at) { read_percent(v, at, out); };
  };
  read_fields(
      n, path,
      {
          {"name", name, true},
          {"url", url},
          {"endpoints", endpoints},
          {"load_balancing",
           [&](auto& v, auto& at) { read_enum(v, at, u.load_balancing, lb_policies); }},
          {"hash_on", [&](auto& v, auto& at) { read_balancing(v, at, u); }},
          {"outlier_detection", [&](auto& v, auto& at) { read_outlier(v, at, u.outlier); }},
          {"panic_threshold", percent(u.panic_threshold)},
          {"retries", [&](auto& v, auto& at) { read_retries(v, at, u.retries); }},
          {"circuit_breaker", [&](auto& v, auto& at) { read_breaker(v, at, u.breaker); }},
          {"health_check", [&](auto& v, auto& at) { read_health_check(v, at, u); }},
          {"resolve", [&](auto& v, auto& at) { read_resolve(v, at, u); }},
          {"connect_timeout", into(u.connect_timeout)},
          {"response_timeout", into(u.response_timeout)},
          {"idle_timeout", into(u.idle_timeout)},
          {"max_idle", into(u.max_idle)},
          {"tls", [&](const node& v, const std::string& at) { read_upstream_tls(v, at, u); }},
          {"http2", into(u.http2)},
          {"max_concurrent_streams", into_positive(u.max_concurrent_streams)},
          {"send_proxy_protocol",
           [&](auto& v, auto& at) {
             read_enum(v, at, u.send_proxy_protocol, proxy_protocol_versions);
           }},
      });
  const auto& t = u.tls;
  bool tls_set = !t.ca_file.empty() || !t.server_name.empty() || t.insecure_skip_verify ||
                 !t.cert_file.empty() || !t.key_file.empty();
  if (tls_set && u.scheme == "http")
    fail(child(path, "tls"), "applies to https:// upstreams only (url is http://)");
  check_endpoints(path, u, has_url);
}

void loader::read_endpoint(const node& n, const std::string& path, upstream& u) {
  endpoint e;
  auto url = [&](const node& v, const std::string& at) {
    if (!read(v, at, e.url)) return false;
    upstream parsed;
    if (auto err = parse_url(e.url, parsed)) {
      fail(at, *err);
      return false;
    }
    e.host = parsed.host;
    e.port = parsed.port;
    // The first endpoint gives the upstream its scheme and base path; the others must agree.
    if (u.endpoints.empty()) {
      u.url = e.url;
      u.scheme = parsed.scheme;
      u.host = parsed.host;
      u.port = parsed.port;
      u.base_path = parsed.base_path;
      u.base_query = parsed.base_query;
    } else if (parsed.scheme != u.scheme || parsed.base_path != u.base_path ||
               parsed.base_query != u.base_query) {
      fail(at, quote(e.url) + " differs from the first endpoint in scheme or base path (" +
                   quote(u.url) + "): every endpoint of an upstream serves the same URLs");
      return false;
    }
    return true;
  };
  bool ok = false;
  if (n.IsScalar()) {
    ok = url(n, path);
  } else {
    read_fields(n, path,
                {{"url", [&](auto& v, auto& at) { ok = url(v, at); }, true},
                 {"weight", [&](auto& v, auto& at) {
                    if (read(v, at, e.weight) && (e.weight == 0 || e.weight > 10000))
                      fail(at, "must be between 1 and 10000");
                  }}});
  }
  if (ok) u.endpoints.push_back(std::move(e));
}

void loader::check_endpoints(const std::string& path, upstream& u, bool has_url) {
  bool listed = has_url ? u.endpoints.size() > 1 : !u.endpoints.empty();
  if (has_url && listed)
    fail(path, "url and endpoints exclude each other (url is an upstream of one endpoint)");
  else if (!has_url && u.endpoints.empty())
    fail(child(path, "url"), "required key is missing (or endpoints: a list of URLs)");
  if (u.hash_on && u.load_balancing != lb_policy::ring_hash)
    fail(child(path, "hash_on"), "applies to load_balancing: ring_hash only");
  if (u.load_balancing == lb_policy::ring_hash && !u.hash_on) u.hash_on = hash_key{};
}

void loader::read_balancing(const node& n, const std::string& path, upstream& u) {
  std::string s;
  if (!read(n, path, s)) return;
  hash_key k;
  auto named = [&](std::string_view prefix, hash_key::kind what) {
    if (!s.starts_with(prefix)) return false;
    k.what = what;
    k.name = s.substr(prefix.size());
    return true;
  };
  if (s == "client_ip") {
    k.what = hash_key::kind::client_ip;
  } else if (s == "path") {
    k.what = hash_key::kind::path;
  } else if (named("header:", hash_key::kind::header) || named("cookie:", hash_key::kind::cookie)) {
    if (!is_token(k.name)) return fail(path, quote(s) + ": the name after ':' must be a token");
  } else {
    return fail(path, quote(s) + " is not one of client_ip, path, header:NAME, cookie:NAME");
  }
  u.hash_on = std::move(k);
}

bool loader::read_percent(const node& n, const std::string& path, std::uint32_t& out) {
  std::uint32_t v = 0;
  if (!read(n, path, v)) return false;
  if (v > 100) {
    fail(path, std::to_string(v) + " is not a percentage (0-100)");
    return false;
  }
  out = v;
  return true;
}

void loader::read_outlier(const node& n, const std::string& path, outlier_detection& o) {
  read_fields(n, path,
              {{"consecutive_failures", into(o.consecutive_failures)},
               {"ejection_time", into(o.ejection_time)},
               {"max_ejection_percent",
                [&](auto& v, auto& at) { read_percent(v, at, o.max_ejection_percent); }}});
}

void loader::read_retries(const node& n, const std::string& path, struct retries& r) {
  auto on = [&](const node& v, const std::string& at) {
    r.on.clear();
    read_list(v, at, [&](const node& c, const std::string& cat) {
      std::string s;
      if (!read(c, cat, s)) return;
      if (std::find(std::begin(retry_conditions), std::end(retry_conditions), s) ==
          std::end(retry_conditions))
        return fail(cat, quote(s) +
                             " is not one of connect_failure, refused_stream, "
                             "reset_before_response, 502, 503, 504");
      r.on.push_back(std::move(s));
    });
  };
  auto budget = [&](const node& v, const std::string& at) {
    read_fields(v, at,
                {{"percent", [&](auto& x, auto& xat) { read_percent(x, xat, r.budget_percent); }},
                 {"min_per_second", into(r.budget_min_per_second)}});
  };
  auto backoff = [&](const node& v, const std::string& at) {
    read_fields(v, at, {{"base", into(r.backoff_base)}, {"max", into(r.backoff_max)}});
    if (r.backoff_max < r.backoff_base) fail(at, "max must not be less than base");
  };
  read_fields(n, path,
              {{"attempts", into(r.attempts)},
               {"on", on},
               {"per_try_timeout", into(r.per_try_timeout)},
               {"budget", budget},
               {"backoff", backoff}});
}

void loader::read_health_check(const node& n, const std::string& path, upstream& u) {
  auto& h = u.health_check.emplace();
  bool has_path = false;
  auto check_path = [&](const node& v, const std::string& at) {
    has_path = true;
    std::string s;
    if (!read(v, at, s)) return;
    if (!s.starts_with('/') || has_space_or_ctl(s))
      return fail(at, quote(s) + " must be a path starting with '/', without spaces");
    h.path = std::move(s);
  };
  auto expected = [&](const node& v, const std::string& at) {
    std::string s;
    if (!read(v, at, s)) return;
    auto dash = s.find('-');
    int lo = 0, hi = 0;
    auto num = [](std::string_view t, int& out) {
      auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), out);
      return ec == std::errc{} && end == t.data() + t.size() && out >= 100 && out <= 599;
    };
    bool ok = dash == std::string::npos
                  ? num(s, lo) && (hi = lo, true)
                  : num(std::string_view(s).substr(0, dash), lo) &&
                        num(std::string_view(s).substr(dash + 1), hi) && lo <= hi;
    if (!ok) return fail(at, quote(s) + " is not a status or a range of statuses (e.g. 200-399)");
    h.expected_min = lo;
    h.expected_max = hi;
  };
  read_fields(n, path,
              {{"path", check_path},
               {"tcp", into(h.tcp)},
               {"interval", into(h.interval)},
               {"timeout", into(h.timeout)},
               {"healthy_threshold", into_positive(h.healthy_threshold)},
               {"unhealthy_threshold", into_positive(h.unhealthy_threshold)},
               {"expected_status", expected}});
  if (h.tcp && has_path) fail(path, "path and tcp: true exclude each other");
  if (h.interval.count() == 0) fail(child(path, "interval"), "must be greater than 0");
  if (h.timeout.count() == 0) fail(child(path, "timeout"), "must be greater than 0");
}

void loader::read_breaker(const node& n, const std::string& path, circuit_breaker& b) {
  read_fields(n, path,
              {{"max_connections", into(b.max_connections)},
               {"max_pending", into(b.max_pending)},
               {"max_requests", into(b.max_requests)}});
}

void loader::read_resolve(const node& n, const std::string& path, upstream& u) {
  auto& r = u.resolve.emplace();
  auto servers = [&](const node& v, const std::string& at) {
    read_list(v, at, [&](const node& item, const std::string& iat) {
      std::string s;
      if (!read(item, iat, s)) return;
      if (!parse_ip_port(s, 53))
        return fail(iat, quote(s) +
                             " is not an IP address with an optional port (e.g. "
                             "127.0.0.1:5353, [::1]:53)");
      r.servers.push_back(std::move(s));
    });
  };
  read_fields(n, path,
              {{"refresh", into(r.refresh)}, {"servers", servers}, {"timeout", into(r.timeout)}});
  if (r.refresh.count() < 100) fail(child(path, "refresh"), "must be at least 100ms");
  if (r.timeout.count() == 0) fail(child(path, "timeout"), "must be greater than 0");
}

void loader::read_upstream_tls(const node& n, const std::string& path, upstream& u) {
  auto file = [&](std::string& out) {
    return [this, &out](const node& v, const std::string& at) { read_file_path(v, at, out); };
  };
  read_fields(n, path,
              {
                  {"ca_file", file(u.tls.ca_file)},
                  {"server_name", into(u.tls.server_name)},
                  {"insecure_skip_verify", into(u.tls.insecure_skip_verify)},
                  {"cert_file", file(u.tls.cert_file)},
                  {"key_file", file(u.tls.key_file)},
              });
  if (u.tls.cert_file.empty() != u.tls.key_file.empty())
    fail(path, "cert_file and key_file go together (a client certificate needs its key)");
}

}  // namespace trafficcop::config::detail
