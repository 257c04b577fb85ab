// SPDX-License-Identifier: MIT
#include "http/trace_context.hpp"

namespace trafficcop::http {
namespace {

constexpr bool lower_hex(char c) noexcept {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

constexpr int hex_value(char c) noexcept { return c <= '9' ? c - '0' : c - 'a' + 10; }

}  // namespace

bool is_nonzero_lower_hex(std::string_view s) noexcept {
  bool nonzero = false;
  for (char c : s) {
    if (!lower_hex(c)) return false;
    nonzero |= c != '0';
  }
  return nonzero;
}

std::optional<traceparent> parse_traceparent(std::string_view v) noexcept {
  // version "-" trace-id "-" parent-id "-" trace-flags: 2 + 1 + 32 + 1 + 16 + 1 + 2.
  constexpr std::size_t size_00 = 55;
  if (v.size() < size_00) return std::nullopt;
  if (!lower_hex(v[0]) || !lower_hex(v[1])) return std::nullopt;
  bool v00 = v[0] == '0' && v[1] == '0';
  if (v[0] == 'f' && v[1] == 'f') return std::nullopt;  // §3.2.2.1: ff is invalid
  // §3.2.4: version 00 has nothing after the flags; a later version may add "-" and more.
  if (v00 ? v.size() != size_00 : v.size() > size_00 && v[size_00] != '-') return std::nullopt;
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  traceparent tp;
  tp.trace_id = v.substr(3, 32);
  tp.parent_id = v.substr(36, 16);
  // §3.2.2.3, §3.2.2.4: all-zero ids are invalid.
  if (!is_nonzero_lower_hex(tp.trace_id) || !is_nonzero_lower_hex(tp.parent_id))
    return std::nullopt;
  if (!lower_hex(v[53]) || !lower_hex(v[54])) return std::nullopt;
  tp.flags = static_cast<std::uint8_t>(hex_value(v[53]) * 16 + hex_value(v[54]));
  return tp;
}

void append_traceparent(std::string& out, std::string_view trace_id, std::string_view span_id,
                        std::uint8_t flags) {
  static constexpr char hex[] = "0123456789abcdef";
  out += "00-";
  out += trace_id;
  out += '-';
  out += span_id;
  out += '-';
  out += hex[flags >> 4];
  out += hex[flags & 15];
}

bool is_sane_request_id(std::string_view v) noexcept {
  if (v.empty() || v.size() > max_request_id_bytes) return false;
  for (unsigned char c : v)
    if (c < 0x21 || c > 0x7e || c == '"' || c == '\\') return false;
  return true;
}

}  // namespace trafficcop::http
