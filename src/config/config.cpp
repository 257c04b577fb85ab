// SPDX-License-Identifier: MIT
// The YAML config loader: yaml-cpp nodes to validated config structs, every error with its path.
//
// The loader walks the document once, in file order, one helper per section of the schema. A
// helper that finds a problem records `<path>: <what>` and goes on, so that one run reports every
// problem; cross-section checks (route → upstream names, required lists) run after the walk.
// yaml-cpp exceptions never leave this file.
#include "config/config.hpp"
#include "config/loader.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

namespace trafficcop::config {
namespace detail {
load_result loader::run(const node& root, std::string_view name) {
  if (!root.IsNull() && !root.IsMap()) {
    errors_.push_back(std::string(name) + ": the top level must be a map, got " + kind(root));
  } else {
    read_root(root);
    check_required();
    check_route_upstreams();
    check_route_listeners();
    check_route_targets();
    check_rate_limits();
  }
  load_result result;
  if (errors_.empty()) result.cfg = std::move(cfg_);
  result.errors = std::move(errors_);
  return result;
}

void loader::for_each_entry(
    const node& map, const std::string& path, bool fold_case,
    const std::function<void(const std::string&, const node&, const std::string&)>& f) {
  if (map.IsNull()) return;  // `limits:` with nothing under it: every default
  if (!map.IsMap()) return fail(path, "expected a map, got " + kind(map));
  std::set<std::string> seen;
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) {
      fail(path, "keys must be plain strings, got " + kind(kv.first));
      continue;
    }
    const std::string& key = kv.first.Scalar();
    std::string at = child(path, key);
    if (!seen.insert(fold_case ? to_lower(key) : key).second) {
      fail(at, fold_case ? "duplicate key (header names are case-insensitive)" : "duplicate key");
      continue;
    }
    f(key, kv.second, at);
  }
}

void loader::read_fields(const node& map, const std::string& path,
                         std::initializer_list<field> fields) {
  std::set<std::string_view> present;
  for_each_entry(map, path, false, [&](const std::string& key, const node& value, auto& at) {
    for (const field& f : fields) {
      if (f.key != key) continue;
      present.insert(f.key);
      return f.read(value, at);
    }
    fail(at, "unknown key");
  });
  if (!map.IsNull() && !map.IsMap()) return;  // already reported; "missing" would be noise
  for (const field& f : fields)
    if (f.required && !present.contains(f.key)) fail(child(path, f.key), "required key is missing");
}

bool loader::read_list(const node& list, const std::string& path, const handler& item) {
  if (list.IsNull()) return true;
  if (!list.IsSequence()) {
    fail(path, "expected a list, got " + kind(list));
    return false;
  }
  std::size_t i = 0;
  for (const auto& n : list) item(n, element(path, i++));
  return true;
}

std::optional<std::string> loader::scalar(const node& n, const std::string& path,
                                          std::string_view expected) {
  if (n.IsScalar()) return n.Scalar();
  fail(path, "expected " + std::string(expected) + ", got " + kind(n));
  return std::nullopt;
}

bool loader::read(const node& n, const std::string& path, std::string& out) {
  auto s = scalar(n, path, "a string");
  if (s) out = std::move(*s);
  return s.has_value();
}

bool loader::read(const node& n, const std::string& path, bool& out) {
  auto s = scalar(n, path, "true or false");
  if (!s) return false;
  if (*s == "true" || *s == "false") {
    out = *s == "true";
    return true;
  }
  fail(path, "expected true or false, got " + quote(*s));
  return false;
}

bool loader::read_file_path(const node& n, const std::string& path, std::string& out) {
  std::string s;
  if (!read_non_empty(n, path, s)) return false;
  if (::access(s.c_str(), R_OK) != 0) {
    fail(path, quote(s) + ": " + std::strerror(errno));
    return false;
  }
  out = std::move(s);
  return true;
}

bool loader::read_non_empty(const node& n, const std::string& path, std::string& out) {
  std::string s;
  if (!read(n, path, s)) return false;
  if (s.empty()) {
    fail(path, "must not be empty");
    return false;
  }
  out = std::move(s);
  return true;
}

bool loader::read(const node& n, const std::string& path, std::uint32_t& out) {
  auto s = scalar(n, path, "an integer");
  if (!s) return false;
  const char* end = s->data() + s->size();
  std::uint32_t v = 0;
  auto [ptr, ec] = std::from_chars(s->data(), end, v);
  if (ec == std::errc{} && ptr == end) {
    out = v;
    return true;
  }
  fail(path, quote(*s) + " is not an integer from 0 to 4294967295");
  return false;
}

