// SPDX-License-Identifier: MIT
// Header and URL rules of a proxy hop, after Go's net/http/httputil reverseproxy.go and net/url.
#include "http/rules.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <utility>
#include <vector>

namespace trafficcop::http {
namespace {

// OWS of RFC 9110 §5.6.3; CR and LF never reach here (spec 50 rejects them).
std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls f(element) for each trimmed, non-empty element of a comma-separated list and stops
// early when f returns true (RFC 9110 §5.6.1: empty elements are ignored). Returns whether
// it stopped early.
template <class F>
bool any_list_element(std::string_view list, F&& f) {
  while (true) {
    const auto comma = list.find(',');
    const auto elem = trim_ows(list.substr(0, comma));
    if (!elem.empty() && f(elem)) return true;
    if (comma == std::string_view::npos) return false;
    list.remove_prefix(comma + 1);
  }
}

bool list_has_token(std::string_view list, std::string_view token) noexcept {
  return any_list_element(list, [&](std::string_view e) { return iequals(e, token); });
}

constexpr bool is_hex(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

constexpr int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

// Go's url.QueryUnescape: '+' is a space; every '%' must start a valid %XX escape.
bool query_unescape(std::string_view s, std::string& out) {
  out.clear();
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '+') {
      out += ' ';
    } else if (c != '%') {
      out += c;
    } else if (i + 2 < s.size() && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      return false;
    }
  }
  return true;
}

// Go's url.QueryEscape: only unreserved bytes stay, space becomes '+', the rest %XX (upper).
void append_query_escaped(std::string& out, std::string_view s) {
  static constexpr char upper_hex[] = "0123456789ABCDEF";
  for (const char c : s) {
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved) {
      out += c;
    } else if (c == ' ') {
      out += '+';
    } else {
      const auto b = static_cast<unsigned char>(c);
      out += '%';
      out += upper_hex[b >> 4];
      out += upper_hex[b & 15];
    }
  }
}

// Go's url.ParseQuery followed by Values.Encode: pairs holding ';' or a bad escape are dropped,
// keys are sorted bytewise, and the values of one key keep their order.
std::string reencode_query(std::string_view raw) {
  std::vector<std::pair<std::string, std::string>> pairs;
  std::string_view rest = raw;
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const auto pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (pair.empty() || pair.find(';') != std::string_view::npos) continue;
    const auto eq = pair.find('=');
    const auto key = pair.substr(0, eq);
    const auto value = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    std::string k, v;
    if (!query_unescape(key, k) || !query_unescape(value, v)) continue;
    pairs.emplace_back(std::move(k), std::move(v));
  }
  // std::string compares like memcmp (unsigned bytes), as Go's string ordering does.
  std::stable_sort(pairs.begin(), pairs.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string out;
  out.reserve(raw.size());
  for (const auto& [k, v] : pairs) {
    if (!out.empty()) out += '&';
    append_query_escaped(out, k);
    out += '=';
    append_query_escaped(out, v);
  }
  return out;
}

// Go's url.defaultMaxParams (CVE-2026-39825, #78948).
constexpr std::size_t max_query_params = 10000;

// RFC 9110 §5.6.2 tchar.
constexpr std::array<bool, 256> make_tchar_table() {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (const char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}
constexpr auto tchar_table = make_tchar_table();

}  // namespace

bool is_hop_by_hop(std::string_view name) noexcept {
  // Go's hopHeaders (RFC 2616 §13.5.1 plus HTTP2-Settings, #80416), by length: every field of
  // every message passes here, and most have a length none of these has.
  switch (name.size()) {
    case 2:
      return iequals(name, "Te");
    case 7:
      return iequals(name, "Trailer") || iequals(name, "Upgrade");
    case 10:
      return iequals(name, "Connection") || iequals(name, "Keep-Alive");
    case 14:
      return iequals(name, "HTTP2-Settings");
    case 16:
      return iequals(name, "Proxy-Connection");
    case 17:
      return iequals(name, "Transfer-Encoding");
    case 18:
      return iequals(name, "Proxy-Authenticate");
    case 19:
      return iequals(name, "Proxy-Authorization");
    default:
      return false;
  }
}

