// SPDX-License-Identifier: MIT
// Tests of the YAML config loader: parsing, defaults, every error message, durations and sizes.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace trafficcop::config {
namespace {

using namespace std::chrono_literals;
using errors = std::vector<std::string>;

// A valid config; tests append top-level keys to it, so that only their own error appears.
constexpr std::string_view minimal = R"(
listeners:
  - address: 127.0.0.1:8080
upstreams:
  - name: demo
    url: http://127.0.0.1:9000
routes:
  - upstream: demo
)";

errors errors_of(std::string_view yaml) { return load_string(yaml, "test.yaml").errors; }

config must_load(std::string_view yaml) {
  auto result = load_string(yaml, "test.yaml");
  for (const auto& e : result.errors) ADD_FAILURE() << e;
  return result.cfg.value_or(config{});
}

TEST(ConfigLoad, ParsesFullExample) {
  auto cfg = must_load(R"(
workers: 2
host_header: rewrite
forwarded: replace
flush_interval: 100ms
listeners:
  - address: 127.0.0.1:8080
  - address: "[::1]:0"
upstreams:
  - name: demo
    url: http://127.0.0.1:9000/base?x=1
    connect_timeout: 5s
    response_timeout: 1m
    idle_timeout: 90s
    max_idle: 8
  - name: other
    url: HTTP://example.com
routes:
  - host: example.com
    path_prefix: /api
    upstream: demo
    host_header: keep
    flush_interval: -1
    request_headers:  { set: {X-A: "1", X-Z: ""}, add: {X-B: "2"}, remove: [X-C] }
    response_headers: { set: {Server: trafficcop}, remove: [X-Powered-By, Via] }
  - upstream: other
limits: { max_header_bytes: 32k, max_headers: 50, max_uri_bytes: 4KiB, max_body_bytes: 1g }
timeouts: { read_header: 1.5s, idle: 2m, read_body: 30s, drain: 0 }
access_log: { path: /var/log/trafficcop.log, format: combined }
)");
  EXPECT_EQ(cfg.workers, 2u);
  EXPECT_EQ(cfg.host_header, host_policy::rewrite);
  EXPECT_EQ(cfg.forwarded, forwarded_policy::replace);
  EXPECT_EQ(cfg.flush_interval, 100ms);

  ASSERT_EQ(cfg.listeners.size(), 2u);
  EXPECT_EQ(cfg.listeners[0].address, "127.0.0.1:8080");
  EXPECT_EQ(cfg.listeners[1].address, "[::1]:0");

  ASSERT_EQ(cfg.upstreams.size(), 2u);
  const upstream& demo = cfg.upstreams[0];
  EXPECT_EQ(demo.name, "demo");
  EXPECT_EQ(demo.url, "http://127.0.0.1:9000/base?x=1");
  EXPECT_EQ(demo.scheme, "http");
  EXPECT_EQ(demo.host, "127.0.0.1");
  EXPECT_EQ(demo.port, 9000);
  EXPECT_EQ(demo.base_path, "/base");
  EXPECT_EQ(demo.base_query, "x=1");
  EXPECT_EQ(demo.connect_timeout, 5s);
  EXPECT_EQ(demo.response_timeout, 60s);
  EXPECT_EQ(demo.idle_timeout, 90s);
  EXPECT_EQ(demo.max_idle, 8u);
  EXPECT_EQ(cfg.upstreams[1].scheme, "http");
  EXPECT_EQ(cfg.upstreams[1].host, "example.com");
  EXPECT_EQ(cfg.upstreams[1].port, 80);
  EXPECT_EQ(cfg.upstreams[1].base_path, "");

  ASSERT_EQ(cfg.routes.size(), 2u);
  const route& api = cfg.routes[0];
  EXPECT_EQ(api.host, "example.com");
  EXPECT_EQ(api.path_prefix, "/api");
  EXPECT_EQ(api.upstream, "demo");
  EXPECT_EQ(api.host_header, host_policy::keep);
  EXPECT_EQ(api.flush_interval, -1ms);
  using fields = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(api.request_headers.set, (fields{{"X-A", "1"}, {"X-Z", ""}}));
  EXPECT_EQ(api.request_headers.add, (fields{{"X-B", "2"}}));
  EXPECT_EQ(api.request_headers.remove, (std::vector<std::string>{"X-C"}));
  EXPECT_EQ(api.response_headers.set, (fields{{"Server", "trafficcop"}}));
  EXPECT_TRUE(api.response_headers.add.empty());
  EXPECT_EQ(api.response_headers.remove, (std::vector<std::string>{"X-Powered-By", "Via"}));
  const route& fallback = cfg.routes[1];
  EXPECT_EQ(fallback.host, "");
  EXPECT_EQ(fallback.path_prefix, "/");
  EXPECT_EQ(fallback.host_header, std::nullopt);
  EXPECT_EQ(fallback.flush_interval, std::nullopt);

  EXPECT_EQ(cfg.limits.max_header_bytes, 32u * 1024);
  EXPECT_EQ(cfg.limits.max_headers, 50u);
  EXPECT_EQ(cfg.limits.max_uri_bytes, 4u * 1024);
  EXPECT_EQ(cfg.limits.max_body_bytes, 1ull << 30);
  EXPECT_EQ(cfg.timeouts.read_header, 1500ms);
  EXPECT_EQ(cfg.timeouts.idle, 2min);
  EXPECT_EQ(cfg.timeouts.read_body, 30s);
  EXPECT_EQ(cfg.timeouts.drain, 0ms);
  EXPECT_EQ(cfg.access_log.path, "/var/log/trafficcop.log");
  EXPECT_EQ(cfg.access_log.format, log_format::combined);
}

TEST(ConfigLoad, AppliesDefaultsFromTheStructs) {
  auto cfg = must_load(minimal);
  const config defaults;
  EXPECT_EQ(cfg.workers, defaults.workers);
  EXPECT_EQ(cfg.host_header, defaults.host_header);
  EXPECT_EQ(cfg.forwarded, defaults.forwarded);
  EXPECT_EQ(cfg.flush_interval, std::nullopt);
  EXPECT_EQ(cfg.limits.max_header_bytes, defaults.limits.max_header_bytes);
  EXPECT_EQ(cfg.limits.max_headers, defaults.limits.max_headers);
  EXPECT_EQ(cfg.limits.max_uri_bytes, defaults.limits.max_uri_bytes);
  EXPECT_EQ(cfg.limits.max_body_bytes, defaults.limits.max_body_bytes);
  EXPECT_EQ(cfg.timeouts.read_header, defaults.timeouts.read_header);
  EXPECT_EQ(cfg.timeouts.idle, defaults.timeouts.idle);
  EXPECT_EQ(cfg.timeouts.read_body, defaults.timeouts.read_body);
  EXPECT_EQ(cfg.timeouts.drain, defaults.timeouts.drain);
  EXPECT_EQ(cfg.access_log.path, "-");
  EXPECT_EQ(cfg.access_log.format, log_format::json);
  const upstream u;
  ASSERT_EQ(cfg.upstreams.size(), 1u);
  EXPECT_EQ(cfg.upstreams[0].connect_timeout, u.connect_timeout);
  EXPECT_EQ(cfg.upstreams[0].response_timeout, u.response_timeout);
  EXPECT_EQ(cfg.upstreams[0].idle_timeout, u.idle_timeout);
  EXPECT_EQ(cfg.upstreams[0].max_idle, u.max_idle);
  EXPECT_EQ(cfg.upstreams[0].base_query, "");
  ASSERT_EQ(cfg.routes.size(), 1u);
  EXPECT_EQ(cfg.routes[0].path_prefix, "/");
}

