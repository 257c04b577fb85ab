// SPDX-License-Identifier: MIT
// libFuzzer target: request-target handling as the HTTP/1.1 server does it, on arbitrary
// bytes: absolute-form → origin-form (http::split_absolute_form), then the path's
// normalisation (http::normalize_target), which routes match and the upstream receives.
//
// Beyond "no crash, no UB", for a target that normalize_target accepts:
//   - the result starts with '/', and its query (from the first '?') is the input's, byte for byte;
//   - its path holds no "." or ".." segment and no %XX escape of an unreserved byte;
//   - it is a fixed point: normalising it again accepts it and changes nothing;
//   - it is no longer than the input;
// a rejected or non-origin target ("*", "") is left alone; and for absolute-form, a split gives
// an origin-form target and a valid host, and the input is scheme "://" host + target.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "http/rules.hpp"
#include "trafficcop/http.hpp"

namespace {

using trafficcop::fuzz::check;
namespace http = trafficcop::http;

bool unreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}
int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void check_normalized(std::string_view in, const std::string& out) {
  check(!out.empty() && out.front() == '/', "a normalised target starts with '/'", in);
  const auto qi = in.find('?'), qo = out.find('?');
  check((qi == std::string_view::npos) == (qo == std::string::npos), "query kept", in);
  if (qi != std::string_view::npos)
    check(in.substr(qi) == std::string_view(out).substr(qo), "query byte for byte", in);
  const std::string_view path = std::string_view(out).substr(0, qo);
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '%') continue;
    check(i + 2 < path.size() && hex(path[i + 1]) >= 0 && hex(path[i + 2]) >= 0,
          "escapes kept well-formed", in);
    check(!unreserved(static_cast<char>(hex(path[i + 1]) * 16 + hex(path[i + 2]))),
          "escaped unreserved bytes decoded", in);
  }
  for (std::string_view rest = path.substr(1);;) {
    const auto slash = rest.find('/');
    const auto seg = rest.substr(0, slash);
    check(seg != "." && seg != "..", "no dot segment left", in);
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  check(out.size() <= in.size(), "normalising never lengthens", in);
  std::string again = out;
  check(http::normalize_target(again), "a normalised target is accepted again", in);
  check(again == out, "normalising is idempotent", in);
}

void check_target(std::string_view in) {
  std::string t(in);
  const bool ok = http::normalize_target(t);
  if (in.empty() || in.front() != '/') {
    check(ok && t == in, "a target that is not origin-form is left alone", in);
    return;
  }
  if (ok) check_normalized(in, t);
}

void check_absolute(std::string_view in) {
  if (in.empty() || in.front() == '/' || in == "*") return;  // the server's precondition
  std::string t(in);
  const auto host = http::split_absolute_form(t);
  if (!host) {
    check(t == in, "a rejected absolute-form target is left alone", in);
    return;
  }
  check(http::is_valid_host(*host), "the authority is a valid host", in);
  check(!t.empty() && t.front() == '/', "absolute-form becomes origin-form", in);
  const auto sep = in.find("://");
  check(sep != std::string_view::npos, "absolute-form has a scheme", in);
  std::string rebuilt = std::string(in.substr(0, sep + 3)) + *host;
  // "http://h" → "/", "http://h?q" → "/?q": the '/' was added.
  if (in.size() == rebuilt.size() || in[rebuilt.size()] == '?')
    rebuilt += std::string_view(t).substr(1);
  else
    rebuilt += t;
  check(rebuilt == in, "scheme://authority + origin-form is the input", in);
  check_target(t);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 8 * 1024) return 0;
  const auto in = trafficcop::fuzz::as_text(data, size);
  check_target(in);
  check_absolute(in);
  return 0;
}
