// SPDX-License-Identifier: MIT
// The config loader's insides, shared by its translation units (config.cpp: structure, scalars,
// listeners, limits; upstreams.cpp; routes.cpp). Not part of any API.
#pragma once

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

namespace trafficcop::config::detail {

inline constexpr char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? char(c + 32) : c; }

inline std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower(c);
  return out;
}

/// `s` in double quotes, with quotes, backslashes and control bytes escaped, so that a message
/// stays on one line whatever the YAML held.
inline std::string quote(std::string_view s) {
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

inline std::string child(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

inline std::string element(const std::string& path, std::size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

/// What a node is, for "expected a map, got ..." messages.
inline std::string kind(const YAML::Node& n) {
  if (n.IsMap()) return "a map";
  if (n.IsSequence()) return "a list";
  if (n.IsScalar()) return quote(n.Scalar());
  return "nothing";
}

// RFC 9110 §5.6.2 tchar.
inline bool is_tchar(char c) noexcept {
  if ((c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

inline bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (!is_tchar(c)) return false;
  return true;
}

inline bool has_space_or_ctl(std::string_view s) noexcept {
  for (char c : s)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return true;
  return false;
}

// A DNS name or an IPv4 literal: the characters of RFC 3986 reg-name we accept.
inline bool is_host_name(std::string_view s) noexcept {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'z') || c == '-' || c == '.' ||
          c == '_'))
      return false;
  return true;
}

inline bool is_ipv6(std::string_view s) {
  // inet_pton reads a C string: a NUL ("\0" in a double-quoted YAML scalar) would end it early.
  if (s.find('\0') != std::string_view::npos) return false;
  in6_addr addr{};
  return inet_pton(AF_INET6, std::string(s).c_str(), &addr) == 1;
}

struct host_port {
  std::string host;  // without brackets
  std::optional<std::uint16_t> port;
};

/// Splits "host[:port]" or "[v6][:port]". Returns the problem, or nullopt when `out` is set.
inline std::optional<std::string> split_host_port(std::string_view s, host_port& out) {
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

inline bool is_ipv4(std::string_view s) {
  if (s.find('\0') != std::string_view::npos) return false;
  in_addr addr{};
  return inet_pton(AF_INET, std::string(s).c_str(), &addr) == 1;
}

/// Checks a listener address: ipv4:port, [v6]:port or localhost:port, port 0..65535 required.
/// Names other than localhost are refused here rather than at start-up (which binds an
/// address, it resolves nothing), so that `trafficcop check` and start-up agree.
inline std::optional<std::string> check_listen_address(std::string_view s) {
  host_port hp;
  if (auto err = split_host_port(s, hp)) return err;
  if (!hp.port) return quote(s) + " has no port (use host:port, e.g. 127.0.0.1:8080)";
  if (!s.starts_with('[') && hp.host != "localhost" && !is_ipv4(hp.host))
    return quote(hp.host) +
           " is not an IP address (listeners bind an address, names other than localhost are "
           "not resolved; 0.0.0.0 or [::] is every interface)";
  return std::nullopt;
}

/// Fills u.scheme/host/port/base_path/base_query from `url`, or returns the problem.
inline std::optional<std::string> parse_url(std::string_view url, upstream& u) {
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
inline bool is_route_host(std::string_view s) {
  if (s.starts_with('[') && s.ends_with(']')) return is_ipv6(s.substr(1, s.size() - 2));
  if (s.starts_with("*.")) s.remove_prefix(2);
  return is_host_name(s) && s.front() != '.';
}

/// A listener name: letters, digits, '-', '_', '.'.
inline bool is_name(std::string_view s) noexcept {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'z') || c == '-' || c == '_' ||
          c == '.'))
      return false;
  return !s.empty();
}

/// An origin-form path as routes match it: starts with '/', no spaces, controls, '?' or '#'.
inline std::optional<std::string> check_path(std::string_view s) {
  if (!s.starts_with('/')) return quote(s) + " must start with '/'";
  if (has_space_or_ctl(s) || s.find_first_of("?#") != std::string_view::npos)
    return quote(s) + " must be a path without spaces, '?' or '#'";
  return std::nullopt;
}

/// A redirect template: "{" opens one of the known placeholders, nothing else.
inline std::optional<std::string> check_redirect_template(std::string_view to) {
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
inline bool has(const YAML::Node& n, const char* key) { return n.IsMap() && n[key]; }

/// True if `e` touches the field `name`.
inline bool edits_name(const header_edits& e, std::string_view name) {
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
inline std::vector<std::string> condition_keys(const route& r) {
  std::vector<std::string> keys;
  auto add = [&](char kind, std::string name, const value_match& m) {
    keys.push_back(kind + std::move(name) + '\0' +
                   (m.regex ? "~" + m.regex_source : "=" + m.value));
  };
  for (const auto& [name, m] : r.headers) add('h', to_lower(name), m);
  for (const auto& [name, m] : r.query) add('q', name, m);
  return keys;
}

inline bool same_match(const value_match& a, const value_match& b) {
  return a.value == b.value && a.regex_source == b.regex_source && !a.regex == !b.regex;
}

/// True if every condition of `wide` is one of `narrow`'s, so that `wide` takes every request
/// `narrow` would: its methods and listeners include `narrow`'s, its headers and query
/// conditions are among `narrow`'s (names compared as they are matched).
inline bool takes_every_request_of(const route& wide, const route& narrow) {
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

inline constexpr std::pair<std::string_view, host_policy> host_policies[] = {
    {"rewrite", host_policy::rewrite}, {"keep", host_policy::keep}};
inline constexpr std::pair<std::string_view, forwarded_policy> forwarded_policies[] = {
    {"append", forwarded_policy::append},
    {"replace", forwarded_policy::replace},
    {"off", forwarded_policy::off}};
inline constexpr std::pair<std::string_view, upstream_http2> upstream_http2_modes[] = {
    {"auto", upstream_http2::automatic},
    {"always", upstream_http2::always},
    {"never", upstream_http2::never}};
inline constexpr std::pair<std::string_view, target_policy> target_policies[] = {
    {"normalized", target_policy::normalized}, {"raw", target_policy::raw}};
inline constexpr std::pair<std::string_view, underscore_policy> underscore_policies[] = {
    {"drop", underscore_policy::drop},
    {"keep", underscore_policy::keep},
    {"reject", underscore_policy::reject}};
inline constexpr std::pair<std::string_view, lb_policy> lb_policies[] = {
    {"round_robin", lb_policy::round_robin},
    {"least_request", lb_policy::least_request},
    {"peak_ewma", lb_policy::peak_ewma},
    {"ring_hash", lb_policy::ring_hash},
    {"random", lb_policy::random}};
inline constexpr std::string_view retry_conditions[] = {
    "connect_failure", "refused_stream", "reset_before_response", "502", "503", "504"};
inline constexpr std::pair<std::string_view, log_format> log_formats[] = {
    {"json", log_format::json}, {"combined", log_format::combined}};
/// Every access log field by its name, in the order the documentation lists them.
inline constexpr std::pair<std::string_view, log_field> log_fields[] = {
    {"time", log_field::time},
    {"id", log_field::id},
    {"trace_id", log_field::trace_id},
    {"span_id", log_field::span_id},
    {"remote", log_field::remote},
    {"host", log_field::host},
    {"method", log_field::method},
    {"target", log_field::target},
    {"proto", log_field::proto},
    {"protocol", log_field::protocol},
    {"status", log_field::status},
    {"bytes_in", log_field::bytes_in},
    {"bytes_out", log_field::bytes_out},
    {"duration_ms", log_field::duration_ms},
    {"upstream", log_field::upstream},
    {"endpoint", log_field::endpoint},
    {"upstream_status", log_field::upstream_status},
    {"upstream_ms", log_field::upstream_ms},
    {"tries", log_field::tries},
    {"error", log_field::error},
    {"user_agent", log_field::user_agent},
    {"referer", log_field::referer},
    {"tls_version", log_field::tls_version},
    {"tls_client", log_field::tls_client},
    {"rate_limit", log_field::rate_limit},
};

inline constexpr std::pair<std::string_view, std::uint8_t> proxy_protocol_versions[] = {
    {"v1", 1}, {"v2", 2}, {"off", 0}};

/// A trusted_proxies entry: "10.0.0.0/8", "2001:db8::/32", or an address alone. Returns the
/// problem, or nullopt.
inline std::optional<std::string> check_cidr(std::string_view s) {
  auto slash = s.find('/');
  std::string addr(s.substr(0, slash));
  unsigned char bytes[16] = {};
  bool v4 = inet_pton(AF_INET, addr.c_str(), bytes) == 1;
  if (!v4 && inet_pton(AF_INET6, addr.c_str(), bytes) != 1)
    return quote(s) + " is not an IP address or network (e.g. 10.0.0.0/8, 2001:db8::/32)";
  const unsigned max = v4 ? 32 : 128;
  unsigned prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view p = s.substr(slash + 1);
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (p.empty() || p.size() > 3 || ec != std::errc{} || end != p.data() + p.size() ||
        prefix > max)
      return quote(s) + ": the prefix length must be a number from 0 to " + std::to_string(max);
  }
  // Host bits set ("10.0.0.1/8") most likely mean a typo: say which network was meant.
  bool host_bits = false;
  for (unsigned i = 0; i < max / 8; ++i) {
    unsigned keep = prefix >= 8 * (i + 1) ? 8 : (prefix > 8 * i ? prefix - 8 * i : 0);
    auto mask = static_cast<unsigned char>(keep == 0 ? 0 : 0xff << (8 - keep));
    host_bits = host_bits || (bytes[i] & ~mask) != 0;
    bytes[i] &= mask;
  }
  if (!host_bits) return std::nullopt;
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(v4 ? AF_INET : AF_INET6, bytes, text, sizeof text);
  return quote(s) + " has host bits set after the prefix: the network is " + text + "/" +
         std::to_string(prefix);
}

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
  /// request_buffering: a size up to max_request_buffering (0 = off).
  template <class T>
  handler into_buffering(T& out) {
    return [this, &out](const node& n, const std::string& path) {
      std::uint64_t v = 0;
      if (!read(n, path, v)) return;
      if (v > max_request_buffering)
        return fail(path,
                    "at most 1m: buffered bodies are held in memory (larger ones are "
                    "streamed; 0 streams every body)");
      out = v;
    };
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
  void read_resolve(const node& n, const std::string& path, upstream& u);
  void read_admin(const node& n, const std::string& path);
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
  void read_log_fields(const node& n, const std::string& path, std::vector<log_field>& out);
  void read_request_id(const node& n, const std::string& path);
  void read_trace_context(const node& n, const std::string& path);
  // Rate limits (ratelimits.cpp, issue 11).
  void read_rate_limit(const node& n, const std::string& path);
  void read_rate_key(const node& n, const std::string& path, rate_limit& rl);
  void read_rate(const node& n, const std::string& path, rate_limit& rl);
  void read_redis(const node& n, const std::string& path);
  void read_route_rate_limits(const node& n, const std::string& path, route& r);

  // Checks across sections, after the walk.
  void check_required();
  void check_route_upstreams();
  void check_route_listeners();
  void check_route_targets();
  void check_rate_limits();

  config cfg_;
  std::vector<std::string> errors_;
  std::set<std::string> mistyped_lists_;  // top-level lists that were not lists
  std::set<std::string> listen_addresses_;
  std::set<std::string> upstream_names_;
  std::set<std::string> route_names_;
  std::set<std::string> listener_names_;
  std::set<std::string> rate_limit_names_;
  // The routes with one host and path matcher, for the never-matching check.
  struct route_group {
    std::vector<std::size_t> without_conditions;                   // no header or query condition
    std::map<std::string, std::vector<std::size_t>> by_condition;  // by their first one
  };
  // Lowercased host + '\0' + path matcher kind + pattern → its group.
  std::map<std::string, route_group> route_keys_;
};

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

}  // namespace trafficcop::config::detail
