// SPDX-License-Identifier: MIT
// parse_duration and parse_size: the strict scalar grammars of the YAML config.
#include <array>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string_view>

#include "config/config.hpp"

namespace trafficcop::config {
namespace {

constexpr char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? char(c + 32) : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// Sub-millisecond fractions are kept in units of 1e-9 ms, so that "1.0005s" rounds once, at the
// end, instead of once per term.
constexpr std::int64_t frac_one = 1'000'000'000;

// One "<number><unit>" term of a duration, e.g. "1.5s".
struct term {
  std::int64_t whole_ms = 0;
  std::int64_t frac = 0;  // in units of 1e-9 ms, < frac_one
};

// Reads the unit at the front of `text` ("ms" before "m") and returns its length in ms.
std::optional<std::int64_t> take_unit(std::string_view& text) {
  static constexpr std::array<std::pair<std::string_view, std::int64_t>, 4> units{
      {{"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}}};
  for (const auto& [name, ms] : units) {
    if (text.starts_with(name)) {
      text.remove_prefix(name.size());
      return ms;
    }
  }
  return std::nullopt;
}

// Reads one term from the front of `text`: digits, an optional fraction, a unit.
std::optional<term> take_term(std::string_view& text) {
  std::size_t n = 0;
  while (n < text.size() && is_digit(text[n])) ++n;
  std::string_view whole = text.substr(0, n);
  text.remove_prefix(n);
  std::string_view frac;
  if (!text.empty() && text.front() == '.') {
    n = 1;
    while (n < text.size() && is_digit(text[n])) ++n;
    frac = text.substr(1, n - 1);
    text.remove_prefix(n);
  }
  if (whole.empty() && frac.empty()) return std::nullopt;
  auto unit_ms = take_unit(text);
  if (!unit_ms) return std::nullopt;

  term t;
  std::int64_t w = 0;
  if (!whole.empty() &&
      std::from_chars(whole.data(), whole.data() + whole.size(), w).ec != std::errc{})
    return std::nullopt;
  if (__builtin_mul_overflow(w, *unit_ms, &t.whole_ms)) return std::nullopt;
  // Digits past the ninth are below 1e-9 of a unit: too small to matter, but must be digits.
  std::int64_t f = 0, scale = 1;
  for (char c : frac.substr(0, 9)) {
    f = f * 10 + (c - '0');
    scale *= 10;
  }
  // f * unit_ms < 1e9 * 3.6e6 fits in 63 bits; split it into whole ms and a remainder.
  // Overflow-checked too: "9223372036854775.999s" has whole units that fit and a fraction that
  // does not.
  if (__builtin_add_overflow(t.whole_ms, f * *unit_ms / scale, &t.whole_ms)) return std::nullopt;
  t.frac = f * *unit_ms % scale * (frac_one / scale);
  return t;
}

}  // namespace

std::optional<duration> parse_duration(std::string_view text) {
  bool negative = false;
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  // Unitless numbers are ambiguous; only 0 and the flush_interval sentinel -1 are accepted.
  if (text == "0") return duration{0};
  if (negative && text == "1") return duration{-1};
  if (text.empty()) return std::nullopt;

  std::int64_t ms = 0, frac = 0;
  while (!text.empty()) {  // Go-style compound values: "1h30m"
    auto t = take_term(text);
    if (!t || __builtin_add_overflow(ms, t->whole_ms, &ms)) return std::nullopt;
    frac += t->frac;
    if (frac >= frac_one) {
      frac -= frac_one;
      if (__builtin_add_overflow(ms, 1, &ms)) return std::nullopt;
    }
  }
  if (frac >= frac_one / 2 && __builtin_add_overflow(ms, 1, &ms)) return std::nullopt;
  return duration{negative ? -ms : ms};
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::uint64_t n = 0;
  const char* last = text.data() + text.size();
  auto [end, ec] = std::from_chars(text.data(), last, n);
  if (ec != std::errc{}) return std::nullopt;
  std::string_view suffix(end, static_cast<std::size_t>(last - end));

  static constexpr std::array<std::pair<std::string_view, std::uint64_t>, 7> suffixes{
      {{"", 1},
       {"k", 1ull << 10},
       {"kib", 1ull << 10},
       {"m", 1ull << 20},
       {"mib", 1ull << 20},
       {"g", 1ull << 30},
       {"gib", 1ull << 30}}};
  for (const auto& [name, factor] : suffixes) {
    std::uint64_t bytes = 0;
    if (iequals(suffix, name)) {
      if (__builtin_mul_overflow(n, factor, &bytes)) return std::nullopt;
      return bytes;
    }
  }
  return std::nullopt;
}

}  // namespace trafficcop::config
