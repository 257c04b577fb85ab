// SPDX-License-Identifier: MIT
// The YAML config loader: yaml-cpp nodes to validated config structs, every error with its path.
//
// The loader walks the document once, in file order, one helper per section of the schema. A
// helper that finds a problem records `<path>: <what>` and goes on, so that one run reports every
// problem; cross-section checks (route → upstream names, required lists) run after the walk.
// yaml-cpp exceptions never leave this file.
#include "config/config.hpp"

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
namespace {

constexpr char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? char(c + 32) : c; }

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

/// `s` in double quotes, with quotes, backslashes and control bytes escaped, so that a message
/// stays on one line whatever the YAML held.
std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 0xf];
    } else {
      out += c;
    }
  }
  return out + '"';
}

std::string child(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string element(const std::string& path, std::size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

/// What a node is, for "expected a map, got ..." messages.
std::string kind(const YAML::Node& n) {
  if (n.IsMap()) return "a map";
  if (n.IsSequence()) return "a list";
  if (n.IsScalar()) return quote(n.Scalar());
  return "nothing";
}

// RFC 9110 §5.6.2 tchar.
bool is_tchar(char c) noexcept {
  if ((c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_tchar(c)) return false;
  return true;
}

bool has_space_or_ctl(std::string_view s) noexcept {
  for (char c : s)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return true;
  return false;
}

// A DNS name or an IPv4 literal: the characters of RFC 3986 reg-name we accept.
bool is_host_name(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'z') || c == '-' || c == '.' ||
          c == '_'))
      return false;
  return true;
}

bool is_ipv6(std::string_view s) {
  in6_addr addr{};
  return inet_pton(AF_INET6, std::string(s).c_str(), &addr) == 1;
}

struct host_port {
  std::string host;  // without brackets
  std::optional<std::uint16_t> port;
};

/// Splits "host[:port]" or "[v6][:port]". Returns the problem, or nullopt when `out` is set.
std::optional<std::string> split_host_port(std::string_view s, host_port& out) {
  std::string_view host = s, port;
  bool has_port = false;
  if (s.starts_with('[')) {
    auto close = s.find(']');
    if (close == std::string_view::npos) return "missing ']' in " + quote(s);
    host = s.substr(1, close - 1);
    if (!is_ipv6(host)) return quote(s.substr(0, close + 1)) + " is not an IPv6 address";
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return "expected ':' after ']' in " + quote(s);
    has_port = !rest.empty();
    if (has_port) port = rest.substr(1);
  } else {
    auto colon = s.find(':');
    if (colon != std::string_view::npos && s.find(':', colon + 1) != std::string_view::npos)
      return "IPv6 addresses need brackets, e.g. [::1]:8080";
    has_port = colon != std::string_view::npos;
    host = s.substr(0, colon);
    if (has_port) port = s.substr(colon + 1);
    if (host.empty()) return "missing host in " + quote(s);
    if (!is_host_name(host)) return "invalid host " + quote(host);
  }
  out.host = std::string(host);
  out.port.reset();
  if (!has_port || port.empty()) return std::nullopt;  // RFC 3986 §3.2.3: empty = default
  std::uint32_t n = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
  if (ec != std::errc{} || end != port.data() + port.size())
    return "port " + quote(port) + " is not a number";
  if (n > 65535) return "port " + std::string(port) + " is out of range (0-65535)";
  out.port = static_cast<std::uint16_t>(n);
  return std::nullopt;
}

/// Checks a listener address: host:port or [v6]:port, port 0..65535 required.
std::optional<std::string> check_listen_address(std::string_view s) {
  host_port hp;
  if (auto err = split_host_port(s, hp)) return err;
  if (!hp.port) return quote(s) + " has no port (use host:port, e.g. 127.0.0.1:8080)";
  return std::nullopt;
}

