// SPDX-License-Identifier: MIT
// libFuzzer target: the header and URL rules of src/http/rules.hpp on arbitrary bytes.
//
// The input is cut at '\n': line 0 is a raw query, lines 1 and 2 a base path and an inbound
// path, and every line from 3 on is also a header line "name:value" of one header_map. Every
// line goes through the value grammars too. Each function is checked against a plain
// reference written here from its RFC, not only for crashes:
//   - is_valid_host against RFC 3986 uri-host [":" port] as an RE2 expression (reg-name or
//     bracketed IPv6address; port at most 5 digits, at most 65535);
//   - parse_content_length, classify_transfer_encoding, is_token, is_valid_field_value
//     against their grammars (RFC 9110 §8.6, RFC 9112 §6.1, RFC 9110 §5.6.2, §5.5);
//   - sanitize_query's re-encoding is a fixed point (re-sanitising it leaves it alone) made of
//     QueryEscape bytes only; merge_query and join_path give the documented strings;
//   - remove_hop_by_hop removes exactly the fixed hop-by-hop names and what any Connection line
//     lists, keeping the other lines in order; upgrade_type only answers when Connection lists
//     "upgrade", never h2c.
#include <re2/re2.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "http/rules.hpp"
#include "trafficcop/http.hpp"

namespace {

using trafficcop::fuzz::check;
namespace http = trafficcop::http;
using trafficcop::header_map;

char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c + 32) : c; }
bool ieq(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
// RFC 9110 §5.6.1: the non-empty trimmed elements of a list.
std::vector<std::string_view> elements(std::string_view list) {
  std::vector<std::string_view> out;
  for (auto e : trafficcop::fuzz::split(list, ','))
    if (!trim(e).empty()) out.push_back(trim(e));
  return out;
}

const RE2& host_grammar() {
  // RFC 3986 §3.2.2 and Appendix A. IPvFuture and zone identifiers are not accepted.
  static const RE2 re = [] {
    const std::string h16 = "[0-9A-Fa-f]{1,4}";
    const std::string dec = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    const std::string v4 = dec + "\\." + dec + "\\." + dec + "\\." + dec;
    const std::string ls32 = "(?:" + h16 + ":" + h16 + "|" + v4 + ")";
    auto rep = [&](int lo, int hi) {
      return "(?:" + h16 + ":){" + std::to_string(lo) + "," + std::to_string(hi) + "}";
    };
    const std::string v6 = "(?:" + rep(6, 6) + ls32 +                              //
                           "|::" + rep(5, 5) + ls32 +                              //
                           "|(?:" + h16 + ")?::" + rep(4, 4) + ls32 +              //
                           "|(?:" + rep(0, 1) + h16 + ")?::" + rep(3, 3) + ls32 +  //
                           "|(?:" + rep(0, 2) + h16 + ")?::" + rep(2, 2) + ls32 +  //
                           "|(?:" + rep(0, 3) + h16 + ")?::" + h16 + ":" + ls32 +  //
                           "|(?:" + rep(0, 4) + h16 + ")?::" + ls32 +              //
                           "|(?:" + rep(0, 5) + h16 + ")?::" + h16 +               //
                           "|(?:" + rep(0, 6) + h16 + ")?::)";
    const std::string reg_name = "(?:[A-Za-z0-9._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})+";
    return RE2("(?:" + reg_name + "|\\[" + v6 + "\\])(?::([0-9]{0,5}))?", RE2::Latin1);
  }();
  return re;
}

bool ref_valid_host(std::string_view s) {
  std::string port;
  if (!RE2::FullMatch(re2::StringPiece(s.data(), s.size()), host_grammar(), &port)) return false;
  return port.empty() || std::stoul(port) <= 65535;
}

bool tchar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

void check_values(std::string_view v) {
  check(http::is_valid_host(v) == ref_valid_host(v), "is_valid_host is RFC 3986 uri-host[:port]",
        v);

  const bool digits = !v.empty() && v.size() <= 19 &&
                      std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
  const auto cl = http::parse_content_length(v);
  check(cl.has_value() == digits, "Content-Length is 1*DIGIT (19 at most)", v);
  if (cl) check(*cl == std::stoull(std::string(v)), "Content-Length's value", v);

  // RFC 9112 §6.1: chunked at most once, and last; alone → chunked.
  const auto codings = elements(v);
  const auto n_chunked = std::count_if(codings.begin(), codings.end(),
                                       [](std::string_view c) { return ieq(c, "chunked"); });
  http::te_kind want = http::te_kind::unsupported;
  if (n_chunked > 1 || (n_chunked == 1 && !ieq(codings.back(), "chunked")))
    want = http::te_kind::malformed;
  else if (n_chunked == 1 && codings.size() == 1)
    want = http::te_kind::chunked;
  check(http::classify_transfer_encoding(v) == want, "Transfer-Encoding classification", v);

  check(http::is_token(v) == (!v.empty() && std::all_of(v.begin(), v.end(), tchar)), "token", v);
  const bool field_value = std::none_of(v.begin(), v.end(), [](char c) {
    const auto b = static_cast<unsigned char>(c);
    return (b < 0x20 && b != '\t') || b == 0x7f;
  });
  check(http::is_valid_field_value(v) == field_value, "field-value", v);
}

bool query_escaped(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("-_.~%+=&").find(c) != std::string_view::npos;
  });
}