TEST(ConfigLoad, RequestBuffering) {
  // #14.5: on by default with a bound, overridable per route, off with 0.
  EXPECT_EQ(must_load(minimal).request_buffering, 64u * 1024);
  auto cfg = must_load(R"(
request_buffering: 16k
listeners: [{address: "127.0.0.1:8080"}]
upstreams: [{name: demo, url: "http://127.0.0.1:9000"}]
routes:
  - {path_prefix: /grpc, upstream: demo, request_buffering: 0}
  - {path_prefix: /, upstream: demo}
)");
  EXPECT_EQ(cfg.request_buffering, 16u * 1024);
  EXPECT_EQ(cfg.routes[0].request_buffering, 0u);
  EXPECT_EQ(cfg.routes[1].request_buffering, std::nullopt);
  EXPECT_EQ(errors_of(std::string(minimal) + "request_buffering: 2m\n"),
            errors{"request_buffering: at most 1m: buffered bodies are held in memory (larger "
                   "ones are streamed; 0 streams every body)"});
  EXPECT_EQ(errors_of(std::string(minimal) + "request_buffering: lots\n"),
            errors{"request_buffering: \"lots\" is not a size (e.g. 16384, 16k, 1MiB)"});
  EXPECT_EQ(errors_of(R"(
listeners: [{address: "127.0.0.1:8080"}]
upstreams: [{name: demo, url: "http://127.0.0.1:9000"}]
routes:
  - {path_prefix: /, upstream: demo, request_buffering: 4m}
  - {path_prefix: /r, respond: {status: 204}, request_buffering: 1k}
)"),
            (errors{"routes[0].request_buffering: at most 1m: buffered bodies are held in memory "
                    "(larger ones are streamed; 0 streams every body)",
                    "routes[1].request_buffering: applies to routes with an upstream only (this "
                    "one has respond)"}));
}

TEST(ConfigLoad, LoadsQuickstartExample) {
  auto result = load_file(std::string(TRAFFICCOP_SOURCE_DIR) + "/examples/quickstart.yaml");
  EXPECT_EQ(result.errors, errors{});
  ASSERT_TRUE(result.cfg);
  const config& cfg = *result.cfg;
  ASSERT_EQ(cfg.listeners.size(), 1u);
  EXPECT_EQ(cfg.listeners[0].address, "127.0.0.1:8080");
  ASSERT_EQ(cfg.upstreams.size(), 1u);
  EXPECT_EQ(cfg.upstreams[0].name, "demo");
  EXPECT_EQ(cfg.upstreams[0].host, "127.0.0.1");
  EXPECT_EQ(cfg.upstreams[0].port, 9000);
  ASSERT_EQ(cfg.routes.size(), 1u);
  EXPECT_EQ(cfg.routes[0].path_prefix, "/");
  EXPECT_EQ(cfg.routes[0].upstream, "demo");
  EXPECT_EQ(cfg.access_log.path, "-");
  EXPECT_EQ(cfg.access_log.format, log_format::json);
  EXPECT_EQ(summary(cfg), "ok: 1 listener, 1 upstream, 1 route, auto workers");
  ASSERT_EQ(cfg.upstreams[0].endpoints.size(), 2u);
  EXPECT_EQ(cfg.upstreams[0].endpoints[1].port, 9001);
}

TEST(ConfigLoad, LoadsProductionExample) {
  auto result = load_file(std::string(TRAFFICCOP_SOURCE_DIR) + "/examples/production.yaml");
  EXPECT_EQ(result.errors, errors{});
  ASSERT_TRUE(result.cfg);
  const auto& u = result.cfg->upstreams.at(0);
  ASSERT_EQ(u.endpoints.size(), 3u);
  EXPECT_EQ(u.endpoints[2].weight, 2u);
  EXPECT_EQ(u.load_balancing, lb_policy::least_request);
  EXPECT_EQ(u.retries.attempts, 2u);
  EXPECT_EQ(u.retries.on.size(), 6u);
  EXPECT_EQ(u.retries.per_try_timeout, 2s);
  EXPECT_EQ(u.breaker.max_pending, 256u);
}