/// Fills u.scheme/host/port/base_path/base_query from `url`, or returns the problem.
std::optional<std::string> parse_url(std::string_view url, upstream& u) {
  if (has_space_or_ctl(url)) return "must not contain spaces or control characters";
  auto sep = url.find("://");
  if (sep == std::string_view::npos) return quote(url) + " has no scheme (e.g. http://host:port)";
  std::string_view scheme = url.substr(0, sep);
  std::string lowered = to_lower(scheme);
  if (lowered != "http" && lowered != "https")
    return "scheme " + quote(scheme) + " is not supported (use http:// or https://)";

  std::string_view rest = url.substr(sep + 3);
  auto tail_at = std::min(rest.find_first_of("/?#"), rest.size());
  std::string_view authority = rest.substr(0, tail_at), tail = rest.substr(tail_at);
  if (authority.find('@') != std::string_view::npos)
    return "user info (user@host) is not supported";
  host_port hp;
  if (auto err = split_host_port(authority, hp)) return err;
  if (hp.port == 0) return "port 0 is not a valid upstream port";
  if (tail.find('#') != std::string_view::npos) return "a fragment (#...) is not allowed";

  auto q = tail.find('?');
  u.scheme = lowered;
  u.host = hp.host;
  u.port = hp.port.value_or(lowered == "https" ? 443 : 80);
  u.base_path = std::string(tail.substr(0, q));
  u.base_query = q == std::string_view::npos ? "" : std::string(tail.substr(q + 1));
  return std::nullopt;
}

/// A route host: a host name or [v6], without port; or a wildcard "*." + host name.
bool is_route_host(std::string_view s) {
  if (s.starts_with('[') && s.ends_with(']')) return is_ipv6(s.substr(1, s.size() - 2));
  if (s.starts_with("*.")) s.remove_prefix(2);
  return is_host_name(s) && s.front() != '.';
}

/// A listener name: letters, digits, '-', '_', '.'.
bool is_name(std::string_view s) noexcept {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'z') || c == '-' || c == '_' ||
          c == '.'))
      return false;
  return !s.empty();
}

/// An origin-form path as routes match it: starts with '/', no spaces, controls, '?' or '#'.
std::optional<std::string> check_path(std::string_view s) {
  if (!s.starts_with('/')) return quote(s) + " must start with '/'";
  if (has_space_or_ctl(s) || s.find_first_of("?#") != std::string_view::npos)
    return quote(s) + " must be a path without spaces, '?' or '#'";
  return std::nullopt;
}

/// A redirect template: "{" opens one of the known placeholders, nothing else.
std::optional<std::string> check_redirect_template(std::string_view to) {
  if (has_space_or_ctl(to)) return "must not contain spaces or control characters";
  for (std::size_t i = to.find_first_of("{}"); i != std::string_view::npos;
       i = to.find_first_of("{}", i)) {
    auto close = to[i] == '{' ? to.find('}', i) : std::string_view::npos;
    if (close == std::string_view::npos)
      return "unbalanced '" + std::string(1, to[i]) + "' (placeholders: {scheme}, {host}, {path})";
    std::string_view name = to.substr(i, close + 1 - i);
    if (name != "{scheme}" && name != "{host}" && name != "{path}")
      return quote(name) + " is not a placeholder (use {scheme}, {host}, {path})";
    i = close + 1;
  }
  // "{path}" may begin with "//" (a client's "//evil.example/"): a Location that starts with it
  // would be a protocol-relative URL to another site. Only absolute URLs and plain paths.
  bool absolute =
      to.starts_with("http://") || to.starts_with("https://") || to.starts_with("{scheme}://");
  bool local = to.size() > 1 && to[0] == '/' && to[1] != '/' && to[1] != '\\' && to[1] != '{';
  if (!absolute && !local)
    return quote(to) +
           " must be an absolute URL (http://, https://, {scheme}://) or a path like /new";
  return std::nullopt;
}

/// True if the map `n` has the key `key` (given, whatever its value).
bool has(const YAML::Node& n, const char* key) { return n.IsMap() && n[key]; }

/// True if `e` touches the field `name`.
bool edits_name(const header_edits& e, std::string_view name) {
  auto is = [&](std::string_view n) {
    return n.size() == name.size() &&
           std::equal(n.begin(), n.end(), name.begin(),
                      [](char a, char b) { return lower(a) == lower(b); });
  };
  for (const auto& [n, v] : e.set)
    if (is(n)) return true;
  for (const auto& [n, v] : e.add)
    if (is(n)) return true;
  return std::any_of(e.remove.begin(), e.remove.end(), is);
}

/// One string per header and query condition of `r`, equal for conditions that are the same.
std::vector<std::string> condition_keys(const route& r) {
  std::vector<std::string> keys;
  auto add = [&](char kind, std::string name, const value_match& m) {
    keys.push_back(kind + std::move(name) + '\0' +
                   (m.regex ? "~" + m.regex_source : "=" + m.value));
  };
  for (const auto& [name, m] : r.headers) add('h', to_lower(name), m);
  for (const auto& [name, m] : r.query) add('q', name, m);
  return keys;
}