void remove_hop_by_hop(header_map& h) {
  // Spec 9: gather the tokens of every Connection line before removing anything, so an empty
  // first line cannot hide the later ones (CVE-2021-33197, #46313). Copied into one string
  // because the erase below moves the fields; common values ("keep-alive") fit in SSO.
  std::string listed;
  for (const auto& f : h) {
    if (!iequals(f.name, "Connection")) continue;
    if (!listed.empty()) listed += ',';
    listed += f.value;
  }
  // Tokens that name a hop-by-hop field anyway, or no field ("close"), need no second pass:
  // "Connection: keep-alive" and "close", most of what is sent, skip the per-field list scan.
  bool extra = any_list_element(
      listed, [](std::string_view t) { return !is_hop_by_hop(t) && !iequals(t, "close"); });
  h.erase_if([&](const header_map::field& f) {
    return is_hop_by_hop(f.name) || (extra && list_has_token(listed, f.name));
  });
}

te_kind classify_transfer_encoding(std::string_view value) noexcept {
  std::size_t codings = 0, chunked = 0;
  bool chunked_last = false;
  any_list_element(value, [&](std::string_view coding) {
    ++codings;
    chunked_last = iequals(coding, "chunked");
    if (chunked_last) ++chunked;
    return false;
  });
  if (chunked > 1 || (chunked == 1 && !chunked_last)) return te_kind::malformed;
  if (chunked == 1 && codings == 1) return te_kind::chunked;
  return te_kind::unsupported;
}

bool te_has_trailers(const header_map& in) { return in.has_token("TE", "trailers"); }

std::string join_path(std::string_view base, std::string_view in) {
  // Go's singleJoiningSlash / joinURLPath on EscapedPath(): raw bytes, so %2F is not a '/'.
  const bool base_slash = !base.empty() && base.back() == '/';
  const bool in_slash = !in.empty() && in.front() == '/';
  std::string out;
  out.reserve(base.size() + in.size() + 1);
  out.append(base);
  if (base_slash && in_slash) {
    out.append(in.substr(1));
  } else {
    if (!base_slash && !in_slash) out += '/';
    out.append(in);
  }
  return out;
}

std::string merge_query(std::string_view target, std::string_view in) {
  std::string out;
  out.reserve(target.size() + in.size() + 1);
  out.append(target);
  if (!target.empty() && !in.empty()) out += '&';
  out.append(in);
  return out;
}

std::optional<std::string> sanitize_query(std::string_view raw) {
  // Go's cleanQueryParams. Over the limit, ParseQuery fails before parsing and yields nothing.
  if (static_cast<std::size_t>(std::count(raw.begin(), raw.end(), '&')) + 1 > max_query_params)
    return std::string{};
  for (std::size_t i = 0; i < raw.size();) {
    if (raw[i] == ';') return reencode_query(raw);
    if (raw[i] != '%') {
      ++i;
      continue;
    }
    if (i + 2 >= raw.size() || !is_hex(raw[i + 1]) || !is_hex(raw[i + 2]))
      return reencode_query(raw);
    i += 3;
  }
  return std::nullopt;
}

std::string_view host_of(std::string_view addr) noexcept {
  // Go's net.SplitHostPort; "" when it would fail.
  const auto colon = addr.rfind(':');
  if (colon == std::string_view::npos) return {};
  std::string_view host;
  std::size_t no_open_from = 0, no_close_from = 0;
  if (addr.front() == '[') {
    const auto end = addr.find(']');
    if (end == std::string_view::npos || end + 1 != colon) return {};
    host = addr.substr(1, end - 1);
    no_open_from = 1;
    no_close_from = end + 1;
  } else {
    host = addr.substr(0, colon);
    if (host.find(':') != std::string_view::npos) return {};  // bare IPv6 without brackets
  }
  if (addr.find('[', no_open_from) != std::string_view::npos) return {};
  if (addr.find(']', no_close_from) != std::string_view::npos) return {};
  return host;
}

void apply_forwarded(header_map& out, std::string_view client_addr, std::string_view in_host,
                     bool tls, forwarded_mode mode, std::string_view peer_addr, bool peer_trusted) {
  if (mode == forwarded_mode::off) return;  // spec 14
  const std::string_view ip =
      host_of(mode == forwarded_mode::append && !peer_addr.empty() ? peer_addr : client_addr);
  if (mode == forwarded_mode::replace || !peer_trusted) {
    // Spec 15: nothing the client sent about earlier hops is trusted (replace), or the peer is
    // not a trusted proxy (append with trusted_proxies): what it claims is dropped.
    out.erase("Forwarded");
    out.erase("X-Forwarded-For");
    out.erase("X-Forwarded-Host");
    out.erase("X-Forwarded-Proto");
    if (!ip.empty()) out.add("X-Forwarded-For", ip);
  } else if (!ip.empty()) {
    // Spec 13: every prior line joined with ", ", then the client ip, as one line. Like Go, a
    // prior line counts even when empty.
    std::string xff;
    bool prior = false;
    for (const auto& f : out) {
      if (!iequals(f.name, "X-Forwarded-For")) continue;
      if (prior) xff += ", ";
      xff += f.value;
      prior = true;
    }
    if (prior) xff += ", ";
    xff += ip;
    out.set("X-Forwarded-For", xff);
  }
  // Spec 16, 56: spoofed inbound values are replaced.
  out.set("X-Forwarded-Host", in_host);
  out.set("X-Forwarded-Proto", tls ? "https" : "http");
}