TEST(ConfigLoad, EndpointsAndTheirPolicies) {
  EXPECT_EQ(
      errors_of(R"(
listeners: [{address: 127.0.0.1:8080}]
upstreams:
  - name: a
    url: http://127.0.0.1:9000
    endpoints: [http://127.0.0.1:9001]
  - name: b
    endpoints: [http://127.0.0.1:9001, https://127.0.0.1:9002, {url: http://h:1/x}, {url: http://h:2, weight: 0}]
    hash_on: header:X-User
    load_balancing: fastest
    outlier_detection: {max_ejection_percent: 101}
    retries: {on: [connect_failure, 500], backoff: {base: 1s, max: 10ms}}
routes: [{upstream: a}]
)"),
      (errors{"upstreams[0]: url and endpoints exclude each other (url is an upstream of one "
              "endpoint)",
              "upstreams[1].endpoints[1]: \"https://127.0.0.1:9002\" differs from the first "
              "endpoint in scheme or base path (\"http://127.0.0.1:9001\"): every endpoint of an "
              "upstream serves the same URLs",
              "upstreams[1].endpoints[2].url: \"http://h:1/x\" differs from the first endpoint in "
              "scheme or base path (\"http://127.0.0.1:9001\"): every endpoint of an upstream "
              "serves the same URLs",
              "upstreams[1].endpoints[3].weight: must be between 1 and 10000",
              "upstreams[1].load_balancing: \"fastest\" is not one of round_robin, "
              "least_request, peak_ewma, ring_hash, random",
              "upstreams[1].outlier_detection.max_ejection_percent: 101 is not a percentage "
              "(0-100)",
              "upstreams[1].retries.on[1]: \"500\" is not one of connect_failure, refused_stream, "
              "reset_before_response, 502, 503, 504",
              "upstreams[1].retries.backoff: max must not be less than base",
              "upstreams[1].hash_on: applies to load_balancing: ring_hash only"}));
}

TEST(ConfigLoad, HealthCheck) {
  auto cfg = must_load(R"(
listeners: [{address: 127.0.0.1:8080}]
upstreams: [{name: a, url: http://127.0.0.1:9000, health_check: {path: /up, expected_status: "204"}}]
routes: [{upstream: a}]
)");
  const auto& h = cfg.upstreams.at(0).health_check.value();
  EXPECT_EQ(h.path, "/up");
  EXPECT_EQ(h.expected_min, 204);
  EXPECT_EQ(h.expected_max, 204);
  EXPECT_EQ(h.interval, 2s);
  EXPECT_FALSE(must_load(minimal).upstreams.at(0).health_check);
  EXPECT_EQ(errors_of(R"(
listeners: [{address: 127.0.0.1:8080}]
upstreams:
  - {name: a, url: http://127.0.0.1:9000, health_check: {path: up, expected_status: 399-200}}
  - {name: b, url: http://127.0.0.1:9000, health_check: {tcp: true, path: /x, interval: 0s}}
routes: [{upstream: a}]
)"),
            (errors{"upstreams[0].health_check.path: \"up\" must be a path starting with '/', "
                    "without spaces",
                    "upstreams[0].health_check.expected_status: \"399-200\" is not a status or a "
                    "range of statuses (e.g. 200-399)",
                    "upstreams[1].health_check: path and tcp: true exclude each other",
                    "upstreams[1].health_check.interval: must be greater than 0"}));
}

TEST(ConfigLoad, RejectsUnknownKey) {
  EXPECT_EQ(errors_of(R"(
listeners:
  - address: 127.0.0.1:8080
  - address: 127.0.0.1:8081
    bogus: 1
upstreams: [{name: demo, url: "http://127.0.0.1:9000"}]
routes: [{upstream: demo}]
)"),
            errors{"listeners[1].bogus: unknown key"});
}

TEST(ConfigLoad, RejectsUnknownKeyInEverySection) {
  EXPECT_EQ(errors_of(std::string(minimal) + R"(
limits: {max_body: 1}
timeouts: {connect: 1s}
access_log: {level: info}
extra: 1
)"),
            (errors{"limits.max_body: unknown key", "timeouts.connect: unknown key",
                    "access_log.level: unknown key", "extra: unknown key"}));
  EXPECT_EQ(errors_of(R"(
listeners: [{address: "127.0.0.1:8080"}]
upstreams: [{name: demo, url: "http://127.0.0.1:9000", timeout: 1s}]
routes: [{upstream: demo, request_headers: {delete: [X-A]}}]
)"),
            (errors{"upstreams[0].timeout: unknown key",
                    "routes[0].request_headers.delete: unknown key"}));
}

TEST(ConfigLoad, RejectsRouteToUnknownUpstream) {
  EXPECT_EQ(errors_of(R"(
listeners: [{address: "127.0.0.1:8080"}]
upstreams: [{name: demo, url: "http://127.0.0.1:9000"}]
routes:
  - {path_prefix: /a, upstream: demo}
  - {path_prefix: /b, upstream: demo}
  - {path_prefix: /c, upstream: api}
)"),
            errors{"routes[2].upstream: no upstream named \"api\""});
}

TEST(ConfigLoad, ResolvesUpstreamsDeclaredAfterRoutes) {
  must_load(R"(
routes: [{upstream: late}]
listeners: [{address: "127.0.0.1:8080"}]
upstreams: [{name: late, url: "http://127.0.0.1:9000"}]
)");
}

TEST(ConfigLoad, RejectsUnsupportedScheme) {
  EXPECT_EQ(
      errors_of(R"(
listeners: [{address: "127.0.0.1:8080"}]
upstreams:
  - {name: a, url: "ftp://127.0.0.1/"}
routes: [{upstream: a}]
)"),
      (errors{"upstreams[0].url: scheme \"ftp\" is not supported (use http:// or https://)"}));
}

TEST(ConfigLoad, HttpsUpstreamWithTls) {
  std::string ca = std::string(TRAFFICCOP_SOURCE_DIR) + "/README.md";  // any readable file
  auto cfg = must_load(R"(
listeners: [{address: "127.0.0.1:8080"}]
upstreams:
  - name: a
    url: "https://api.internal/v1"
    tls: {ca_file: ")" +
                       ca + R"(", server_name: api.example, insecure_skip_verify: false}
  - {name: b, url: "https://127.0.0.1:8443"}
routes: [{upstream: a}]
)");
  EXPECT_EQ(cfg.upstreams[0].scheme, "https");
  EXPECT_EQ(cfg.upstreams[0].port, 443);
  EXPECT_EQ(cfg.upstreams[0].tls.ca_file, ca);
  EXPECT_EQ(cfg.upstreams[0].tls.server_name, "api.example");
  EXPECT_FALSE(cfg.upstreams[0].tls.insecure_skip_verify);
  EXPECT_EQ(cfg.upstreams[1].port, 8443);
  EXPECT_TRUE(cfg.upstreams[1].tls.ca_file.empty());  // the system store
}

TEST(ConfigLoad, TlsListener) {
  std::string f = std::string(TRAFFICCOP_SOURCE_DIR) + "/README.md";  // any readable file
  auto cfg = must_load(R"(
listeners:
  - address: "127.0.0.1:8443"
    tls:
      certificates: [{cert_file: ")" +
                       f + R"(", key_file: ")" + f + R"("}]
      min_version: "1.3"
  - address: "127.0.0.1:8080"
upstreams: [{name: a, url: "http://127.0.0.1:9000"}]
routes: [{upstream: a}]
)");
  ASSERT_EQ(cfg.listeners[0].tls.certificates.size(), 1u);
  EXPECT_EQ(cfg.listeners[0].tls.certificates[0].cert_file, f);
  EXPECT_EQ(cfg.listeners[0].tls.min_version, "1.3");
  EXPECT_TRUE(cfg.listeners[1].tls.certificates.empty());
}

TEST(ConfigLoad, RejectsBadTlsListenerSettings) {
  EXPECT_EQ(errors_of(R"(
listeners:
  - {address: "127.0.0.1:8443", tls: {certificates: [{cert_file: /nonexistent/c.pem}], min_version: "1.1"}}
  - {address: "127.0.0.1:8444", tls: {certificates: []}}
  - {address: "127.0.0.1:8445", tls: {}}
  - {address: "127.0.0.1:8446", tls: {certificates: [], client_auth: maybe}}
upstreams: [{name: a, url: "http://127.0.0.1:9000"}]
routes: [{upstream: a}]
)"),
            (errors{
                "listeners[0].tls.certificates[0].cert_file: \"/nonexistent/c.pem\": No such file "
                "or directory",
                "listeners[0].tls.certificates[0].key_file: required key is missing",
                "listeners[0].tls.min_version: \"1.1\" is not 1.2 or 1.3",
                "listeners[1].tls.certificates: needs at least one certificate",
                "listeners[2].tls.certificates: required key is missing",
                "listeners[3].tls.certificates: needs at least one certificate",
                "listeners[3].tls.client_auth: \"maybe\" is not one of require, optional",
            }));
}

TEST(ConfigLoad, TlsListenerHsts) {
  std::string f = std::string(TRAFFICCOP_SOURCE_DIR) + "/README.md";  // any readable file
  std::string certs = "certificates: [{cert_file: \"" + f + "\", key_file: \"" + f + "\"}]";
  auto listener = [&](std::string_view address, std::string_view hsts) {
    return "  - {address: \"" + std::string(address) + "\", tls: {" + certs +
           (hsts.empty() ? "" : ", hsts: " + std::string(hsts)) + "}}\n";
  };
  auto cfg = must_load(
      "listeners:\n" + listener("127.0.0.1:1", "") + listener("127.0.0.1:2", "{}") +
      listener("127.0.0.1:3",
               "{max_age: 730d, include_subdomains: true, "
               "preload: true}") +
      listener("127.0.0.1:4", "{max_age: 1h30m}") +
      listener("127.0.0.1:5", "{max_age: 31536000s}") + listener("127.0.0.1:6", "{max_age: 0}") +
      "upstreams: [{name: a, url: \"http://127.0.0.1:9000\"}]\n"
      "routes: [{upstream: a}]\n");
  ASSERT_EQ(cfg.listeners.size(), 6u);
  EXPECT_FALSE(cfg.listeners[0].tls.hsts);  // off unless asked for
  ASSERT_TRUE(cfg.listeners[1].tls.hsts);
  EXPECT_EQ(cfg.listeners[1].tls.hsts->max_age, 31536000s);  // default: 365d
  EXPECT_FALSE(cfg.listeners[1].tls.hsts->include_subdomains);
  EXPECT_FALSE(cfg.listeners[1].tls.hsts->preload);
  ASSERT_TRUE(cfg.listeners[2].tls.hsts);
  EXPECT_EQ(cfg.listeners[2].tls.hsts->max_age, 63072000s);
  EXPECT_TRUE(cfg.listeners[2].tls.hsts->include_subdomains);
  EXPECT_TRUE(cfg.listeners[2].tls.hsts->preload);
  EXPECT_EQ(cfg.listeners[3].tls.hsts->max_age, 5400s);
  EXPECT_EQ(cfg.listeners[4].tls.hsts->max_age, 31536000s);
  EXPECT_EQ(cfg.listeners[5].tls.hsts->max_age, 0s);  // RFC 6797 §6.1.1: forget the host
}

TEST(ConfigLoad, RejectsBadHstsWithTheirPaths) {
  std::string f = std::string(TRAFFICCOP_SOURCE_DIR) + "/README.md";
  std::string certs = "certificates: [{cert_file: \"" + f + "\", key_file: \"" + f + "\"}], ";
  EXPECT_EQ(errors_of(R"(
listeners:
  - {address: "127.0.0.1:1", tls: {)" +
                      certs + R"(hsts: {max_age: 1y}}}
  - {address: "127.0.0.1:2", tls: {)" +
                      certs + R"(hsts: {max_age: 31536000}}}
  - {address: "127.0.0.1:3", tls: {)" +
                      certs + R"(hsts: {max_age: -1s}}}
  - {address: "127.0.0.1:4", tls: {)" +
                      certs + R"(hsts: {max_age: 1.5s}}}
  - {address: "127.0.0.1:5", tls: {)" +
                      certs + R"(hsts: {include_subdomains: yes, age: 1}}}
  - {address: "127.0.0.1:6", tls: {)" +
                      certs + R"(hsts: {preload: true}}}
  - {address: "127.0.0.1:7", tls: {)" +
                      certs +
                      R"(hsts: {preload: true, include_subdomains: true, max_age: 364d}}}
  - {address: "127.0.0.1:8", tls: {)" +
                      certs + R"(hsts: true}}
  - {address: "127.0.0.1:9", tls: {certificates: [], hsts: {}}}
  - {address: "127.0.0.1:10", tls: {hsts: {max_age: 1d}}}
upstreams: [{name: a, url: "http://127.0.0.1:9000"}]
routes: [{upstream: a}]
)"),
            (errors{
                "listeners[0].tls.hsts.max_age: \"1y\" is not a duration (e.g. 365d, 8760h, "
                "31536000s)",
                "listeners[1].tls.hsts.max_age: \"31536000\" is not a duration (e.g. 365d, "
                "8760h, 31536000s)",
                "listeners[2].tls.hsts.max_age: must not be negative",
                "listeners[3].tls.hsts.max_age: \"1.5s\" is not a whole number of seconds",
                "listeners[4].tls.hsts.include_subdomains: expected true or false, got \"yes\"",
                "listeners[4].tls.hsts.age: unknown key",
                "listeners[5].tls.hsts.preload: needs include_subdomains: true and max_age of at "
                "least 365d",
                "listeners[6].tls.hsts.preload: needs include_subdomains: true and max_age of at "
                "least 365d",
                "listeners[7].tls.hsts: expected a map, got \"true\"",
                "listeners[8].tls.certificates: needs at least one certificate",
                "listeners[8].tls.hsts: applies to TLS listeners only (this one has no "
                "certificates)",
                "listeners[9].tls.certificates: required key is missing",
                "listeners[9].tls.hsts: applies to TLS listeners only (this one has no "
                "certificates)",
            }));
}

TEST(ConfigLoad, RejectsBadTlsSettingsWithTheirPaths) {
  EXPECT_EQ(errors_of(R"(
listeners: [{address: "127.0.0.1:8080"}]
upstreams:
  - {name: a, url: "https://h", tls: {ca_file: /nonexistent/ca.pem, insecure_skip_verify: yes}}
  - {name: b, url: "http://h", tls: {server_name: h}}
  - {name: c, url: "https://h", tls: {cert_file: /nonexistent/c.pem, verify: true}}
routes: [{upstream: a}]
)"),
            (errors{
                "upstreams[0].tls.ca_file: \"/nonexistent/ca.pem\": No such file or directory",
                "upstreams[0].tls.insecure_skip_verify: expected true or false, got \"yes\"",
                "upstreams[1].tls: applies to https:// upstreams only (url is http://)",
                "upstreams[2].tls.cert_file: \"/nonexistent/c.pem\": No such file or directory",
                "upstreams[2].tls.verify: unknown key",
            }));
}

TEST(ConfigLoad, RejectsMalformedDuration) {
  EXPECT_EQ(errors_of(std::string(minimal) + "timeouts: {idle: 10x}\n"),
            errors{"timeouts.idle: \"10x\" is not a duration (e.g. 250ms, 3s, 1m)"});
}

TEST(ConfigLoad, RejectsNegativeDurationsExceptFlushInterval) {
  EXPECT_EQ(
      errors_of(std::string(minimal) + "timeouts: {drain: -1s, idle: -1}\n"),
      (errors{"timeouts.drain: must not be negative", "timeouts.idle: must not be negative"}));
}

TEST(ConfigLoad, TreatsAnyNegativeFlushIntervalAsEveryWrite) {
  for (std::string_view value : {"-1", "-1ms", "-5s", "-0.5ms"}) {
    auto cfg = must_load(std::string(minimal) + "flush_interval: " + std::string(value) + "\n");
    EXPECT_EQ(cfg.flush_interval, -1ms) << value;
  }
  EXPECT_EQ(must_load(std::string(minimal) + "flush_interval: 0\n").flush_interval, 0ms);
}

TEST(ConfigLoad, RejectsDuplicateUpstreamName) {
  EXPECT_EQ(errors_of(R"(
listeners: [{address: "127.0.0.1:8080"}]
upstreams:
  - {name: a, url: "http://127.0.0.1:9000"}
  - {name: a, url: "http://127.0.0.1:9001"}
routes: [{upstream: a}]
)"),
            errors{"upstreams[1].name: duplicate upstream name \"a\""});
}

TEST(ConfigLoad, RequiresAtLeastOneOfEachList) {
  auto expected = errors{"listeners: at least one listener is required",
                         "upstreams: at least one upstream is required",
                         "routes: at least one route is required"};
  EXPECT_EQ(errors_of(""), expected);
  EXPECT_EQ(errors_of("listeners: []\nupstreams:\nroutes: []\n"), expected);
}

TEST(ConfigLoad, RequiresUpstreamNameUrlAndRouteUpstream) {
  EXPECT_EQ(errors_of(R"(
listeners: [{address: "127.0.0.1:8080"}]
upstreams: [{connect_timeout: 1s}]
routes: [{path_prefix: /}]
)"),
            (errors{"upstreams[0].name: required key is missing",
                    "upstreams[0].url: required key is missing (or endpoints: a list of URLs)",
                    "routes[0]: needs one of upstream, redirect, respond (what to do with the "
                    "request)"}));
}

TEST(ConfigLoad, ReportsWrongNodeTypeWithPath) {
  EXPECT_EQ(
      errors_of(R"(
listeners: {address: "127.0.0.1:8080"}
upstreams: [{name: [demo], url: "http://127.0.0.1:9000"}]
routes: [{upstream: demo}]
limits: 16k
workers: {n: 2}
)"),
      (errors{"listeners: expected a list, got a map",
              "upstreams[0].name: expected a string, got a list",
              "limits: expected a map, got \"16k\"", "workers: expected an integer, got a map",
              // The name was unreadable, so the reference to it cannot resolve either.
              "routes[0].upstream: no upstream named \"demo\""}));
}

TEST(ConfigLoad, RejectsNonMapTopLevel) {
  EXPECT_EQ(errors_of("- a\n- b\n"), errors{"test.yaml: the top level must be a map, got a list"});
}

TEST(ConfigLoad, ReportsYamlSyntaxErrorWithFileLineAndColumn) {
  auto errs = errors_of("listeners:\n  - address: [127.0.0.1:8080\n");
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].rfind("test.yaml:3:1: ", 0), 0u) << errs[0];
  EXPECT_GT(errs[0].size(), std::string_view("test.yaml:3:1: ").size());
}

TEST(ConfigLoad, SurvivesDeeplyNestedInput) {
  auto errs = errors_of(std::string(100000, '[') + std::string(100000, ']'));
  EXPECT_FALSE(errs.empty());
}

TEST(ConfigLoad, ReportsUnreadableFile) {
  const std::string path = "/nonexistent/trafficcop.yaml";
  auto result = load_file(path);
  EXPECT_FALSE(result.cfg);
  EXPECT_EQ(result.errors, errors{path + ": cannot read: " + std::strerror(ENOENT)});
  EXPECT_EQ(load_file("/").errors, errors{"/: cannot read: " + std::string(std::strerror(EISDIR))});
}

TEST(ConfigLoad, ReportsEveryProblemTogether) {
  auto result = load_string(R"(
workers: many
forwarded: sometimes
listeners:
  - address: 127.0.0.1
upstreams:
  - {name: a, url: "ftp://x"}
  - {name: a, url: "http://x", max_idle: -1}
routes:
  - {upstream: b, path_prefix: api}
limits: {max_header_bytes: 16kb}
access_log: {format: xml}
)",
                            "test.yaml");
  EXPECT_FALSE(result.cfg);
  EXPECT_EQ(result.errors,
            (errors{
                "workers: \"many\" is not an integer from 0 to 4294967295",
                "forwarded: \"sometimes\" is not one of append, replace, off",
                "listeners[0].address: \"127.0.0.1\" has no port (use host:port, e.g. "
                "127.0.0.1:8080)",
                "upstreams[0].url: scheme \"ftp\" is not supported (use http:// or https://)",
                "upstreams[1].name: duplicate upstream name \"a\"",
                "upstreams[1].max_idle: \"-1\" is not an integer from 0 to 4294967295",
                "routes[0].path_prefix: \"api\" must start with '/'",
                "limits.max_header_bytes: \"16kb\" is not a size (e.g. 16384, 16k, 1MiB)",
                "access_log.format: \"xml\" is not one of json, combined",
                "routes[0].upstream: no upstream named \"b\"",
            }));
}

TEST(ConfigLoad, RejectsDuplicateKeys) {
  EXPECT_EQ(errors_of(std::string(minimal) + "workers: 1\nworkers: 2\n"),
            errors{"workers: duplicate key"});
}

TEST(ConfigLoad, RejectsDuplicateListenerAddress) {
  EXPECT_EQ(errors_of(R"(
listeners: [{address: "127.0.0.1:8080"}, {address: "127.0.0.1:8080"}]
upstreams: [{name: demo, url: "http://127.0.0.1:9000"}]
routes: [{upstream: demo}]
)"),
            errors{"listeners[1].address: duplicate listener address \"127.0.0.1:8080\""});
}

TEST(ConfigLoad, RejectsRouteShadowedByAnEarlierOne) {
  EXPECT_EQ(errors_of(R"(
listeners: [{address: "127.0.0.1:8080"}]
upstreams: [{name: demo, url: "http://127.0.0.1:9000"}]
routes:
  - {host: Example.com, path_prefix: /a, upstream: demo}
  - {host: example.com, path_prefix: /a, upstream: demo}
  - {path_prefix: /a, upstream: demo}
)"),
            errors{"routes[1]: same host and path_prefix as routes[0], so it can never match"});
}

TEST(ConfigLoad, ValidatesListenerAddresses) {
  for (std::string_view ok : {"127.0.0.1:8080", "[::1]:0", "localhost:65535", "0.0.0.0:80"}) {
    auto yaml = R"(
listeners: [{address: ")" +
                std::string(ok) + R"("}]
upstreams: [{name: demo, url: "http://127.0.0.1:9000"}]
routes: [{upstream: demo}]
)";
    EXPECT_EQ(errors_of(yaml), errors{}) << ok;
  }
  struct bad_case {
    std::string_view address, error;
  };
  for (auto [address, error] : std::initializer_list<bad_case>{
           {"127.0.0.1", "\"127.0.0.1\" has no port (use host:port, e.g. 127.0.0.1:8080)"},
           {"127.0.0.1:", "\"127.0.0.1:\" has no port (use host:port, e.g. 127.0.0.1:8080)"},
           {"127.0.0.1:65536", "port 65536 is out of range (0-65535)"},
           {"127.0.0.1:http", "port \"http\" is not a number"},
           {":8080", "missing host in \":8080\""},
           {"::1:8080", "IPv6 addresses need brackets, e.g. [::1]:8080"},
           {"[::1:8080", "missing ']' in \"[::1:8080\""},
           {"[zz]:80", "\"[zz]\" is not an IPv6 address"},
           {"[::1]8080", "expected ':' after ']' in \"[::1]8080\""},
           {"my host:80", "invalid host \"my host\""},
           // `check` used to pass names that start-up then refused ("invalid address").
           {"example.com:80",
            "\"example.com\" is not an IP address (listeners bind an address, names other than "
            "localhost are not resolved; 0.0.0.0 or [::] is every interface)"},
           {"10.0.0:80",
            "\"10.0.0\" is not an IP address (listeners bind an address, names "
            "other than localhost are not resolved; 0.0.0.0 or [::] is every "
            "interface)"},
       }) {
    auto yaml = R"(
listeners: [{address: ")" +
                std::string(address) + R"("}]
upstreams: [{name: demo, url: "http://127.0.0.1:9000"}]
routes: [{upstream: demo}]
)";
    EXPECT_EQ(errors_of(yaml), errors{"listeners[0].address: " + std::string(error)}) << address;
  }
}

// Found by fuzzing (rules_fuzz, upstream_url_fuzz): inet_pton reads a C string, so a NUL
// ("\0" in a double-quoted scalar) ended an IPv6 literal early and "[::1\0x]" passed.
TEST(ConfigLoad, NulInsideAnIpv6LiteralIsRefused) {
  auto e = errors_of(R"(
listeners: [{address: "[::1\0x]:80"}]
upstreams: [{name: demo, url: "http://[::1\0evil]:9000"}]
routes: [{upstream: demo}]
)");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_TRUE(e[0].starts_with("listeners[0].address: ")) << e[0];
  EXPECT_NE(e[1].find("upstreams[0]"), std::string::npos) << e[1];
}

TEST(ConfigLoad, SplitsUpstreamUrl) {
  struct url_case {
    std::string_view url, host;
    std::uint16_t port;
    std::string_view path, query;
  };
  for (const auto& c : std::initializer_list<url_case>{
           {"http://127.0.0.1:9000", "127.0.0.1", 9000, "", ""},
           {"http://example.com", "example.com", 80, "", ""},
           {"http://example.com:", "example.com", 80, "", ""},
           {"http://[::1]:81/", "::1", 81, "/", ""},
           {"http://h/base/?a=1&b", "h", 80, "/base/", "a=1&b"},
           {"http://h?q", "h", 80, "", "q"},
           {"http://h/%2Fx", "h", 80, "/%2Fx", ""},
       }) {
    auto cfg = must_load(R"(
listeners: [{address: "127.0.0.1:8080"}]
upstreams: [{name: demo, url: ")" +
                         std::string(c.url) + R"("}]
routes: [{upstream: demo}]
)");
    ASSERT_EQ(cfg.upstreams.size(), 1u) << c.url;
    EXPECT_EQ(cfg.upstreams[0].host, c.host) << c.url;
    EXPECT_EQ(cfg.upstreams[0].port, c.port) << c.url;
    EXPECT_EQ(cfg.upstreams[0].base_path, c.path) << c.url;
    EXPECT_EQ(cfg.upstreams[0].base_query, c.query) << c.url;
  }
}

TEST(ConfigLoad, RejectsMalformedUpstreamUrl) {
  struct bad_case {
    std::string_view url, error;
  };
  for (auto [url, error] : std::initializer_list<bad_case>{
           {"127.0.0.1:9000", "\"127.0.0.1:9000\" has no scheme (e.g. http://host:port)"},
           {"http://", "missing host in \"\""},
           {"http://u:p@h", "user info (user@host) is not supported"},
           {"http://h:0", "port 0 is not a valid upstream port"},
           {"http://h/a#frag", "a fragment (#...) is not allowed"},
           {"http://h/a b", "must not contain spaces or control characters"},
       }) {
    auto yaml = R"(
listeners: [{address: "127.0.0.1:8080"}]
upstreams: [{name: demo, url: ")" +
                std::string(url) + R"("}]
routes: [{upstream: demo}]
)";
    EXPECT_EQ(errors_of(yaml), errors{"upstreams[0].url: " + std::string(error)}) << url;
  }
}

TEST(ConfigLoad, ValidatesHeaderEdits) {
  EXPECT_EQ(errors_of(R"(
listeners: [{address: "127.0.0.1:8080"}]
upstreams: [{name: demo, url: "http://127.0.0.1:9000"}]
routes:
  - upstream: demo
    request_headers:
      set: {"Bad Name": "1", X-A: "a\r\nInjected: 1", X-N: "a\0b", X-Null: }
      add: {X-B: "1", x-b: "2"}
      remove: [X-Ok, "X:C"]
    response_headers: {set: [X-A]}
)"),
            (errors{
                "routes[0].request_headers.set: \"Bad Name\" is not a valid header name (RFC 9110 "
                "token)",
                "routes[0].request_headers.set.X-A: value must not contain CR, LF or NUL",
                "routes[0].request_headers.set.X-N: value must not contain CR, LF or NUL",
                "routes[0].request_headers.set.X-Null: expected a header value (use \"\" for an "
                "empty one), got nothing",
                "routes[0].request_headers.add.x-b: duplicate key (header names are "
                "case-insensitive)",
                "routes[0].request_headers.remove[1]: \"X:C\" is not a valid header name (RFC "
                "9110 token)",
                "routes[0].response_headers.set: expected a map, got a list",
            }));
}

TEST(ConfigLoad, ValidatesRouteHostAndPathPrefix) {
  EXPECT_EQ(errors_of(R"(
listeners: [{address: "127.0.0.1:8080"}]
upstreams: [{name: demo, url: "http://127.0.0.1:9000"}]
routes:
  - {host: "example.com:8080", upstream: demo}
  - {host: "[::1]", path_prefix: "/a?b", upstream: demo}
  - {host: "", path_prefix: "/", upstream: demo}
)"),
            (errors{"routes[0].host: \"example.com:8080\" is not a host name or a wildcard (no "
                    "scheme, port or path; e.g. example.com, *.example.com)",
                    "routes[1].path_prefix: \"/a?b\" must be a path without spaces, '?' or '#'"}));
}

TEST(ConfigLoad, RejectsBadEnumsAndZeroLimits) {
  EXPECT_EQ(errors_of(std::string(minimal) + R"(
host_header: preserve
limits: {max_headers: 0, max_uri_bytes: 0, max_body_bytes: 0}
)"),
            (errors{"host_header: \"preserve\" is not one of rewrite, keep",
                    "limits.max_headers: must be greater than 0",
                    "limits.max_uri_bytes: must be greater than 0"}));
}

TEST(ParseDuration, AcceptsGoLikeValues) {
  struct ok_case {
    std::string_view text;
    duration want;
  };
  for (auto [text, want] : std::initializer_list<ok_case>{
           {"0", 0ms},     {"-0", 0ms},         {"250ms", 250ms},     {"3s", 3s},
           {"1m", 1min},   {"1h", 1h},          {"1.5s", 1500ms},     {".5s", 500ms},
           {"1.s", 1s},    {"1h30m", 90min},    {"1m0.25s", 60250ms}, {"0.0005s", 1ms},
           {"0.4ms", 0ms}, {"1.0005s", 1001ms}, {"+2s", 2s},          {"-1", -1ms},
           {"-1ms", -1ms}, {"-1.5s", -1500ms},  {"00010s", 10s},
       }) {
    EXPECT_EQ(parse_duration(text), want) << text;
  }
}

TEST(ParseDuration, RejectsMalformedValues) {
  for (std::string_view text : {"",
                                "-",
                                "+",
                                "5",
                                "-2",
                                "1.5",
                                "10x",
                                "s",
                                "ms",
                                ".s",
                                "1 s",
                                " 1s",
                                "1s ",
                                "1e3s",
                                "1us",
                                "1d",
                                "1S",
                                "1.2.3s",
                                "--1s",
                                "1s-",
                                "99999999999999999999s",
                                "3000000000000000h"}) {
    EXPECT_EQ(parse_duration(text), std::nullopt) << text;
  }
}

// Found by config_fuzz's reference parser: the whole units of "9223372036854775.999s" fit in
// 64 bits, and adding the fraction's 999 ms overflowed (signed overflow: undefined behaviour).
TEST(ParseDuration, FractionOverflowIsRejected) {
  EXPECT_EQ(parse_duration("9223372036854775.999s"), std::nullopt);
  EXPECT_EQ(parse_duration("-9223372036854775.999s"), std::nullopt);
  EXPECT_EQ(parse_duration("9223372036854775.807s"),
            duration{std::numeric_limits<std::int64_t>::max()});
  EXPECT_EQ(parse_duration("9223372036854775.8075s"), std::nullopt);  // rounds up past it
}

TEST(ParseSize, AcceptsBytesAndBinarySuffixes) {
  struct ok_case {
    std::string_view text;
    std::uint64_t want;
  };
  for (auto [text, want] : std::initializer_list<ok_case>{
           {"0", 0},
           {"16384", 16384},
           {"16k", 16384},
           {"16K", 16384},
           {"16KiB", 16384},
           {"1m", 1 << 20},
           {"1MiB", 1 << 20},
           {"1g", 1ull << 30},
           {"2GiB", 2ull << 30},
           {"18446744073709551615", 18446744073709551615ull},
       }) {
    EXPECT_EQ(parse_size(text), want) << text;
  }
}

TEST(ParseSize, RejectsMalformedValues) {
  for (std::string_view text : {"", "k", "-1", "+1", "1.5k", "16kb", "16 k", "1t", "0x10", "1KiBs",
                                "18446744073709551616", "17179869184g"}) {
    EXPECT_EQ(parse_size(text), std::nullopt) << text;
  }
}

TEST(ConfigSummary, CountsWithPlurals) {
  config cfg;
  cfg.listeners.resize(1);
  cfg.upstreams.resize(1);
  cfg.routes.resize(2);
  cfg.workers = 2;
  EXPECT_EQ(summary(cfg), "ok: 1 listener, 1 upstream, 2 routes, 2 workers");
  cfg.listeners.resize(3);
  cfg.upstreams.resize(2);
  cfg.routes.resize(1);
  cfg.workers = 1;
  EXPECT_EQ(summary(cfg), "ok: 3 listeners, 2 upstreams, 1 route, 1 worker");
  cfg.workers = 0;
  EXPECT_EQ(summary(cfg), "ok: 3 listeners, 2 upstreams, 1 route, auto workers");
}

TEST(ConfigLoad, Http2Settings) {
  auto cfg = must_load(R"(
listeners:
  - address: "127.0.0.1:8080"
    http2: {h2c: true, max_concurrent_streams: 8, initial_window_size: 64k,
            connection_window_size: 4MiB, max_header_list_size: 32k}
  - address: "127.0.0.1:8081"
upstreams:
  - {name: a, url: "http://127.0.0.1:9000", http2: always, max_concurrent_streams: 10}
  - {name: b, url: "https://127.0.0.1:9443"}
  - {name: c, url: "https://127.0.0.1:9444", http2: never}
routes: [{upstream: a}]
)");
  const auto& h = cfg.listeners[0].http2;
  EXPECT_TRUE(h.enabled);
  EXPECT_TRUE(h.h2c);
  EXPECT_EQ(h.max_concurrent_streams, 8u);
  EXPECT_EQ(h.initial_window_size, 64u * 1024);
  EXPECT_EQ(h.connection_window_size, 4u * 1024 * 1024);
  EXPECT_EQ(h.max_header_list_size, 32u * 1024);
  EXPECT_FALSE(cfg.listeners[1].http2.h2c);  // prior knowledge is opt-in
  EXPECT_EQ(cfg.listeners[1].http2.max_concurrent_streams, 100u);
  EXPECT_EQ(cfg.upstreams[0].http2, upstream_http2::always);
  EXPECT_EQ(cfg.upstreams[0].max_concurrent_streams, 10u);
  EXPECT_EQ(cfg.upstreams[1].http2, upstream_http2::automatic);  // the default
  EXPECT_EQ(cfg.upstreams[2].http2, upstream_http2::never);
}

TEST(ConfigLoad, RejectsBadHttp2Settings) {
  std::string f = std::string(TRAFFICCOP_SOURCE_DIR) + "/README.md";  // any readable file
  EXPECT_EQ(errors_of(R"(
listeners:
  - {address: "127.0.0.1:8080", http2: {max_concurrent_streams: 0, initial_window_size: 100,
                                         connection_window_size: 4GiB, push: true}}
  - address: "127.0.0.1:8443"
    tls: {certificates: [{cert_file: ")" +
                      f + R"(", key_file: ")" + f + R"("}]}
    http2: {h2c: true}
upstreams: [{name: a, url: "http://127.0.0.1:9000", http2: sometimes, max_concurrent_streams: 0}]
routes: [{upstream: a}]
)"),
            (errors{
                "listeners[0].http2.max_concurrent_streams: must be greater than 0",
                "listeners[0].http2.initial_window_size: 100 is not between 16384 and 2147483647 "
                "bytes",
                "listeners[0].http2.connection_window_size: 4294967296 is not between 65535 and "
                "2147483647 bytes",
                "listeners[0].http2.push: unknown key",
                "listeners[1].http2.h2c: applies to plain listeners only (this one has tls)",
                "upstreams[0].http2: \"sometimes\" is not one of auto, always, never",
                "upstreams[0].max_concurrent_streams: must be greater than 0",
            }));
}

TEST(ConfigLoad, UpstreamTargetAndUnderscorePolicies) {
  auto defaults = must_load(minimal);
  EXPECT_EQ(defaults.upstream_target, target_policy::normalized);
  EXPECT_EQ(defaults.headers_with_underscores, underscore_policy::drop);
  EXPECT_EQ(defaults.routes.at(0).upstream_target, std::nullopt);
  auto cfg = must_load(R"(
upstream_target: raw
headers_with_underscores: reject
listeners: [{address: 127.0.0.1:8080}]
upstreams: [{name: demo, url: http://127.0.0.1:9000}]
routes: [{upstream: demo, upstream_target: normalized}]
)");
  EXPECT_EQ(cfg.upstream_target, target_policy::raw);
  EXPECT_EQ(cfg.headers_with_underscores, underscore_policy::reject);
  EXPECT_EQ(cfg.routes.at(0).upstream_target, target_policy::normalized);
  EXPECT_EQ(errors_of(std::string(minimal) + "headers_with_underscores: allow\n"),
            (errors{"headers_with_underscores: \"allow\" is not one of drop, keep, reject"}));
  EXPECT_EQ(errors_of(R"(
listeners: [{address: 127.0.0.1:8080}]
upstreams: [{name: demo, url: http://127.0.0.1:9000}]
routes: [{upstream: demo, upstream_target: exact}]
)"),
            (errors{"routes[0].upstream_target: \"exact\" is not one of normalized, raw"}));
}

// Issue 10 part 6: PROXY protocol and trusted proxies.
TEST(ConfigLoad, ProxyProtocolAndTrustedProxies) {
  auto cfg = must_load(R"(
trusted_proxies: [10.0.0.0/8, "2001:db8::/32", 192.0.2.7]
listeners:
  - {address: "127.0.0.1:8080", proxy_protocol: true}
  - {address: "127.0.0.1:8081"}
upstreams:
  - {name: a, url: "http://127.0.0.1:9000", send_proxy_protocol: v1}
  - {name: b, url: "http://127.0.0.1:9001", send_proxy_protocol: v2}
  - {name: c, url: "http://127.0.0.1:9002"}
routes: [{upstream: a}]
)");
  EXPECT_EQ(cfg.trusted_proxies,
            (std::vector<std::string>{"10.0.0.0/8", "2001:db8::/32", "192.0.2.7"}));
  ASSERT_EQ(cfg.listeners.size(), 2u);
  EXPECT_TRUE(cfg.listeners[0].proxy_protocol);
  EXPECT_FALSE(cfg.listeners[1].proxy_protocol);
  ASSERT_EQ(cfg.upstreams.size(), 3u);
  EXPECT_EQ(cfg.upstreams[0].send_proxy_protocol, 1);
  EXPECT_EQ(cfg.upstreams[1].send_proxy_protocol, 2);
  EXPECT_EQ(cfg.upstreams[2].send_proxy_protocol, 0);
}

TEST(ConfigLoad, RejectsBadProxyProtocolSettingsWithTheirPaths) {
  EXPECT_EQ(errors_of(R"(
trusted_proxies: [10.0.0.0/33, 10.0.0.1/8, example.com, "2001:db8::1/24", 10.0.0.0/]
listeners: [{address: "127.0.0.1:8080", proxy_protocol: v2}]
upstreams: [{name: a, url: "http://127.0.0.1:9000", send_proxy_protocol: v3}]
routes: [{upstream: a}]
)"),
            (errors{
                "trusted_proxies[0]: \"10.0.0.0/33\": the prefix length must be a number from 0 "
                "to 32",
                "trusted_proxies[1]: \"10.0.0.1/8\" has host bits set after the prefix: the "
                "network is 10.0.0.0/8",
                "trusted_proxies[2]: \"example.com\" is not an IP address or network (e.g. "
                "10.0.0.0/8, 2001:db8::/32)",
                "trusted_proxies[3]: \"2001:db8::1/24\" has host bits set after the prefix: the "
                "network is 2001:d00::/24",
                "trusted_proxies[4]: \"10.0.0.0/\": the prefix length must be a number from 0 to "
                "32",
                "listeners[0].proxy_protocol: expected true or false, got \"v2\"",
                "upstreams[0].send_proxy_protocol: \"v3\" is not one of v1, v2, off",
            }));
  EXPECT_EQ(errors_of("trusted_proxies: 10.0.0.0/8\n" + std::string(minimal)),
            (errors{"trusted_proxies: expected a list, got \"10.0.0.0/8\""}));
}

TEST(ConfigLoad, DrainOnReloadIsOffUnlessSet) {
  EXPECT_EQ(must_load(minimal).timeouts.drain_on_reload, std::nullopt);
  auto cfg = must_load(std::string(minimal) + "timeouts: {drain_on_reload: 1.5s}\n");
  EXPECT_EQ(cfg.timeouts.drain_on_reload, 1500ms);
  EXPECT_EQ(
      must_load(std::string(minimal) + "timeouts: {drain_on_reload: 0}\n").timeouts.drain_on_reload,
      0ms);
}

TEST(ConfigLoad, RejectsBadDrainOnReloadWithItsPath) {
  EXPECT_EQ(errors_of(std::string(minimal) + "timeouts: {drain_on_reload: -1s}\n"),
            errors{"timeouts.drain_on_reload: must not be negative"});
  EXPECT_EQ(errors_of(std::string(minimal) + "timeouts: {drain_on_reload: soon}\n"),
            errors{"timeouts.drain_on_reload: \"soon\" is not a duration (e.g. 250ms, 3s, 1m)"});
}
}  // namespace
}  // namespace trafficcop::config