bool same_match(const value_match& a, const value_match& b) {
  return a.value == b.value && a.regex_source == b.regex_source && !a.regex == !b.regex;
}

/// True if every condition of `wide` is one of `narrow`'s, so that `wide` takes every request
/// `narrow` would: its methods and listeners include `narrow`'s, its headers and query
/// conditions are among `narrow`'s (names compared as they are matched).
bool takes_every_request_of(const route& wide, const route& narrow) {
  auto includes = [](const std::vector<std::string>& big, const std::vector<std::string>& small) {
    if (big.empty()) return true;  // any
    if (small.empty()) return false;
    return std::all_of(small.begin(), small.end(), [&](const std::string& x) {
      return std::find(big.begin(), big.end(), x) != big.end();
    });
  };
  auto among = [](const auto& conds, const auto& in, bool fold) {
    return std::all_of(conds.begin(), conds.end(), [&](const auto& c) {
      return std::any_of(in.begin(), in.end(), [&](const auto& d) {
        bool same_name = fold ? to_lower(c.first) == to_lower(d.first) : c.first == d.first;
        return same_name && same_match(c.second, d.second);
      });
    });
  };
  return includes(wide.methods, narrow.methods) && includes(wide.listeners, narrow.listeners) &&
         among(wide.headers, narrow.headers, true) && among(wide.query, narrow.query, false);
}

template <class E>
using enum_names = std::span<const std::pair<std::string_view, E>>;

constexpr std::pair<std::string_view, host_policy> host_policies[] = {
    {"rewrite", host_policy::rewrite}, {"keep", host_policy::keep}};
constexpr std::pair<std::string_view, forwarded_policy> forwarded_policies[] = {
    {"append", forwarded_policy::append},
    {"replace", forwarded_policy::replace},
    {"off", forwarded_policy::off}};
constexpr std::pair<std::string_view, upstream_http2> upstream_http2_modes[] = {
    {"auto", upstream_http2::automatic},
    {"always", upstream_http2::always},
    {"never", upstream_http2::never}};
constexpr std::pair<std::string_view, target_policy> target_policies[] = {
    {"normalized", target_policy::normalized}, {"raw", target_policy::raw}};
constexpr std::pair<std::string_view, underscore_policy> underscore_policies[] = {
    {"drop", underscore_policy::drop},
    {"keep", underscore_policy::keep},
    {"reject", underscore_policy::reject}};
constexpr std::pair<std::string_view, lb_policy> lb_policies[] = {
    {"round_robin", lb_policy::round_robin},
    {"least_request", lb_policy::least_request},
    {"peak_ewma", lb_policy::peak_ewma},
    {"ring_hash", lb_policy::ring_hash},
    {"random", lb_policy::random}};
constexpr std::string_view retry_conditions[] = {
    "connect_failure", "refused_stream", "reset_before_response", "502", "503", "504"};
constexpr std::pair<std::string_view, log_format> log_formats[] = {
    {"json", log_format::json}, {"combined", log_format::combined}};

using node = YAML::Node;
using handler = std::function<void(const node&, const std::string& path)>;

/// One known key of a map section and what reads its value.
struct field {
  std::string_view key;
  handler read;
  bool required = false;
};

class loader {
 public:
  load_result run(const node& root, std::string_view name);

 private:
  void fail(const std::string& path, std::string_view what) {
    errors_.push_back(path + ": " + std::string(what));
  }

  // Structure: maps of known keys, lists, and map entries.
  void read_fields(const node& map, const std::string& path, std::initializer_list<field> fields);
  bool read_list(const node& list, const std::string& path, const handler& item);
  void for_each_entry(const node& map, const std::string& path, bool fold_case,
                      const std::function<void(const std::string& key, const node& value,
                                               const std::string& at)>& f);

