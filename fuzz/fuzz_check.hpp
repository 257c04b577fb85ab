// SPDX-License-Identifier: MIT
// Small helpers shared by the fuzz targets other than HTTP/1's: the invariant check and a way
// to cut one input into several strings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace trafficcop::fuzz {

/// Aborts (a libFuzzer crash, a failed replay) with `what` when `ok` is false. `input` is
/// printed escaped, to make the failing piece of a multi-part input obvious.
inline void check(bool ok, const char* what, std::string_view input = {}) {
  if (ok) return;
  std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
  if (!input.empty()) {
    std::fputs("  input: \"", stderr);
    for (unsigned char c : input) {
      if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
        std::fputc(c, stderr);
      else
        std::fprintf(stderr, "\\x%02x", c);
    }
    std::fputs("\"\n", stderr);
  }
  std::abort();
}

/// The input as text.
inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

/// Splits at every `sep` (a separator byte the corpus and dictionary use, so that mutations
/// keep the parts apart); always at least one part.
inline std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  for (;;) {
    const auto at = s.find(sep);
    parts.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return parts;
    s.remove_prefix(at + 1);
  }
}

}  // namespace trafficcop::fuzz
