// SPDX-License-Identifier: MIT
// Tests of the loader's rate limit sections (issue 11): rate_limits, redis, routes[].rate_limits,
// limits.max_connections_per_client; every message.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.hpp"

namespace trafficcop::config {
namespace {

using namespace std::chrono_literals;
using errors = std::vector<std::string>;

// A valid config but for its routes; tests add the route's rate_limits and top-level keys.
std::string with(std::string_view route_extra, std::string_view top) {
  return std::string(R"(
listeners:
  - address: 127.0.0.1:8080
upstreams:
  - name: demo
    url: http://127.0.0.1:9000
routes:
  - upstream: demo
)") + std::string(route_extra) +
         "\n" + std::string(top);
}

errors errors_of(const std::string& yaml) { return load_string(yaml, "test.yaml").errors; }

config must_load(const std::string& yaml) {
  auto result = load_string(yaml, "test.yaml");
  for (const auto& e : result.errors) ADD_FAILURE() << e;
  return result.cfg.value_or(config{});
}

TEST(ConfigRateLimits, ParsesEveryKey) {
  auto cfg = must_load(with("    rate_limits: [per-client, per-user]", R"(
rate_limits:
  - name: per-client
    key: client_ip
    rate: 100/s
    burst: 200
  - name: per-user
    key: [header:X-User, route, upstream]
    rate: 20/m
    scope: global
  - name: hourly
    rate: 1000/h
redis:
  address: "[::1]:6380"
  username: proxy
  password_env: REDIS_PASSWORD
  timeout: 20ms
  failure_mode: closed
limits:
  max_connections_per_client: 16
)"));
  ASSERT_EQ(cfg.rate_limits.size(), 3u);
  const auto& a = cfg.rate_limits[0];
  EXPECT_EQ(a.name, "per-client");
  ASSERT_EQ(a.key.size(), 1u);
  EXPECT_EQ(a.key[0].what, rate_key_part::kind::client_ip);
  EXPECT_EQ(a.count, 100u);
  EXPECT_EQ(a.per, 1s);
  EXPECT_EQ(a.burst, 200u);
  EXPECT_FALSE(a.global);
  const auto& b = cfg.rate_limits[1];
  ASSERT_EQ(b.key.size(), 3u);
  EXPECT_EQ(b.key[0].what, rate_key_part::kind::header);
  EXPECT_EQ(b.key[0].header, "x-user");
  EXPECT_EQ(b.key[1].what, rate_key_part::kind::route);
  EXPECT_EQ(b.key[2].what, rate_key_part::kind::upstream);
  EXPECT_EQ(b.count, 20u);
  EXPECT_EQ(b.per, 1min);
  EXPECT_EQ(b.burst, 20u);  // default: one period's worth
  EXPECT_TRUE(b.global);
  EXPECT_EQ(cfg.rate_limits[2].per, 1h);
  EXPECT_EQ(cfg.rate_limits[2].key.size(), 1u);  // default: client_ip
  ASSERT_TRUE(cfg.redis);
  EXPECT_EQ(cfg.redis->address, "[::1]:6380");
  EXPECT_EQ(cfg.redis->username, "proxy");
  EXPECT_EQ(cfg.redis->password_env, "REDIS_PASSWORD");
  EXPECT_EQ(cfg.redis->timeout, 20ms);
  EXPECT_FALSE(cfg.redis->fail_open);
  EXPECT_EQ(cfg.routes[0].rate_limits, (std::vector<std::string>{"per-client", "per-user"}));
  EXPECT_EQ(cfg.limits.max_connections_per_client, 16u);
}

TEST(ConfigRateLimits, Defaults) {
  auto cfg = must_load(with("", "redis:\n  address: unix:/run/redis.sock\n"));
  EXPECT_TRUE(cfg.rate_limits.empty());
  EXPECT_TRUE(cfg.routes[0].rate_limits.empty());
  EXPECT_EQ(cfg.limits.max_connections_per_client, 0u);
  ASSERT_TRUE(cfg.redis);
  EXPECT_EQ(cfg.redis->address, "unix:/run/redis.sock");
  EXPECT_EQ(cfg.redis->timeout, 50ms);
  EXPECT_TRUE(cfg.redis->fail_open);
}

TEST(ConfigRateLimits, NameErrors) {
  EXPECT_EQ(errors_of(with("", "rate_limits:\n  - rate: 1/s\n")),
            errors{"rate_limits[0].name: required key is missing"});
  EXPECT_EQ(
      errors_of(with("", "rate_limits:\n  - {name: a, rate: 1/s}\n  - {name: a, rate: 2/s}\n")),
      errors{"rate_limits[1].name: duplicate rate limit name \"a\""});
  EXPECT_EQ(errors_of(with("", "rate_limits:\n  - {name: \"a b\", rate: 1/s}\n")),
            errors{"rate_limits[0].name: \"a b\" may hold only letters, digits, '-', '_' and '.'"});
}

TEST(ConfigRateLimits, RateErrors) {
  EXPECT_EQ(errors_of(with("", "rate_limits:\n  - {name: a}\n")),
            errors{"rate_limits[0].rate: required key is missing"});
  for (const char* bad : {"100", "0/s", "10/d", "x/s", "-1/s", "10/", "/s", "1.5/s"})
    EXPECT_EQ(
        errors_of(with("", std::string("rate_limits:\n  - {name: a, rate: \"") + bad + "\"}\n")),
        errors{std::string("rate_limits[0].rate: \"") + bad +
               "\" is not a rate: N/s, N/m or N/h, N from 1"})
        << bad;
  EXPECT_EQ(
      errors_of(with("", "rate_limits:\n  - {name: a, rate: 2000000000/s}\n")),
      errors{"rate_limits[0].rate: \"2000000000/s\" is more than one request per nanosecond"});
  // redis keeps a global bucket in microseconds: 100000/s is the fastest it holds exactly.
  const std::string redis = "redis: {address: 127.0.0.1:6379}\n";
  EXPECT_EQ(
      errors_of(with("", "rate_limits:\n  - {name: a, rate: 100001/s, scope: global}\n" + redis)),
      errors{"rate_limits[0].rate: a global limit allows at most 100000/s (redis counts "
             "microseconds)"});
  EXPECT_EQ(
      errors_of(with("", "rate_limits:\n  - {name: a, rate: 100000/s, scope: global}\n" + redis)),
      errors{});
  EXPECT_EQ(errors_of(with("", "rate_limits:\n  - {name: a, rate: 100001/s}\n")), errors{});
}

TEST(ConfigRateLimits, BurstErrors) {
  EXPECT_EQ(errors_of(with("", "rate_limits:\n  - {name: a, rate: 1/s, burst: 0}\n")),
            errors{"rate_limits[0].burst: must be at least 1"});
  EXPECT_EQ(errors_of(with("", "rate_limits:\n  - {name: a, rate: 1/s, burst: -3}\n")),
            errors{"rate_limits[0].burst: \"-3\" is not an integer from 0 to 4294967295"});
  EXPECT_EQ(errors_of(with("", "rate_limits:\n  - {name: a, rate: 1/h, burst: 1000}\n")),
            errors{"rate_limits[0].burst: 1000 requests at this rate take more than 30 days to "
                   "refill; lower burst or raise rate"});
}

TEST(ConfigRateLimits, KeyErrors) {
  EXPECT_EQ(errors_of(with("", "rate_limits:\n  - {name: a, rate: 1/s, key: ip}\n")),
            errors{"rate_limits[0].key: \"ip\" is not one of client_ip, header:NAME, route, "
                   "upstream"});
  EXPECT_EQ(errors_of(with("", "rate_limits:\n  - {name: a, rate: 1/s, key: [route, ip]}\n")),
            errors{"rate_limits[0].key[1]: \"ip\" is not one of client_ip, header:NAME, route, "
                   "upstream"});
  EXPECT_EQ(errors_of(with("", "rate_limits:\n  - {name: a, rate: 1/s, key: \"header:a b\"}\n")),
            errors{"rate_limits[0].key: \"a b\" is not a valid header name (RFC 9110 token)"});
  EXPECT_EQ(errors_of(with("", "rate_limits:\n  - {name: a, rate: 1/s, key: [route, route]}\n")),
            errors{"rate_limits[0].key[1]: \"route\" is listed twice"});
  EXPECT_EQ(errors_of(with("", "rate_limits:\n  - {name: a, rate: 1/s, key: []}\n")),
            errors{"rate_limits[0].key: at least one key part is required (client_ip, "
                   "header:NAME, route, upstream)"});
}

TEST(ConfigRateLimits, ScopeErrors) {
  EXPECT_EQ(errors_of(with("", "rate_limits:\n  - {name: a, rate: 1/s, scope: cluster}\n")),
            errors{"rate_limits[0].scope: \"cluster\" is not one of local, global"});
  EXPECT_EQ(errors_of(with("", "rate_limits:\n  - {name: a, rate: 1/s, scope: global}\n")),
            errors{"rate_limits[0].scope: global needs a redis: block (the store the instances "
                   "share)"});
}

TEST(ConfigRateLimits, RouteNamesUnknownLimit) {
  EXPECT_EQ(errors_of(with("    rate_limits: [a, b]", "rate_limits:\n  - {name: a, rate: 1/s}\n")),
            errors{"routes[0].rate_limits[1]: no rate limit named \"b\" (rate_limits[].name)"});
  EXPECT_EQ(errors_of(with("    rate_limits: [a, a]", "rate_limits:\n  - {name: a, rate: 1/s}\n")),
            errors{"routes[0].rate_limits[1]: \"a\" is listed twice"});
  EXPECT_EQ(errors_of(with("    rate_limits: a", "rate_limits:\n  - {name: a, rate: 1/s}\n")),
            errors{"routes[0].rate_limits: expected a list, got \"a\""});
}

TEST(ConfigRateLimits, RedisErrors) {
  EXPECT_EQ(
      errors_of(with("", "redis:\n  address: localhost\n")),
      errors{"redis.address: \"localhost\" needs a port: host:port, [v6]:port or unix:/path"});
  EXPECT_EQ(errors_of(with("", "redis:\n  address: unix:run/redis.sock\n")),
            errors{"redis.address: \"unix:run/redis.sock\": a unix socket needs an absolute path "
                   "(unix:/run/redis.sock)"});
  EXPECT_EQ(errors_of(with("", "redis:\n  password: hunter2\n")),
            errors{"redis.password: an inline password is not accepted (it would sit in the "
                   "config file and in config dumps): use password_file (a file holding it) or "
                   "password_env (the name of an environment variable holding it)"});
  EXPECT_EQ(errors_of(with("", "redis:\n  password_file: /nonexistent/redis.pass\n")),
            errors{"redis.password_file: \"/nonexistent/redis.pass\": No such file or directory"});
  EXPECT_EQ(errors_of(with("", "redis:\n  password_file: /etc/hostname\n  password_env: P\n")),
            errors{"redis.password_env: password_file is given too; use one of them"});
  EXPECT_EQ(errors_of(with("", "redis:\n  timeout: 0\n")),
            errors{"redis.timeout: must be greater than 0"});
  EXPECT_EQ(errors_of(with("", "redis:\n  failure_mode: maybe\n")),
            errors{"redis.failure_mode: \"maybe\" is not one of open, closed"});
  EXPECT_EQ(errors_of(with("", "redis:\n  db: 2\n")), errors{"redis.db: unknown key"});
}

TEST(ConfigRateLimits, MaxConnectionsPerClient) {
  EXPECT_EQ(errors_of(with("", "limits:\n  max_connections_per_client: many\n")),
            errors{"limits.max_connections_per_client: \"many\" is not an integer from 0 to "
                   "4294967295"});
}

}  // namespace
}  // namespace trafficcop::config