  // Scalars: each checks the value and stores it into `out` only if it is valid.
  std::optional<std::string> scalar(const node& n, const std::string& path,
                                    std::string_view expected);
  std::optional<duration> any_duration(const node& n, const std::string& path);  // may be < 0
  bool read(const node& n, const std::string& path, std::string& out);
  bool read(const node& n, const std::string& path, std::uint32_t& out);
  bool read(const node& n, const std::string& path, std::uint64_t& out);            // a size
  bool read(const node& n, const std::string& path, duration& out);                 // >= 0
  bool read(const node& n, const std::string& path, std::optional<duration>& out);  // flush
  bool read(const node& n, const std::string& path, host_policy& out);
  bool read(const node& n, const std::string& path, std::optional<host_policy>& out);
  bool read(const node& n, const std::string& path, forwarded_policy& out);
  bool read(const node& n, const std::string& path, target_policy& out);
  bool read(const node& n, const std::string& path, std::optional<target_policy>& out);
  bool read(const node& n, const std::string& path, underscore_policy& out);
  bool read(const node& n, const std::string& path, log_format& out);
  bool read(const node& n, const std::string& path, upstream_http2& out);
  bool read(const node& n, const std::string& path, bool& out);
  /// A path to a file this process can read.
  bool read_file_path(const node& n, const std::string& path, std::string& out);
  template <class E>
  bool read_enum(const node& n, const std::string& path, E& out,
                 std::type_identity_t<enum_names<E>> names);
  bool read_non_empty(const node& n, const std::string& path, std::string& out);

  template <class T>
  handler into(T& out) {
    return [this, &out](const node& n, const std::string& path) { read(n, path, out); };
  }
  template <class T>
  handler into_positive(T& out) {
    return [this, &out](const node& n, const std::string& path) {
      T v{};
      if (!read(n, path, v)) return;
      if (v == 0) return fail(path, "must be greater than 0");
      out = v;
    };
  }

  // Sections of the schema.
  void read_root(const node& root);
  void read_listener(const node& n, const std::string& path);
  void read_upstream(const node& n, const std::string& path);
  void read_upstream_tls(const node& n, const std::string& path, upstream& u);
  void read_endpoint(const node& n, const std::string& path, upstream& u);
  void read_balancing(const node& n, const std::string& path, upstream& u);
  void read_outlier(const node& n, const std::string& path, outlier_detection& o);
  void read_retries(const node& n, const std::string& path, struct retries& r);
  void read_breaker(const node& n, const std::string& path, circuit_breaker& b);
  void read_health_check(const node& n, const std::string& path, upstream& u);
  void check_endpoints(const std::string& path, upstream& u, bool has_url);
  bool read_percent(const node& n, const std::string& path, std::uint32_t& out);
  void read_listener_tls(const node& n, const std::string& path, listener_tls& t);
  void read_listener_hsts(const node& n, const std::string& path, listener_tls& t);
  void read_listener_http2(const node& n, const std::string& path, listener_http2& h);
  void read_route(const node& n, const std::string& path);
  void read_route_fields(const node& n, const std::string& path, route& r);
  void check_route_combinations(const node& n, const std::string& path, route& r);
  void check_route_shadowed(const std::string& path, const route& r);
  regex_ptr compile(const std::string& pattern, const std::string& path);
  void read_value_matches(const node& n, const std::string& path, bool header_names,
                          std::vector<std::pair<std::string, value_match>>& out);
  void read_methods(const node& n, const std::string& path, std::vector<std::string>& out);
  void read_route_listeners(const node& n, const std::string& path, std::vector<std::string>& out);
  void read_redirect(const node& n, const std::string& path, route& r);
  void read_respond(const node& n, const std::string& path, route& r);
  void read_header_edits(const node& n, const std::string& path, header_edits& e);
  void read_header_values(const node& n, const std::string& path,
                          std::vector<std::pair<std::string, std::string>>& out);
  void read_header_names(const node& n, const std::string& path, std::vector<std::string>& out);
  void read_limits(const node& n, const std::string& path);
  void read_timeouts(const node& n, const std::string& path);
  void read_access_log(const node& n, const std::string& path);

  // Checks across sections, after the walk.
  void check_required();
  void check_route_upstreams();
  void check_route_listeners();
  void check_route_targets();

  config cfg_;
  std::vector<std::string> errors_;
  std::set<std::string> mistyped_lists_;  // top-level lists that were not lists
  std::set<std::string> listen_addresses_;
  std::set<std::string> upstream_names_;
  std::set<std::string> listener_names_;
  // The routes with one host and path matcher, for the never-matching check.
  struct route_group {
    std::vector<std::size_t> without_conditions;                   // no header or query condition
    std::map<std::string, std::vector<std::size_t>> by_condition;  // by their first one
  };
  // Lowercased host + '\0' + path matcher kind + pattern → its group.
  std::map<std::string, route_group> route_keys_;
};