namespace {

constexpr bool is_unreserved(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

constexpr bool is_sub_delim(char c) noexcept {
  return std::string_view("!$&'()*+,;=").find(c) != std::string_view::npos;
}

bool is_dot_segment(std::string_view s) noexcept { return s == "." || s == ".."; }

// An encoded slash or backslash, or a raw backslash, at seg[i]: its length, else 0.
std::size_t separator_at(std::string_view seg, std::size_t i) noexcept {
  if (seg[i] == '\\') return 1;
  if (seg[i] != '%' || i + 2 >= seg.size()) return 0;
  const auto e = seg.substr(i + 1, 2);
  return iequals(e, "2f") || iequals(e, "5c") ? 3 : 0;
}

// A segment that a backend decoding "%2F"/"%5C", or taking '\' for '/', would split into
// pieces of which one is a dot segment: "..%2Fadmin" is "../admin" to such a backend.
bool hides_dot_segment(std::string_view seg) noexcept {
  std::size_t start = 0;
  bool split = false;
  for (std::size_t i = 0; i < seg.size();) {
    const auto sep = separator_at(seg, i);
    if (sep == 0) {
      ++i;
      continue;
    }
    if (is_dot_segment(seg.substr(start, i - start))) return true;
    split = true;
    i += sep;
    start = i;
  }
  return split && is_dot_segment(seg.substr(start));
}

// RFC 3986 §5.2.4 over a path that starts with '/', segment by segment.
void remove_dot_segments(std::string_view in, std::string& out) {
  out.clear();
  in.remove_prefix(1);
  for (;;) {
    const auto slash = in.find('/');
    const bool last = slash == std::string_view::npos;
    const auto seg = in.substr(0, slash);
    if (seg == "..") {
      const auto cut = out.rfind('/');
      out.resize(cut == std::string::npos ? 0 : cut);
    }
    if (is_dot_segment(seg)) {
      if (last) out += '/';
    } else {
      out += '/';
      out.append(seg);
    }
    if (last) break;
    in.remove_prefix(slash + 1);
  }
  if (out.empty()) out += '/';
}

}  // namespace

bool normalize_target(std::string& target) {
  if (target.empty() || target.front() != '/') return true;
  const auto q = target.find('?');
  const std::string_view path = std::string_view(target).substr(0, q);
  // Nearly every path has neither an escape nor a dot segment: leave those as they are.
  if (path.find('%') == std::string_view::npos && path.find("/.") == std::string_view::npos &&
      path.find('\\') == std::string_view::npos)
    return true;
  std::string decoded;
  decoded.reserve(path.size());
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '%') {
      decoded += path[i];
      continue;
    }
    if (i + 2 >= path.size() || !is_hex(path[i + 1]) || !is_hex(path[i + 2])) return false;
    const char c = static_cast<char>(hex_value(path[i + 1]) * 16 + hex_value(path[i + 2]));
    if (is_unreserved(c))
      decoded += c;
    else
      decoded.append(path.substr(i, 3));
    i += 2;
  }
  for (std::string_view rest = decoded; !rest.empty();) {
    const auto slash = rest.find('/');
    if (hides_dot_segment(rest.substr(0, slash))) return false;
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  std::string out;
  remove_dot_segments(decoded, out);
  if (q != std::string::npos) out.append(target, q);
  target = std::move(out);
  return true;
}

std::optional<std::string> split_absolute_form(std::string& target) {
  const auto sep = target.find("://");
  if (sep == std::string::npos) return std::nullopt;
  const std::string_view scheme = std::string_view(target).substr(0, sep);
  if (!iequals(scheme, "http") && !iequals(scheme, "https")) return std::nullopt;
  const auto auth = sep + 3;
  const auto path = target.find_first_of("/?", auth);
  std::string authority =
      target.substr(auth, path == std::string::npos ? std::string::npos : path - auth);
  if (!is_valid_host(authority)) return std::nullopt;
  std::string origin = path == std::string::npos ? "/" : target.substr(path);
  if (origin.front() == '?') origin.insert(0, "/");
  target = std::move(origin);
  return authority;
}