bool loader::read(const node& n, const std::string& path, std::uint64_t& out) {
  auto s = scalar(n, path, "a size");
  if (!s) return false;
  auto bytes = parse_size(*s);
  if (bytes)
    out = *bytes;
  else
    fail(path, quote(*s) + " is not a size (e.g. 16384, 16k, 1MiB)");
  return bytes.has_value();
}

std::optional<duration> loader::any_duration(const node& n, const std::string& path) {
  auto s = scalar(n, path, "a duration");
  if (!s) return std::nullopt;
  auto d = parse_duration(*s);
  if (!d) fail(path, quote(*s) + " is not a duration (e.g. 250ms, 3s, 1m)");
  return d;
}

bool loader::read(const node& n, const std::string& path, std::optional<duration>& out) {
  auto d = any_duration(n, path);
  if (!d) return false;
  out = *d < duration::zero() ? duration{-1} : *d;  // any negative value: flush every write
  return true;
}

bool loader::read(const node& n, const std::string& path, duration& out) {
  auto d = any_duration(n, path);
  if (!d) return false;
  if (*d < duration::zero()) {
    fail(path, "must not be negative");
    return false;
  }
  out = *d;
  return true;
}

bool loader::read(const node& n, const std::string& path, host_policy& out) {
  return read_enum(n, path, out, host_policies);
}
bool loader::read(const node& n, const std::string& path, std::optional<host_policy>& out) {
  host_policy p{};
  if (!read(n, path, p)) return false;
  out = p;
  return true;
}
bool loader::read(const node& n, const std::string& path, forwarded_policy& out) {
  return read_enum(n, path, out, forwarded_policies);
}
bool loader::read(const node& n, const std::string& path, target_policy& out) {
  return read_enum(n, path, out, target_policies);
}
bool loader::read(const node& n, const std::string& path, std::optional<target_policy>& out) {
  target_policy p{};
  if (!read(n, path, p)) return false;
  out = p;
  return true;
}
bool loader::read(const node& n, const std::string& path, underscore_policy& out) {
  return read_enum(n, path, out, underscore_policies);
}
bool loader::read(const node& n, const std::string& path, upstream_http2& out) {
  return read_enum(n, path, out, upstream_http2_modes);
}
bool loader::read(const node& n, const std::string& path, log_format& out) {
  return read_enum(n, path, out, log_formats);
}

void loader::read_root(const node& root) {
  auto list = [this](void (loader::*item)(const node&, const std::string&)) -> handler {
    return [this, item](const node& n, const std::string& path) {
      if (!read_list(n, path, [&](auto& v, auto& at) { (this->*item)(v, at); }))
        mistyped_lists_.insert(path);
    };
  };
  read_fields(root, "",
              {
                  {"workers", into(cfg_.workers)},
                  {"host_header", into(cfg_.host_header)},
                  {"forwarded", into(cfg_.forwarded)},
                  {"upstream_target", into(cfg_.upstream_target)},
                  {"headers_with_underscores", into(cfg_.headers_with_underscores)},
                  {"flush_interval", into(cfg_.flush_interval)},
                  {"request_buffering", into_buffering(cfg_.request_buffering)},
                  {"trusted_proxies",
                   [this](auto& n, auto& path) {
                     read_list(n, path, [&](const node& item, const std::string& at) {
                       std::string s;
                       if (!read(item, at, s)) return;
                       if (auto err = check_cidr(s)) return fail(at, *err);
                       cfg_.trusted_proxies.push_back(std::move(s));
                     });
                   }},
                  {"listeners", list(&loader::read_listener)},
                  {"upstreams", list(&loader::read_upstream)},
                  {"routes", list(&loader::read_route)},
                  {"limits", [this](auto& n, auto& path) { read_limits(n, path); }},
                  {"timeouts", [this](auto& n, auto& path) { read_timeouts(n, path); }},
                  {"access_log", [this](auto& n, auto& path) { read_access_log(n, path); }},
                  {"admin", [this](auto& n, auto& path) { read_admin(n, path); }},
                  {"request_id", [this](auto& n, auto& path) { read_request_id(n, path); }},
                  {"trace_context", [this](auto& n, auto& path) { read_trace_context(n, path); }},
                  {"rate_limits", list(&loader::read_rate_limit)},
                  {"redis", [this](auto& n, auto& path) { read_redis(n, path); }},
              });
}

