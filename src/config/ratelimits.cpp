// SPDX-License-Identifier: MIT
// The loader's rate limit sections (issue 11): `rate_limits:`, `redis:` and
// `routes[].rate_limits`, and the checks across them after the walk.
#include <charconv>
#include <cstdint>
#include <string>

#include "config/loader.hpp"

namespace trafficcop::config::detail {
namespace {

constexpr std::string_view key_parts = "client_ip, header:NAME, route, upstream";

/// The longest a full bucket may take to drain back (burst - 1 intervals): beyond, the
/// bucket's arithmetic in nanoseconds would come close to overflowing, and no real limit
/// needs it.
constexpr auto max_tolerance = std::chrono::hours(24 * 30);

}  // namespace

void loader::read_rate_limit(const node& n, const std::string& path) {
  rate_limit& rl = cfg_.rate_limits.emplace_back();
  bool has_burst = false;
  auto name = [&](const node& v, const std::string& at) {
    if (!read_non_empty(v, at, rl.name)) return;
    // The name is a metrics label and a quoted string in RateLimit-Policy: keep it plain.
    if (!is_name(rl.name))
      return fail(at, quote(rl.name) + " may hold only letters, digits, '-', '_' and '.'");
    if (!rate_limit_names_.insert(rl.name).second)
      fail(at, "duplicate rate limit name " + quote(rl.name));
  };
  auto burst = [&](const node& v, const std::string& at) {
    std::uint32_t b = 0;
    if (!read(v, at, b)) return;
    if (b == 0) return fail(at, "must be at least 1");
    rl.burst = b;
    has_burst = true;
  };
  auto scope = [&](const node& v, const std::string& at) {
    auto s = scalar(v, at, "local or global");
    if (!s) return;
    if (*s != "local" && *s != "global")
      return fail(at, quote(*s) + " is not one of local, global");
    rl.global = *s == "global";
  };
  read_fields(n, path,
              {
                  {"name", name, true},
                  {"key", [&](auto& v, auto& at) { read_rate_key(v, at, rl); }},
                  {"rate", [&](auto& v, auto& at) { read_rate(v, at, rl); }, true},
                  {"burst", burst},
                  {"scope", scope},
              });
  if (rl.count == 0) return;  // rate missing or wrong: already reported
  // Default burst: one period's worth ("100/s" lets 100 through at once).
  if (!has_burst)
    rl.burst = static_cast<std::uint32_t>(std::min<std::uint64_t>(rl.count, 1u << 30));
  auto per = std::chrono::duration_cast<std::chrono::nanoseconds>(rl.per);
  // redis keeps the bucket in whole microseconds: a shorter interval would be rounded.
  if (rl.global && per.count() / static_cast<std::int64_t>(rl.count) < 10'000)
    fail(path + ".rate", "a global limit allows at most 100000/s (redis counts microseconds)");
  long double refill = static_cast<long double>(per.count()) / rl.count * (rl.burst - 1);
  if (refill > std::chrono::nanoseconds(max_tolerance).count())
    fail(child(path, "burst"), std::to_string(rl.burst) + " requests at this rate take more than " +
                                   "30 days to refill; lower burst or raise rate");
}

/// `key: client_ip`, or a list of parts joined into the bucket's name.
void loader::read_rate_key(const node& n, const std::string& path, rate_limit& rl) {
  rl.key.clear();
  auto part = [&](const node& v, const std::string& at) {
    auto s = scalar(v, at, std::string("one of ") + std::string(key_parts));
    if (!s) return;
    rate_key_part p;
    if (*s == "client_ip") {
      p.what = rate_key_part::kind::client_ip;
    } else if (*s == "route") {
      p.what = rate_key_part::kind::route;
    } else if (*s == "upstream") {
      p.what = rate_key_part::kind::upstream;
    } else if (s->starts_with("header:")) {
      std::string name = s->substr(7);
      if (!is_token(name))
        return fail(at, quote(name) + " is not a valid header name (RFC 9110 token)");
      p.what = rate_key_part::kind::header;
      p.header = to_lower(name);
    } else {
      return fail(at, quote(*s) + " is not one of " + std::string(key_parts));
    }
    if (std::find(rl.key.begin(), rl.key.end(), p) != rl.key.end())
      return fail(at, quote(*s) + " is listed twice");
    rl.key.push_back(std::move(p));
  };
  if (n.IsSequence()) {
    read_list(n, path, part);
    if (n.size() == 0)
      fail(path, "at least one key part is required (" + std::string(key_parts) + ")");
  } else {
    part(n, path);
  }
  if (rl.key.empty()) rl.key.push_back({});  // after an error: keep the default, say it once
}

/// `rate: N/s`, `N/m` or `N/h`.
void loader::read_rate(const node& n, const std::string& path, rate_limit& rl) {
  auto s = scalar(n, path, "a rate (e.g. 100/s, 20/m, 1000/h)");
  if (!s) return;
  std::string_view text = *s;
  auto bad = [&] { fail(path, quote(text) + " is not a rate: N/s, N/m or N/h, N from 1"); };
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return bad();
  std::uint64_t count = 0;
  auto digits = text.substr(0, slash);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), count);
  if (ec != std::errc{} || end != digits.data() + digits.size() || count == 0) return bad();
  auto unit = text.substr(slash + 1);
  if (unit == "s")
    rl.per = std::chrono::seconds(1);
  else if (unit == "m")
    rl.per = std::chrono::minutes(1);
  else if (unit == "h")
    rl.per = std::chrono::hours(1);
  else
    return bad();
  // One request per nanosecond at most: the bucket's clock.
  if (count > static_cast<std::uint64_t>(std::chrono::nanoseconds(rl.per).count()))
    return fail(path, quote(text) + " is more than one request per nanosecond");
  rl.count = count;
}