bool is_valid_host(std::string_view host) noexcept {
  std::string_view name = host, port;
  if (host.starts_with('[')) {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return false;
    const auto literal = host.substr(1, close - 1);
    char buf[INET6_ADDRSTRLEN] = {};
    unsigned char addr[16];
    // inet_pton reads a C string: a NUL would end the literal early ("[::1\0junk]").
    if (literal.empty() || literal.size() >= sizeof buf ||
        literal.find('\0') != std::string_view::npos)
      return false;
    std::copy(literal.begin(), literal.end(), buf);
    if (::inet_pton(AF_INET6, buf, addr) != 1) return false;
    const auto rest = host.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return false;
    name = {};
    if (!rest.empty()) port = rest.substr(1);
  } else {
    const auto colon = host.find(':');
    if (colon != std::string_view::npos) {
      name = host.substr(0, colon);
      port = host.substr(colon + 1);
    }
    if (name.empty()) return false;
    for (std::size_t i = 0; i < name.size(); ++i) {
      const char c = name[i];
      if (is_unreserved(c) || is_sub_delim(c)) continue;
      if (c == '%' && i + 2 < name.size() && is_hex(name[i + 1]) && is_hex(name[i + 2])) {
        i += 2;
        continue;
      }
      return false;
    }
  }
  if (port.size() > 5) return false;
  std::uint32_t n = 0;
  for (const char c : port) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<std::uint32_t>(c - '0');
  }
  return n <= 65535;
}

bool is_token(std::string_view s) noexcept {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return tchar_table[static_cast<unsigned char>(c)]; });
}

bool is_valid_field_value(std::string_view s) noexcept {
  // obs-text (0x80-0xff) is allowed, as RFC 9110 §5.5 and Go's httpguts do.
  return std::none_of(s.begin(), s.end(), [](char c) {
    const auto b = static_cast<unsigned char>(c);
    return (b < 0x20 && b != '\t') || b == 0x7f;
  });
}

std::optional<std::string> upgrade_type(const header_map& in) {
  // Spec 24: Go's upgradeType reads the first Upgrade line only.
  if (!in.has_token("Connection", "upgrade")) return std::nullopt;
  const auto first_line = in.get("Upgrade");
  if (!first_line || trim_ows(*first_line).empty()) return std::nullopt;
  // Spec 26: like Go, refuse if the h2c token appears anywhere in that first line, so
  // "h2c, websocket" cannot smuggle an h2c upgrade either.
  if (list_has_token(*first_line, "h2c")) return std::nullopt;
  std::string_view type;
  any_list_element(*first_line, [&](std::string_view e) {
    type = e;
    return true;
  });
  // A line of only commas gives "", which is_printable_ascii rejects (spec 24: 502).
  return std::string(type);
}

bool is_printable_ascii(std::string_view s) noexcept {
  if (s.empty() || s.front() == ' ' || s.back() == ' ') return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

std::optional<std::uint64_t> parse_content_length(std::string_view v) noexcept {
  if (v.empty() || v.size() > 19) return std::nullopt;
  std::uint64_t n = 0;
  for (char ch : v) {
    if (ch < '0' || ch > '9') return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(ch - '0');
  }
  return n;
}

bool is_forbidden_trailer(std::string_view name) noexcept {
  static constexpr std::string_view forbidden[] = {"content-length",
                                                   "host",
                                                   "authorization",
                                                   "proxy-authorization",
                                                   "content-type",
                                                   "content-encoding",
                                                   "content-range",
                                                   "cache-control",
                                                   "expect",
                                                   "max-forwards",
                                                   "pragma",
                                                   "range",
                                                   "set-cookie",
                                                   "www-authenticate",
                                                   "age",
                                                   "expires",
                                                   "date",
                                                   "location",
                                                   "retry-after",
                                                   "vary",
                                                   "warning"};
  if (is_hop_by_hop(name)) return true;
  for (auto f : forbidden)
    if (iequals(name, f)) return true;
  return false;
}

void remove_forbidden_trailers(header_map& trailer) {
  remove_hop_by_hop(trailer);  // also what Connection lists
  trailer.erase_if([](const header_map::field& f) { return is_forbidden_trailer(f.name); });
}

}  // namespace trafficcop::http