load_result loader::run(const node& root, std::string_view name) {
  if (!root.IsNull() && !root.IsMap()) {
    errors_.push_back(std::string(name) + ": the top level must be a map, got " + kind(root));
  } else {
    read_root(root);
    check_required();
    check_route_upstreams();
    check_route_listeners();
    check_route_targets();
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

template <class E>
bool loader::read_enum(const node& n, const std::string& path, E& out,
                       std::type_identity_t<enum_names<E>> names) {
  std::string choices;
  for (const auto& [name, value] : names)
    choices += (choices.empty() ? "" : ", ") + std::string(name);
  auto s = scalar(n, path, "one of " + choices);
  if (!s) return false;
  for (const auto& [name, value] : names) {
    if (*s != name) continue;
    out = value;
    return true;
  }
  fail(path, quote(*s) + " is not one of " + choices);
  return false;
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
                  {"listeners", list(&loader::read_listener)},
                  {"upstreams", list(&loader::read_upstream)},
                  {"routes", list(&loader::read_route)},
                  {"limits", [this](auto& n, auto& path) { read_limits(n, path); }},
                  {"timeouts", [this](auto& n, auto& path) { read_timeouts(n, path); }},
                  {"access_log", [this](auto& n, auto& path) { read_access_log(n, path); }},
              });
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
  read_fields(n, path, {{"name", name}, {"address", address}, {"tls", tls}, {"http2", http2}});
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
          {"connect_timeout", into(u.connect_timeout)},
          {"response_timeout", into(u.response_timeout)},
          {"idle_timeout", into(u.idle_timeout)},
          {"max_idle", into(u.max_idle)},
          {"tls", [&](const node& v, const std::string& at) { read_upstream_tls(v, at, u); }},
          {"http2", into(u.http2)},
          {"max_concurrent_streams", into_positive(u.max_concurrent_streams)},
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

void loader::read_route(const node& n, const std::string& path) {
  route& r = cfg_.routes.emplace_back();
  std::size_t errors_before = errors_.size();
  read_route_fields(n, path, r);
  if (errors_.size() != errors_before) return;
  check_route_combinations(n, path, r);
  if (errors_.size() != errors_before) return;
  check_route_shadowed(path, r);
}

void loader::read_route_fields(const node& n, const std::string& path, route& r) {
  auto host = [&](const node& v, const std::string& at) {
    std::string s;
    if (!read(v, at, s)) return;
    if (!s.empty() && !is_route_host(s))
      return fail(at, quote(s) +
                          " is not a host name or a wildcard (no scheme, port or path; e.g. "
                          "example.com, *.example.com)");
    r.host = std::move(s);
  };
  auto a_path = [&](auto store) {
    return [this, store](const node& v, const std::string& at) {
      std::string s;
      if (!read(v, at, s)) return;
      if (auto err = check_path(s)) return fail(at, *err);
      store(std::move(s));
    };
  };
  auto regex = [&](const node& v, const std::string& at) {
    std::string s;
    if (!read_non_empty(v, at, s)) return;
    if (auto re = compile(s, at)) {
      r.path_regex = std::move(s);
      r.path_re = std::move(re);
    }
  };
  auto host_rewrite = [&](const node& v, const std::string& at) {
    std::string s;
    if (!read_non_empty(v, at, s)) return;
    host_port hp;
    if (auto err = split_host_port(s, hp)) return fail(at, *err);
    r.host_rewrite = std::move(s);
  };
  auto edits = [this](header_edits& e) -> handler {
    return [this, &e](const node& v, const std::string& at) { read_header_edits(v, at, e); };
  };
  auto matches = [&](auto& out, bool header_names) -> handler {
    return [this, &out, header_names](const node& v, const std::string& at) {
      read_value_matches(v, at, header_names, out);
    };
  };
  read_fields(
      n, path,
      {
          {"host", host},
          {"path", a_path([&](std::string s) { r.path = std::move(s); })},
          {"path_prefix", a_path([&](std::string s) { r.path_prefix = std::move(s); })},
          {"path_regex", regex},
          {"methods", [&](auto& v, auto& at) { read_methods(v, at, r.methods); }},
          {"headers", matches(r.headers, true)},
          {"query", matches(r.query, false)},
          {"listeners", [&](auto& v, auto& at) { read_route_listeners(v, at, r.listeners); }},
          {"upstream", [&](auto& v, auto& at) { read_non_empty(v, at, r.upstream); }},
          {"redirect", [&](auto& v, auto& at) { read_redirect(v, at, r); }},
          {"respond", [&](auto& v, auto& at) { read_respond(v, at, r); }},
          {"strip_prefix", into(r.strip_prefix)},
          {"prefix_rewrite", a_path([&](std::string s) { r.prefix_rewrite = std::move(s); })},
          {"host_rewrite", host_rewrite},
          {"host_header", into(r.host_header)},
          {"upstream_target", into(r.upstream_target)},
          {"flush_interval", into(r.flush_interval)},
          {"request_headers", edits(r.request_headers)},
          {"response_headers", edits(r.response_headers)},
      });
}

/// What one key allows only with another, or only without it.
void loader::check_route_combinations(const node& n, const std::string& path, route& r) {
  // One path matcher: precedence between kinds is by kind, so a route cannot be two of them.
  std::vector<const char*> kinds;
  for (const char* k : {"path", "path_prefix", "path_regex"})
    if (has(n, k)) kinds.push_back(k);
  if (kinds.size() > 1)
    return fail(child(path, kinds[1]), std::string(kinds[0]) +
                                           " is given too; a route has one of path, path_prefix, "
                                           "path_regex");
  if (!kinds.empty() && std::string_view(kinds[0]) != "path_prefix") r.path_prefix.clear();

  // One action: an upstream, a redirect or a fixed response.
  std::vector<const char*> actions;
  for (const char* k : {"upstream", "redirect", "respond"})
    if (has(n, k)) actions.push_back(k);
  if (actions.empty())
    return fail(path, "needs one of upstream, redirect, respond (what to do with the request)");
  if (actions.size() > 1)
    return fail(child(path, actions[1]), std::string(actions[0]) +
                                             " is given too; a route has one of upstream, "
                                             "redirect, respond");
  if (r.upstream.empty()) {
    // Nothing is sent upstream: what shapes the upstream request has nothing to act on.
    for (const char* k : {"strip_prefix", "prefix_rewrite", "host_rewrite", "host_header",
                          "upstream_target", "flush_interval", "request_headers"})
      if (has(n, k))
        fail(child(path, k), std::string("applies to routes with an upstream only (this one has ") +
                                 actions[0] + ")");
    return;
  }

  bool path_rewrite = r.strip_prefix || !r.prefix_rewrite.empty();
  if (r.strip_prefix && !r.prefix_rewrite.empty())
    fail(child(path, "prefix_rewrite"),
         "strip_prefix is set too (strip_prefix: true is prefix_rewrite: /); give one");
  else if (path_rewrite && r.path_prefix.empty())
    fail(child(path, r.strip_prefix ? "strip_prefix" : "prefix_rewrite"),
         "applies to path_prefix routes only (it replaces the matched prefix)");
  else if (path_rewrite && r.upstream_target == target_policy::raw)
    fail(child(path, "upstream_target"),
         "raw sends the client's bytes, which a prefix rewrite would not change; use normalized");
  if (!r.host_rewrite.empty()) {
    if (r.host_header)
      fail(child(path, "host_header"), "host_rewrite is set too (it decides the Host sent)");
    if (edits_name(r.request_headers, "host"))
      fail(child(path, "request_headers"), "edits Host, which host_rewrite sets; give one");
  }
}

/// Routes with the same host and path matcher are tried in file order (docs/config.md): a
/// route after one that takes every request it would take can never match.
void loader::check_route_shadowed(const std::string& path, const route& r) {
  std::string key = to_lower(r.host) + '\0';
  if (r.path)
    key += "=" + *r.path;
  else if (r.path_regex)
    key += "~" + *r.path_regex;
  else
    key += "/" + r.path_prefix;
  route_group& same = route_keys_[key];
  // An earlier route with a header or query condition can only take every request of this one
  // if this one has that condition too: look among those filed under this one's conditions,
  // not at every earlier route (10,000 routes told apart by a header stay linear).
  std::vector<std::size_t> candidates = same.without_conditions;
  std::vector<std::string> conditions = condition_keys(r);
  for (const auto& c : conditions)
    if (auto it = same.by_condition.find(c); it != same.by_condition.end())
      candidates.insert(candidates.end(), it->second.begin(), it->second.end());
  std::sort(candidates.begin(), candidates.end());  // report the first in file order
  const char* kind = r.path ? "path" : r.path_regex ? "path_regex" : "path_prefix";
  for (std::size_t earlier : candidates) {
    const route& e = cfg_.routes[earlier];
    if (!takes_every_request_of(e, r)) continue;
    bool plain = e.methods.empty() && e.headers.empty() && e.query.empty() && e.listeners.empty();
    fail(path, "same host and " + std::string(kind) + " as " + element("routes", earlier) +
                   (plain ? ""
                          : ", whose methods, headers, query and listeners take every "
                            "request this one would") +
                   ", so it can never match");
    return;
  }
  std::size_t index = cfg_.routes.size() - 1;
  if (conditions.empty())
    same.without_conditions.push_back(index);
  else
    same.by_condition[conditions.front()].push_back(index);
}

regex_ptr loader::compile(const std::string& pattern, const std::string& path) {
  RE2::Options o;
  o.set_log_errors(false);  // the error goes into the message below, not to stderr
  auto re = std::make_shared<const RE2>(pattern, o);
  if (re->ok()) return re;
  fail(path, quote(pattern) + " is not a valid regular expression (RE2 syntax): " + re->error());
  return nullptr;
}

void loader::read_value_matches(const node& n, const std::string& path, bool header_names,
                                std::vector<std::pair<std::string, value_match>>& out) {
  // Header names are case-insensitive (RFC 9110 §5.1); query parameter names are not.
  for_each_entry(n, path, header_names, [&](const std::string& name, const node& v, auto& at) {
    if (header_names && !is_token(name))
      return fail(path, quote(name) + " is not a valid header name (RFC 9110 token)");
    if (name.empty()) return fail(path, "a parameter name must not be empty");
    value_match m;
    if (v.IsMap()) {
      read_fields(v, at,
                  {{"regex",
                    [&](const node& rv, const std::string& rat) {
                      if (!read_non_empty(rv, rat, m.regex_source)) return;
                      m.regex = compile(m.regex_source, rat);
                    },
                    true}});
      if (!m.regex) return;
    } else {
      auto value = scalar(v, at, "a value or {regex: ...}");
      if (!value) return;
      m.value = std::move(*value);
    }
    out.emplace_back(name, std::move(m));
  });
}

void loader::read_methods(const node& n, const std::string& path, std::vector<std::string>& out) {
  read_list(n, path, [&](const node& v, const std::string& at) {
    auto m = scalar(v, at, "a method name");
    if (!m) return;
    // RFC 9110 §9.1: methods are case-sensitive; "get" is not GET.
    bool upper = std::none_of(m->begin(), m->end(), [](char c) { return c >= 'a' && c <= 'z'; });
    if (!is_token(*m) || !upper)
      return fail(at, quote(*m) + " is not a method (an upper-case token such as GET)");
    if (std::find(out.begin(), out.end(), *m) != out.end())
      return fail(at, "duplicate method " + quote(*m));
    out.push_back(std::move(*m));
  });
  if (n.IsSequence() && n.size() == 0) fail(path, "must name at least one method (omit for any)");
}

void loader::read_route_listeners(const node& n, const std::string& path,
                                  std::vector<std::string>& out) {
  read_list(n, path, [&](const node& v, const std::string& at) {
    std::string s;
    if (!read_non_empty(v, at, s)) return;
    if (std::find(out.begin(), out.end(), s) != out.end())
      return fail(at, "duplicate listener " + quote(s));
    out.push_back(std::move(s));
  });
  if (n.IsSequence() && n.size() == 0) fail(path, "must name at least one listener (omit for all)");
}

void loader::read_redirect(const node& n, const std::string& path, route& r) {
  auto& rd = r.redirect.emplace();
  auto to = [&](const node& v, const std::string& at) {
    std::string s;
    if (!read_non_empty(v, at, s)) return;
    if (auto err = check_redirect_template(s)) return fail(at, *err);
    rd.to = std::move(s);
  };
  auto status = [&](const node& v, const std::string& at) {
    std::uint32_t code = 0;
    if (!read(v, at, code)) return;
    if (code != 301 && code != 302 && code != 303 && code != 307 && code != 308)
      return fail(at, std::to_string(code) + " is not a redirect status (301, 302, 303, 307, 308)");
    rd.status = static_cast<int>(code);
  };
  read_fields(n, path, {{"to", to, true}, {"status", status}});
}

void loader::read_respond(const node& n, const std::string& path, route& r) {
  auto& rs = r.respond.emplace();
  auto status = [&](const node& v, const std::string& at) {
    std::uint32_t code = 0;
    if (!read(v, at, code)) return;
    if (code < 200 || code > 599) return fail(at, std::to_string(code) + " is not from 200 to 599");
    rs.status = static_cast<int>(code);
  };
  auto headers = [&](const node& v, const std::string& at) {
    read_header_values(v, at, rs.headers);
    // The server frames the response: these would contradict it.
    for (const auto& [name, value] : rs.headers)
      for (std::string_view framing : {"content-length", "transfer-encoding", "connection"})
        if (to_lower(name) == framing) fail(child(at, name), "is set by trafficcop from the body");
  };
  read_fields(n, path, {{"status", status}, {"body", into(rs.body)}, {"headers", headers}});
  // RFC 9110 §15.3.5, §15.4.5: no content in these.
  if ((rs.status == 204 || rs.status == 304) && !rs.body.empty())
    fail(child(path, "body"), "a " + std::to_string(rs.status) + " response has no body");
}

void loader::read_header_edits(const node& n, const std::string& path, header_edits& e) {
  read_fields(n, path,
              {
                  {"set", [&](auto& v, auto& at) { read_header_values(v, at, e.set); }},
                  {"add", [&](auto& v, auto& at) { read_header_values(v, at, e.add); }},
                  {"remove", [&](auto& v, auto& at) { read_header_names(v, at, e.remove); }},
              });
}

void loader::read_header_values(const node& n, const std::string& path,
                                std::vector<std::pair<std::string, std::string>>& out) {
  // Field names are case-insensitive (RFC 9110 §5.1): X-A and x-a are the same key.
  for_each_entry(n, path, true, [&](const std::string& name, const node& v, auto& at) {
    if (!is_token(name))
      return fail(path, quote(name) + " is not a valid header name (RFC 9110 token)");
    auto value = scalar(v, at, "a header value (use \"\" for an empty one)");
    if (!value) return;
    // RFC 9110 §5.5: a CR or LF would split the field and let the config smuggle a header.
    if (value->find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
      return fail(at, "value must not contain CR, LF or NUL");
    out.emplace_back(name, std::move(*value));
  });
}

void loader::read_header_names(const node& n, const std::string& path,
                               std::vector<std::string>& out) {
  read_list(n, path, [&](const node& v, const std::string& at) {
    auto name = scalar(v, at, "a header name");
    if (!name) return;
    if (!is_token(*name))
      return fail(at, quote(*name) + " is not a valid header name (RFC 9110 token)");
    out.push_back(std::move(*name));
  });
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
              });
}