void loader::read_redis(const node& n, const std::string& path) {
  auto& r = cfg_.redis.emplace();
  auto address = [&](const node& v, const std::string& at) {
    if (!read_non_empty(v, at, r.address)) return;
    std::string_view a = r.address;
    if (a.starts_with("unix:")) {
      if (!a.substr(5).starts_with('/'))
        fail(at, quote(a) + ": a unix socket needs an absolute path (unix:/run/redis.sock)");
      return;
    }
    host_port hp;
    if (auto err = split_host_port(a, hp)) return fail(at, *err);
    if (!hp.port || *hp.port == 0)
      fail(at, quote(a) + " needs a port: host:port, [v6]:port or unix:/path");
  };
  auto password = [&](const node&, const std::string& at) {
    fail(at,
         "an inline password is not accepted (it would sit in the config file and in "
         "config dumps): use password_file (a file holding it) or password_env (the name of an "
         "environment variable holding it)");
  };
  auto env = [&](const node& v, const std::string& at) {
    if (!read_non_empty(v, at, r.password_env)) return;
    if (r.password_env.find('=') != std::string::npos)
      fail(at, quote(r.password_env) + " is not an environment variable name");
  };
  auto timeout = [&](const node& v, const std::string& at) {
    duration d{};
    if (!read(v, at, d)) return;
    if (d == duration::zero()) return fail(at, "must be greater than 0");
    r.timeout = d;
  };
  auto failure_mode = [&](const node& v, const std::string& at) {
    auto s = scalar(v, at, "open or closed");
    if (!s) return;
    if (*s != "open" && *s != "closed") return fail(at, quote(*s) + " is not one of open, closed");
    r.fail_open = *s == "open";
  };
  read_fields(
      n, path,
      {
          {"address", address},
          {"username", [&](auto& v, auto& at) { read_non_empty(v, at, r.username); }},
          {"password", password},
          {"password_file", [&](auto& v, auto& at) { read_file_path(v, at, r.password_file); }},
          {"password_env", env},
          {"timeout", timeout},
          {"failure_mode", failure_mode},
      });
  if (!r.password_file.empty() && !r.password_env.empty())
    fail(child(path, "password_env"), "password_file is given too; use one of them");
}

void loader::read_route_rate_limits(const node& n, const std::string& path, route& r) {
  read_list(n, path, [&](const node& v, const std::string& at) {
    std::string s;
    if (!read_non_empty(v, at, s)) return;
    if (std::find(r.rate_limits.begin(), r.rate_limits.end(), s) != r.rate_limits.end())
      return fail(at, quote(s) + " is listed twice");
    r.rate_limits.push_back(std::move(s));
  });
}

/// Route → rate limit names, and global limits → a redis block.
void loader::check_rate_limits() {
  if (!mistyped_lists_.contains("rate_limits")) {
    for (std::size_t i = 0; i < cfg_.routes.size(); ++i) {
      const auto& names = cfg_.routes[i].rate_limits;
      for (std::size_t j = 0; j < names.size(); ++j)
        if (!rate_limit_names_.contains(names[j]))
          fail(element(element("routes", i) + ".rate_limits", j),
               "no rate limit named " + quote(names[j]) + " (rate_limits[].name)");
    }
  }
  if (cfg_.redis) return;
  for (std::size_t i = 0; i < cfg_.rate_limits.size(); ++i)
    if (cfg_.rate_limits[i].global)
      fail(element("rate_limits", i) + ".scope",
           "global needs a redis: block (the store the instances share)");
}

}  // namespace trafficcop::config::detail