void loader::read_admin(const node& n, const std::string& path) {
  auto& a = cfg_.admin.emplace();
  bool has_address = false;
  auto address = [&](const node& v, const std::string& at) {
    has_address = true;
    if (!read(v, at, a.address)) return;
    if (auto err = check_listen_address(a.address)) return fail(at, *err);
    if (!listen_addresses_.insert(a.address).second)
      fail(at, quote(a.address) + " is also a listener's address");
  };
  auto allow = [&](const node& v, const std::string& at) {
    read_list(v, at, [&](const node& item, const std::string& iat) {
      std::string s;
      if (!read(item, iat, s)) return;
      if (auto err = check_cidr(s)) return fail(iat, *err);
      a.allow.push_back(std::move(s));
    });
  };
  read_fields(n, path, {{"address", address, true}, {"allow", allow}});
  if (!has_address) return;
  // The admin API reloads and drains the proxy: off loopback, only for named clients.
  auto host = a.address.substr(0, a.address.rfind(':'));
  bool loopback =
      host == "127.0.0.1" || host == "[::1]" || host == "localhost" || host.starts_with("127.");
  if (!loopback && a.allow.empty())
    fail(child(path, "allow"),
         "required when address is not a loopback address (the admin API can reload and "
         "drain the proxy): list the CIDRs of the clients it may answer");
}

void loader::read_listener(const node& n, const std::string& path) {
  listener& l = cfg_.listeners.emplace_back();
  auto address = [&](const node& v, const std::string& at) {
    std::string s;
    if (!read(v, at, s)) return;
    if (auto err = check_listen_address(s)) return fail(at, *err);
    // SO_REUSEPORT would let both bind and silently share the connections.
    if (!listen_addresses_.insert(s).second)
      return fail(at, "duplicate listener address " + quote(s));
    l.address = std::move(s);
  };
  auto name = [&](const node& v, const std::string& at) {
    std::string s;
    if (!read_non_empty(v, at, s)) return;
    if (!is_name(s)) return fail(at, quote(s) + " is not a name (letters, digits, '-', '_', '.')");
    if (!listener_names_.insert(s).second) return fail(at, "duplicate listener name " + quote(s));
    l.name = std::move(s);
  };
  auto tls = [&](const node& v, const std::string& at) { read_listener_tls(v, at, l.tls); };
  auto http2 = [&](const node& v, const std::string& at) { read_listener_http2(v, at, l.http2); };
  read_fields(n, path,
              {{"name", name},
               {"address", address},
               {"tls", tls},
               {"http2", http2},
               {"proxy_protocol", into(l.proxy_protocol)}});
  if (l.http2.h2c && !l.tls.certificates.empty())
    fail(child(path, "http2.h2c"), "applies to plain listeners only (this one has tls)");
}

void loader::read_listener_http2(const node& n, const std::string& path, listener_http2& h) {
  // RFC 9113 §6.5.2: windows up to 2^31-1; a stream window below one frame only slows.
  auto window = [&](std::uint64_t& out, std::uint64_t min) {
    return [this, &out, min](const node& v, const std::string& at) {
      std::uint64_t w = 0;
      if (!read(v, at, w)) return;
      if (w < min || w > 0x7fffffff)
        return fail(at, std::to_string(w) + " is not between " + std::to_string(min) +
                            " and 2147483647 bytes");
      out = w;
    };
  };
  read_fields(n, path,
              {
                  {"enabled", into(h.enabled)},
                  {"h2c", into(h.h2c)},
                  {"max_concurrent_streams", into_positive(h.max_concurrent_streams)},
                  {"initial_window_size", window(h.initial_window_size, 16384)},
                  {"connection_window_size", window(h.connection_window_size, 65535)},
                  {"max_header_list_size", into(h.max_header_list_size)},
              });
}