void check_query(std::string_view q) {
  const auto s = http::sanitize_query(q);
  if (!s) {
    check(q.find(';') == std::string_view::npos, "a ';' is never kept raw", q);
    return;
  }
  check(query_escaped(*s), "a re-encoded query holds QueryEscape bytes only", q);
  check(!http::sanitize_query(*s), "a re-encoded query is left alone the second time", q);
  check(s->size() <= 3 * q.size(), "re-encoding at most triples the length", q);
}

void check_join(std::string_view base, std::string_view in, std::string_view query) {
  const auto j = http::join_path(base, in);
  const bool bs = base.ends_with('/'), is = in.starts_with('/');
  std::string want(base);
  if (bs && is)
    want += in.substr(1);
  else
    want += std::string(!bs && !is ? "/" : "") + std::string(in);
  check(j == want, "join_path: exactly one '/' at the join", base);
  check(!j.empty() && (j.front() == '/' || !base.empty()), "join_path of an empty base is a path",
        in);
  const auto m = http::merge_query(query, in);
  check(m == (query.empty() || in.empty() ? std::string(query) + std::string(in)
                                          : std::string(query) + "&" + std::string(in)),
        "merge_query", query);
}

void check_fields(const std::vector<std::string_view>& lines) {
  header_map h;
  for (auto l : lines) {
    const auto colon = l.find(':');
    if (colon == std::string_view::npos) continue;
    h.add(trim(l.substr(0, colon)), trim(l.substr(colon + 1)));
  }
  std::vector<std::string_view> listed;
  bool conn_upgrade = false;
  for (const auto& f : h)
    if (ieq(f.name, "Connection"))
      for (auto t : elements(f.value)) {
        listed.push_back(t);
        conn_upgrade |= ieq(t, "upgrade");
      }

  // upgrade_type first: remove_hop_by_hop removes what it reads.
  if (const auto u = http::upgrade_type(h)) {
    check(conn_upgrade, "an upgrade needs Connection: upgrade");
    check(h.get("Upgrade").has_value(), "an upgrade needs an Upgrade field");
    check(!ieq(*u, "h2c"), "h2c is never an upgrade (spec 26)");
  }

  std::vector<std::pair<std::string, std::string>> want;
  for (const auto& f : h) {
    const bool drop = http::is_hop_by_hop(f.name) ||
                      std::any_of(listed.begin(), listed.end(),
                                  [&](std::string_view t) { return ieq(t, f.name); });
    if (!drop) want.emplace_back(f.name, f.value);
  }
  header_map after = h;
  http::remove_hop_by_hop(after);
  std::vector<std::pair<std::string, std::string>> got;
  for (const auto& f : after) got.emplace_back(f.name, f.value);
  check(got == want, "remove_hop_by_hop removes exactly the hop-by-hop and listed fields");

  header_map trailer = h;
  http::remove_forbidden_trailers(trailer);
  for (const auto& f : trailer)
    check(!http::is_forbidden_trailer(f.name) && !http::is_hop_by_hop(f.name),
          "no forbidden trailer field is kept", f.name);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 8 * 1024) return 0;
  const auto lines = trafficcop::fuzz::split(trafficcop::fuzz::as_text(data, size), '\n');
  for (auto l : lines) check_values(l);
  const auto at = [&](std::size_t i) { return i < lines.size() ? lines[i] : std::string_view{}; };
  check_query(at(0));
  check_join(at(1), at(2), at(0));
  check_fields(std::vector<std::string_view>(lines.begin() + std::min<std::size_t>(3, lines.size()),
                                             lines.end()));
  return 0;
}
