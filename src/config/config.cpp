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

/// A route host: a host name or [v6], without port.
bool is_route_host(std::string_view s) {
  if (s.starts_with('[') && s.ends_with(']')) return is_ipv6(s.substr(1, s.size() - 2));
  return is_host_name(s);
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
  void read_listener_tls(const node& n, const std::string& path, listener_tls& t);
  void read_listener_hsts(const node& n, const std::string& path, listener_tls& t);
  void read_listener_http2(const node& n, const std::string& path, listener_http2& h);
  void read_route(const node& n, const std::string& path);
  void read_route_fields(const node& n, const std::string& path, route& r);
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

  config cfg_;
  std::vector<std::string> errors_;
  std::set<std::string> mistyped_lists_;  // top-level lists that were not lists
  std::set<std::string> listen_addresses_;
  std::set<std::string> upstream_names_;
  std::map<std::string, std::size_t> route_keys_;  // lowercased host + '\0' + prefix → index
};

load_result loader::run(const node& root, std::string_view name) {
  if (!root.IsNull() && !root.IsMap()) {
    errors_.push_back(std::string(name) + ": the top level must be a map, got " + kind(root));
  } else {
    read_root(root);
    check_required();
    check_route_upstreams();
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
  auto tls = [&](const node& v, const std::string& at) { read_listener_tls(v, at, l.tls); };
  auto http2 = [&](const node& v, const std::string& at) { read_listener_http2(v, at, l.http2); };
  read_fields(n, path, {{"address", address}, {"tls", tls}, {"http2", http2}});
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
  auto url = [&](const node& v, const std::string& at) {
    if (!read(v, at, u.url)) return;
    if (auto err = parse_url(u.url, u)) fail(at, *err);
  };
  read_fields(
      n, path,
      {
          {"name", name, true},
          {"url", url, true},
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
  // Routes match by host, then longest prefix; a second route with the same pair is dead.
  auto key = to_lower(r.host) + '\0' + r.path_prefix;
  auto [it, inserted] = route_keys_.emplace(key, cfg_.routes.size() - 1);
  if (!inserted)
    fail(path, "same host and path_prefix as " + element("routes", it->second) +
                   ", so it can never match");
}

void loader::read_route_fields(const node& n, const std::string& path, route& r) {
  auto host = [&](const node& v, const std::string& at) {
    std::string s;
    if (!read(v, at, s)) return;
    if (!s.empty() && !is_route_host(s))
      return fail(at, quote(s) + " is not a host name (no scheme, port or path; e.g. example.com)");
    r.host = std::move(s);
  };
  auto prefix = [&](const node& v, const std::string& at) {
    std::string s;
    if (!read(v, at, s)) return;
    if (!s.starts_with('/')) return fail(at, quote(s) + " must start with '/'");
    if (has_space_or_ctl(s) || s.find_first_of("?#") != std::string::npos)
      return fail(at, quote(s) + " must be a path without spaces, '?' or '#'");
    r.path_prefix = std::move(s);
  };
  auto edits = [this](header_edits& e) -> handler {
    return [this, &e](const node& v, const std::string& at) { read_header_edits(v, at, e); };
  };
  read_fields(n, path,
              {
                  {"host", host},
                  {"path_prefix", prefix},
                  {"upstream", [&](auto& v, auto& at) { read_non_empty(v, at, r.upstream); }, true},
                  {"host_header", into(r.host_header)},
                  {"upstream_target", into(r.upstream_target)},
                  {"flush_interval", into(r.flush_interval)},
                  {"request_headers", edits(r.request_headers)},
                  {"response_headers", edits(r.response_headers)},
              });
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