void loader::read_listener_tls(const node& n, const std::string& path, listener_tls& t) {
  auto certificate = [&](const node& v, const std::string& at) {
    auto& c = t.certificates.emplace_back();
    auto file = [&](std::string& out) {
      return [this, &out](const node& f, const std::string& fat) { read_file_path(f, fat, out); };
    };
    read_fields(v, at,
                {{"cert_file", file(c.cert_file), true}, {"key_file", file(c.key_file), true}});
  };
  auto certificates = [&](const node& v, const std::string& at) {
    read_list(v, at, certificate);
    if (v.IsSequence() && v.size() == 0) fail(at, "needs at least one certificate");
  };
  auto min_version = [&](const node& v, const std::string& at) {
    std::string s;
    if (!read(v, at, s)) return;
    if (s != "1.2" && s != "1.3") return fail(at, quote(s) + " is not 1.2 or 1.3");
    t.min_version = s;
  };
  read_fields(
      n, path,
      {
          {"certificates", certificates, true},
          {"min_version", min_version},
          {"ciphers", into(t.ciphers)},
          {"client_ca_file",
           [&](const node& v, const std::string& at) { read_file_path(v, at, t.client_ca_file); }},
          {"client_auth",
           [&](const node& v, const std::string& at) {
             std::string s;
             if (!read(v, at, s)) return;
             if (s != "require" && s != "optional")
               return fail(at, quote(s) + " is not one of require, optional");
             t.require_client_cert = s == "require";
           }},
          {"hsts", [&](const node& v, const std::string& at) { read_listener_hsts(v, at, t); }},
      });
  // RFC 6797 §7.2: never over plain HTTP. (`certificates` reports its own error as well.)
  if (t.hsts && t.certificates.empty())
    fail(child(path, "hsts"), "applies to TLS listeners only (this one has no certificates)");
}

void loader::read_listener_hsts(const node& n, const std::string& path, listener_tls& t) {
  auto& h = t.hsts.emplace();  // `hsts:` with nothing under it: every default, as elsewhere
  // max-age is delta-seconds (RFC 6797 §6.1.1): a duration in whole seconds, or whole days,
  // the unit HSTS advice is written in ("365d"; durations elsewhere stop at hours).
  auto max_age = [&](const node& v, const std::string& at) {
    auto s = scalar(v, at, "a duration");
    if (!s) return;
    std::string_view text = *s;
    if (text.size() > 1 && text.back() == 'd') {
      std::uint32_t days = 0;
      auto digits = text.substr(0, text.size() - 1);
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), days);
      if (ec == std::errc{} && end == digits.data() + digits.size() && days <= 100'000) {
        h.max_age = std::chrono::hours(24) * days;
        return;
      }
    }
    auto d = parse_duration(text);
    if (!d) return fail(at, quote(text) + " is not a duration (e.g. 365d, 8760h, 31536000s)");
    if (*d < duration::zero()) return fail(at, "must not be negative");
    if (d->count() % 1000 != 0) return fail(at, quote(text) + " is not a whole number of seconds");
    h.max_age = std::chrono::duration_cast<std::chrono::seconds>(*d);
  };
  read_fields(n, path,
              {
                  {"max_age", max_age},
                  {"include_subdomains", into(h.include_subdomains)},
                  {"preload", into(h.preload)},
              });
  // The preload lists take a domain only with includeSubDomains and at least a year
  // (hstspreload.org): a preload token without them asks for something that cannot happen.
  if (h.preload && (!h.include_subdomains || h.max_age < std::chrono::hours(24 * 365)))
    fail(child(path, "preload"), "needs include_subdomains: true and max_age of at least 365d");
}

void loader::read_limits(const node& n, const std::string& path) {
  auto& l = cfg_.limits;
  read_fields(n, path,
              {
                  {"max_header_bytes", into_positive(l.max_header_bytes)},
                  {"max_headers", into_positive(l.max_headers)},
                  {"max_uri_bytes", into_positive(l.max_uri_bytes)},
                  {"max_body_bytes", into(l.max_body_bytes)},
                  {"max_connections", into_positive(l.max_connections)},
                  {"max_connections_per_client", into(l.max_connections_per_client)},
              });
}

void loader::read_timeouts(const node& n, const std::string& path) {
  auto& t = cfg_.timeouts;
  read_fields(n, path,
              {
                  {"read_header", into(t.read_header)},
                  {"idle", into(t.idle)},
                  {"read_body", into(t.read_body)},
                  {"drain", into(t.drain)},
                  {"drain_on_reload",
                   [&](auto& v, auto& at) {
                     duration d{};
                     if (read(v, at, d)) t.drain_on_reload = d;
                   }},
              });
}

void loader::read_access_log(const node& n, const std::string& path) {
  auto& a = cfg_.access_log;
  read_fields(n, path,
              {
                  {"path", [&](auto& v, auto& at) { read_non_empty(v, at, a.path); }},
                  {"format", into(a.format)},
                  {"fields", [&](auto& v, auto& at) { read_log_fields(v, at, a.fields); }},
              });
}

