// SPDX-License-Identifier: MIT
// libFuzzer target: the YAML config loader (config::load_string) and its scalar grammars,
// parse_duration and parse_size, on arbitrary text.
//
// The whole input is loaded as a config file; each of its lines is also parsed as a duration
// and as a size. Beyond "no crash, no UB, no exception out of the loader":
//   - a load either yields a config and no errors or errors and no config, and no error is
//     empty;
//   - parse_duration and parse_size agree with a plain reference parser written below in
//     128-bit arithmetic (values, rounding to the millisecond, overflow → nullopt).
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "fuzz_check.hpp"

namespace {

using trafficcop::fuzz::check;
__extension__ using i128 = __int128;

constexpr char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? char(c + 32) : c; }
bool digit(char c) { return c >= '0' && c <= '9'; }

// Reference grammar of parse_duration (docs/config.md): ["-"|"+"] then "0", or "-1", or one or
// more <digits>[.<digits>]<unit> terms, unit ms|s|m|h (case-sensitive). The value is summed
// exactly in units of 1e-9 ms (fraction digits past the ninth ignored) and rounded half up.
std::optional<std::int64_t> ref_duration(std::string_view t) {
  bool neg = false;
  if (!t.empty() && (t[0] == '-' || t[0] == '+')) {
    neg = t[0] == '-';
    t.remove_prefix(1);
  }
  if (t == "0") return 0;
  if (neg && t == "1") return -1;
  if (t.empty()) return std::nullopt;
  constexpr i128 max = std::numeric_limits<std::int64_t>::max();
  i128 total = 0;  // 1e-9 ms
  while (!t.empty()) {
    i128 whole = 0;
    std::size_t n = 0;
    for (; n < t.size() && digit(t[n]); ++n) {
      whole = whole * 10 + (t[n] - '0');
      if (whole > max) return std::nullopt;  // beyond int64: from_chars fails
    }
    const bool has_whole = n > 0;
    t.remove_prefix(n);
    i128 frac = 0, scale = 1;
    bool has_frac = false;
    if (!t.empty() && t[0] == '.') {
      t.remove_prefix(1);
      for (n = 0; n < t.size() && digit(t[n]); ++n) {
        has_frac = true;
        if (n < 9) frac = frac * 10 + (t[n] - '0'), scale *= 10;
      }
      t.remove_prefix(n);
    }
    if (!has_whole && !has_frac) return std::nullopt;
    i128 unit;
    if (t.starts_with("ms"))
      unit = 1, t.remove_prefix(2);
    else if (t.starts_with("s"))
      unit = 1000, t.remove_prefix(1);
    else if (t.starts_with("m"))
      unit = 60'000, t.remove_prefix(1);
    else if (t.starts_with("h"))
      unit = 3'600'000, t.remove_prefix(1);
    else
      return std::nullopt;
    total += whole * unit * 1'000'000'000 + frac * unit * (1'000'000'000 / scale);
    if (total / 1'000'000'000 > max) return std::nullopt;
  }
  i128 ms = total / 1'000'000'000;
  if (total % 1'000'000'000 >= 500'000'000) ++ms;
  if (ms > max) return std::nullopt;
  return static_cast<std::int64_t>(neg ? -ms : ms);
}

// Reference grammar of parse_size: <digits>[k|kib|m|mib|g|gib] (case-insensitive), no sign,
// no space; overflow of 64 bits → nullopt.
std::optional<std::uint64_t> ref_size(std::string_view t) {
  constexpr i128 max = std::numeric_limits<std::uint64_t>::max();
  i128 n = 0;
  std::size_t i = 0;
  for (; i < t.size() && digit(t[i]); ++i) {
    n = n * 10 + (t[i] - '0');
    if (n > max) return std::nullopt;
  }
  if (i == 0) return std::nullopt;
  std::string suffix;
  for (char c : t.substr(i)) suffix += lower(c);
  i128 f;
  if (suffix.empty())
    f = 1;
  else if (suffix == "k" || suffix == "kib")
    f = i128{1} << 10;
  else if (suffix == "m" || suffix == "mib")
    f = i128{1} << 20;
  else if (suffix == "g" || suffix == "gib")
    f = i128{1} << 30;
  else
    return std::nullopt;
  if (n * f > max) return std::nullopt;
  return static_cast<std::uint64_t>(n * f);
}

void check_scalars(std::string_view line) {
  namespace config = trafficcop::config;
  const auto d = config::parse_duration(line);
  const auto rd = ref_duration(line);
  check(d.has_value() == rd.has_value(), "parse_duration accepts what the grammar does", line);
  if (d) check(d->count() == *rd, "parse_duration's value", line);
  const auto s = config::parse_size(line);
  const auto rs = ref_size(line);
  check(s.has_value() == rs.has_value(), "parse_size accepts what the grammar does", line);
  if (s) check(*s == *rs, "parse_size's value", line);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace config = trafficcop::config;
  if (size > 16 * 1024) return 0;  // bounded work per input
  const auto text = trafficcop::fuzz::as_text(data, size);
  for (auto line : trafficcop::fuzz::split(text, '\n'))
    if (line.size() <= 64) check_scalars(line);

  const auto r = config::load_string(text, "fuzz.yaml");
  check(r.cfg.has_value() == r.errors.empty(), "a config xor errors", text);
  for (const auto& e : r.errors) check(!e.empty(), "an error says something");
  if (r.cfg) check(config::summary(*r.cfg).starts_with("ok: "), "summary of a good config");
  return 0;
}