void loader::read_access_log(const node& n, const std::string& path) {
  auto& a = cfg_.access_log;
  read_fields(n, path,
              {
                  {"path", [&](auto& v, auto& at) { read_non_empty(v, at, a.path); }},
                  {"format", into(a.format)},
              });
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

void loader::check_route_upstreams() {
  if (mistyped_lists_.contains("upstreams")) return;  // every route would be reported
  for (std::size_t i = 0; i < cfg_.routes.size(); ++i) {
    const std::string& name = cfg_.routes[i].upstream;
    if (!name.empty() && !upstream_names_.contains(name))
      fail(element("routes", i) + ".upstream", "no upstream named " + quote(name));
  }
}

void loader::check_route_listeners() {
  if (mistyped_lists_.contains("listeners")) return;
  for (std::size_t i = 0; i < cfg_.routes.size(); ++i) {
    const auto& names = cfg_.routes[i].listeners;
    for (std::size_t j = 0; j < names.size(); ++j)
      if (!listener_names_.contains(names[j]))
        fail(element(element("routes", i) + ".listeners", j),
             "no listener named " + quote(names[j]) + " (listeners[].name)");
  }
}

/// A path rewrite changes the normalised path; the top-level `upstream_target: raw` would send
/// the client's bytes instead, so a route that rewrites must say `upstream_target: normalized`.
void loader::check_route_targets() {
  if (cfg_.upstream_target != target_policy::raw) return;
  for (std::size_t i = 0; i < cfg_.routes.size(); ++i) {
    const route& r = cfg_.routes[i];
    if ((r.strip_prefix || !r.prefix_rewrite.empty()) && !r.upstream_target)
      fail(element("routes", i) + (r.strip_prefix ? ".strip_prefix" : ".prefix_rewrite"),
           "the top-level upstream_target is raw, which a prefix rewrite would not change; set "
           "upstream_target: normalized on this route");
  }
}

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

std::string summary(const config& cfg) {
  return "ok: " + count(cfg.listeners.size(), "listener") + ", " +
         count(cfg.upstreams.size(), "upstream") + ", " + count(cfg.routes.size(), "route") + ", " +
         (cfg.workers == 0 ? std::string("auto workers") : count(cfg.workers, "worker"));
}

}  // namespace trafficcop::config