void loader::read_log_fields(const node& n, const std::string& path, std::vector<log_field>& out) {
  std::string names;
  for (const auto& [field_name, f] : log_fields)
    names += (names.empty() ? "" : ", ") + std::string(field_name);
  bool listed = read_list(n, path, [&](const node& v, const std::string& at) {
    std::string s;
    if (!read(v, at, s)) return;
    auto it = std::find_if(std::begin(log_fields), std::end(log_fields),
                           [&](const auto& e) { return e.first == s; });
    if (it == std::end(log_fields))
      return fail(at, "unknown access log field " + quote(s) + " (one of " + names + ")");
    if (std::find(out.begin(), out.end(), it->second) != out.end())
      return fail(at, "field " + quote(s) + " is listed twice");
    out.push_back(it->second);
  });
  if (listed && n.size() == 0) fail(path, "at least one field is required");
}

void loader::read_request_id(const node& n, const std::string& path) {
  auto& r = cfg_.request_id;
  auto header = [&](const node& v, const std::string& at) {
    std::string s;
    if (!read_non_empty(v, at, s)) return;
    if (!is_token(s)) return fail(at, quote(s) + " is not a valid header name (RFC 9110 token)");
    r.header = std::move(s);
  };
  read_fields(n, path,
              {
                  {"header", header},
                  {"trust_incoming", into(r.trust_incoming)},
                  {"upstream", into(r.upstream)},
                  {"response", into(r.response)},
              });
}

void loader::read_trace_context(const node& n, const std::string& path) {
  auto& t = cfg_.trace_context;
  read_fields(n, path, {{"enabled", into(t.enabled)}, {"sampled", into(t.sampled)}});
}

void loader::check_required() {
  auto require = [this](bool empty, const std::string& list, std::string_view what) {
    if (empty && !mistyped_lists_.contains(list))
      fail(list, "at least one " + std::string(what) + " is required");
  };
  require(cfg_.listeners.empty(), "listeners", "listener");
  require(cfg_.upstreams.empty(), "upstreams", "upstream");
  require(cfg_.routes.empty(), "routes", "route");
}

}  // namespace detail

namespace {
using namespace detail;

std::string syntax_error(std::string_view name, const YAML::Exception& e) {
  std::string where(name);
  if (!e.mark.is_null())
    where += ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
  return where + ": " + e.msg;
}

std::string count(std::size_t n, std::string_view noun) {
  return std::to_string(n) + " " + std::string(noun) + (n == 1 ? "" : "s");
}

}  // namespace

load_result load_string(std::string_view yaml, std::string_view name) {
  load_result result;
  try {
    return loader{}.run(YAML::Load(std::string(yaml)), name);
  } catch (const YAML::Exception& e) {  // syntax errors, and DeepRecursion on nested input
    result.errors.push_back(syntax_error(name, e));
  } catch (const std::exception& e) {
    result.errors.push_back(std::string(name) + ": " + e.what());
  } catch (...) {
    result.errors.push_back(std::string(name) + ": unexpected error while loading");
  }
  return result;
}

load_result load_file(const std::string& path) {
  errno = 0;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  std::string text;
  if (file) {
    char buf[64 * 1024];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, file.get())) > 0) text.append(buf, n);
  }
  if (!file || std::ferror(file.get())) {  // fopen of a directory succeeds; reading it fails
    load_result result;
    result.errors.push_back(path + ": cannot read: " + std::strerror(errno));
    return result;
  }
  return load_string(text, path);
}

// The table lists the fields in the enum's order, so a field's name is one index away (the
// access log asks for a name per field per line).
static_assert([] {
  for (std::size_t i = 0; i < std::size(log_fields); ++i)
    if (static_cast<std::size_t>(log_fields[i].second) != i) return false;
  return true;
}());

std::string_view name(log_field f) noexcept {
  auto i = static_cast<std::size_t>(f);
  return i < std::size(log_fields) ? log_fields[i].first : std::string_view{};
}

std::string summary(const config& cfg) {
  return "ok: " + count(cfg.listeners.size(), "listener") + ", " +
         count(cfg.upstreams.size(), "upstream") + ", " + count(cfg.routes.size(), "route") + ", " +
         (cfg.workers == 0 ? std::string("auto workers") : count(cfg.workers, "worker"));
}

}  // namespace trafficcop::config
