// SPDX-License-Identifier: MIT
// Byte classes of the HTTP/1.1 grammar (RFC 9110 §5.5, §5.6) and the scanning loops over them,
// shared by the head (parser.cpp) and the body (body.cpp) of the parsers. Internal.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace trafficcop::http1::chars {

template <class Pred>
constexpr std::array<bool, 256> table(Pred pred) {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) t[static_cast<std::size_t>(c)] = pred(c);
  return t;
}

// RFC 9110 §5.6.2: tchar.
inline constexpr auto tchar = table([](int c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
});
// RFC 9110 §5.5 field-value bytes, with SP and HTAB (trimmed at the ends later); also the
// reason-phrase (RFC 9112 §4): HTAB / SP / VCHAR / obs-text. No CTL, no DEL.
inline constexpr auto vchar = table([](int c) { return c == '\t' || (c >= 0x20 && c != 0x7f); });
// request-target bytes: VCHAR and obs-text (RFC 9112 §3.2, as Beast reads it).
/// Request-target bytes: visible ASCII but '#' (RFC 9112 §3.2: no fragment is sent), and
/// obs-text, which clients send unencoded in paths (kept, as nginx and Go do).
inline constexpr auto pathchar = table([](int c) { return c > 0x20 && c != 0x7f && c != '#'; });
// RFC 9110 §5.6.4: qdtext.
inline constexpr auto qdtext = table([](int c) {
  return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
         (c >= 0x5d && c <= 0x7e) || c >= 0x80;
});

inline bool is(const std::array<bool, 256>& t, char c) { return t[static_cast<unsigned char>(c)]; }

// The first byte at or after `i` (before `end`) that `t` does not allow. Scanning loops keep
// the position in a local: the scanner's members would be stored back at every byte.
inline std::size_t skip(const std::array<bool, 256>& t, const char* p, std::size_t i,
                        std::size_t end) {
  while (i < end && is(t, p[i])) ++i;
  return i;
}

// skip(vchar, ...), 8 bytes at a time while none of them is a CTL or DEL: field values are
// most of a head's bytes (user agents, cookies). A word goes to the byte loop when one of its
// bytes is below 0x20 or is 0x7f (HTAB too, which the byte loop then allows).
inline std::size_t skip_value(const char* p, std::size_t i, std::size_t end) {
  constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  while (end - i >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    const std::uint64_t below_space = (w - 0x20 * ones) & ~w & highs;
    const std::uint64_t x = w ^ (0x7f * ones);
    const std::uint64_t del = (x - ones) & ~x & highs;
    if (below_space | del) break;
    i += 8;
  }
  return skip(vchar, p, i, end);
}

inline bool ows(char c) { return c == ' ' || c == '\t'; }

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && ows(s.back())) s.remove_suffix(1);
  return s;
}

// A HEXDIG's value, or -1.
inline int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace trafficcop::http1::chars
