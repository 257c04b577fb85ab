// SPDX-License-Identifier: MIT
// Tests of the routes part of the config loader (issue 9.6): host wildcards, the three path
// matchers, methods/headers/query, listener names, redirect and respond routes, prefix and
// host rewrites, and every error `trafficcop check` gives for them, with its YAML path.
#include <gtest/gtest.h>
#include <re2/re2.h>

#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace trafficcop::config {
namespace {

using errors = std::vector<std::string>;

errors errors_of(std::string_view yaml) { return load_string(yaml, "test.yaml").errors; }

config must_load(std::string_view yaml) {
  auto result = load_string(yaml, "test.yaml");
  for (const auto& e : result.errors) ADD_FAILURE() << e;
  return result.cfg.value_or(config{});
}

// Listeners and an upstream; each test appends its `routes:`.
constexpr std::string_view head = R"(
listeners:
  - {name: public, address: "127.0.0.1:8080"}
  - {name: admin, address: "127.0.0.1:8081"}
  - {address: "127.0.0.1:8082"}
upstreams: [{name: app, url: "http://127.0.0.1:9000/base"}]
)";

errors route_errors(std::string_view routes) {
  return errors_of(std::string(head) + "routes:\n" + std::string(routes));
}

TEST(ConfigRoutes, ParsesEveryRouteKey) {
  auto cfg = must_load(std::string(head) + R"(
routes:
  - host: "*.Example.com"
    path: /exact
    methods: [GET, HEAD]
    headers: {X-Canary: "1", X-Tier: {regex: "gold|silver"}}
    query: {v: "2", lang: {regex: "[a-z]{2}"}}
    listeners: [public, admin]
    upstream: app
    host_rewrite: internal.example:8443
  - {path_regex: "/users/[0-9]+", upstream: app}
  - {path_prefix: /api, strip_prefix: true, upstream: app}
  - {path_prefix: /old, prefix_rewrite: /v2/, upstream: app}
  - {listeners: [public], redirect: {to: "https://{host}{path}"}}
  - {path: /healthz, respond: {body: "ok\n", headers: {Cache-Control: no-store}}}
  - {path: /gone, respond: {status: 410}, response_headers: {set: {X-Why: moved}}}
  - {path: /temp, redirect: {to: "/elsewhere", status: 307}}
)");
  ASSERT_EQ(cfg.routes.size(), 8u);
  EXPECT_EQ(cfg.listeners.at(0).name, "public");
  EXPECT_EQ(cfg.listeners.at(2).name, "");

  const route& a = cfg.routes[0];
  EXPECT_EQ(a.host, "*.Example.com");
  EXPECT_EQ(a.path, "/exact");
  EXPECT_EQ(a.path_prefix, "");  // another path matcher was given
  EXPECT_EQ(a.methods, (std::vector<std::string>{"GET", "HEAD"}));
  ASSERT_EQ(a.headers.size(), 2u);
  EXPECT_EQ(a.headers[0].first, "X-Canary");
  EXPECT_EQ(a.headers[0].second.value, "1");
  EXPECT_EQ(a.headers[0].second.regex, nullptr);
  EXPECT_EQ(a.headers[1].second.regex_source, "gold|silver");
  ASSERT_NE(a.headers[1].second.regex, nullptr);
  EXPECT_TRUE(RE2::FullMatch("silver", *a.headers[1].second.regex));
  ASSERT_EQ(a.query.size(), 2u);
  EXPECT_EQ(a.query[0].first, "v");
  EXPECT_EQ(a.query[0].second.value, "2");
  EXPECT_EQ(a.listeners, (std::vector<std::string>{"public", "admin"}));
  EXPECT_EQ(a.host_rewrite, "internal.example:8443");

  const route& re = cfg.routes[1];
  EXPECT_EQ(re.path_regex, "/users/[0-9]+");
  ASSERT_NE(re.path_re, nullptr);
  EXPECT_TRUE(RE2::FullMatch("/users/42", *re.path_re));
  EXPECT_EQ(re.path_prefix, "");

  EXPECT_TRUE(cfg.routes[2].strip_prefix);
  EXPECT_EQ(cfg.routes[2].path_prefix, "/api");
  EXPECT_EQ(cfg.routes[3].prefix_rewrite, "/v2/");

  const route& redirect = cfg.routes[4];
  EXPECT_EQ(redirect.upstream, "");
  ASSERT_TRUE(redirect.redirect);
  EXPECT_EQ(redirect.redirect->to, "https://{host}{path}");
  EXPECT_EQ(redirect.redirect->status, 301);  // the default

  const route& ok = cfg.routes[5];
  ASSERT_TRUE(ok.respond);
  EXPECT_EQ(ok.respond->status, 200);  // the default
  EXPECT_EQ(ok.respond->body, "ok\n");
  ASSERT_EQ(ok.respond->headers.size(), 1u);
  EXPECT_EQ(ok.respond->headers[0].second, "no-store");
  EXPECT_EQ(cfg.routes[6].respond->status, 410);
  EXPECT_EQ(cfg.routes[6].respond->body, "");
  EXPECT_EQ(cfg.routes[6].response_headers.set.size(), 1u);
  EXPECT_EQ(cfg.routes[7].redirect->status, 307);
}

TEST(ConfigRoutes, DefaultsFromTheStruct) {
  auto cfg = must_load(std::string(head) + "routes: [{upstream: app}]\n");
  const route& r = cfg.routes.at(0);
  const route defaults;
  EXPECT_EQ(r.host, "");
  EXPECT_EQ(r.path_prefix, "/");
  EXPECT_EQ(r.path, std::nullopt);
  EXPECT_EQ(r.path_regex, std::nullopt);
  EXPECT_TRUE(r.methods.empty() && r.headers.empty() && r.query.empty() && r.listeners.empty());
  EXPECT_FALSE(r.strip_prefix);
  EXPECT_EQ(r.prefix_rewrite, "");
  EXPECT_EQ(r.host_rewrite, "");
  EXPECT_FALSE(r.redirect || r.respond);
  EXPECT_EQ(redirect{}.status, 301);
  EXPECT_EQ(respond{}.status, 200);
  EXPECT_EQ(defaults.path_prefix, "/");
}

TEST(ConfigRoutes, WildcardHostsAreStarDotAndAName) {
  for (std::string_view ok : {"*.example.com", "*.com", "*.a-b.example.com"}) {
    auto r = route_errors("  - {host: \"" + std::string(ok) + "\", upstream: app}\n");
    EXPECT_EQ(r, errors{}) << ok;
  }
  for (std::string_view bad : {"*example.com", "a.*.example.com", "*", "*.", "**.example.com",
                               "*.*.example.com", "*..example.com", "example.*"}) {
    EXPECT_EQ(route_errors("  - {host: \"" + std::string(bad) + "\", upstream: app}\n"),
              errors{"routes[0].host: \"" + std::string(bad) +
                     "\" is not a host name or a wildcard (no scheme, port or path; e.g. "
                     "example.com, *.example.com)"})
        << bad;
  }
}

TEST(ConfigRoutes, RejectsBadRegexesWithTheirPaths) {
  EXPECT_EQ(route_errors(R"(
  - {path_regex: "/a(b", upstream: app}
  - {path_regex: "", upstream: app}
  - {headers: {X-A: {regex: "[z-a]"}}, upstream: app}
  - {query: {q: {regex: "(?P<n"}}, upstream: app}
  - {headers: {X-A: {regexp: "a"}}, upstream: app}
)"),
            (errors{
                "routes[0].path_regex: \"/a(b\" is not a valid regular expression (RE2 syntax): "
                "missing ): /a(b",
                "routes[1].path_regex: must not be empty",
                "routes[2].headers.X-A.regex: \"[z-a]\" is not a valid regular expression (RE2 "
                "syntax): invalid character class range: z-a",
                "routes[3].query.q.regex: \"(?P<n\" is not a valid regular expression (RE2 "
                "syntax): invalid named capture group: (?P<n",
                "routes[4].headers.X-A.regexp: unknown key",
                "routes[4].headers.X-A.regex: required key is missing",
            }));
}

TEST(ConfigRoutes, NeedsExactlyOneAction) {
  EXPECT_EQ(route_errors(R"(
  - {path_prefix: /a}
  - {path_prefix: /b, upstream: app, redirect: {to: "https://{host}{path}"}}
  - {path_prefix: /c, redirect: {to: "/x"}, respond: {status: 204}}
  - {path_prefix: /d, upstream: app, respond: {}}
)"),
            (errors{
                "routes[0]: needs one of upstream, redirect, respond (what to do with the "
                "request)",
                "routes[1].redirect: upstream is given too; a route has one of upstream, "
                "redirect, respond",
                "routes[2].respond: redirect is given too; a route has one of upstream, "
                "redirect, respond",
                "routes[3].respond: upstream is given too; a route has one of upstream, "
                "redirect, respond",
            }));
}

TEST(ConfigRoutes, RejectsUpstreamKeysOnRoutesWithoutUpstream) {
  EXPECT_EQ(route_errors(R"(
  - path_prefix: /a
    redirect: {to: "https://{host}{path}"}
    strip_prefix: true
    host_rewrite: x.example
    request_headers: {set: {X-A: "1"}}
  - {path: /b, respond: {}, upstream_target: raw, host_header: keep, flush_interval: 1s}
  - {path: /c, respond: {}, prefix_rewrite: /x, response_headers: {set: {X-A: "1"}}}
)"),
            (errors{
                "routes[0].strip_prefix: applies to routes with an upstream only (this one has "
                "redirect)",
                "routes[0].host_rewrite: applies to routes with an upstream only (this one has "
                "redirect)",
                "routes[0].request_headers: applies to routes with an upstream only (this one "
                "has redirect)",
                "routes[1].host_header: applies to routes with an upstream only (this one has "
                "respond)",
                "routes[1].upstream_target: applies to routes with an upstream only (this one "
                "has respond)",
                "routes[1].flush_interval: applies to routes with an upstream only (this one "
                "has respond)",
                "routes[2].prefix_rewrite: applies to routes with an upstream only (this one "
                "has respond)",
            }));
}

TEST(ConfigRoutes, OnePathMatcherPerRoute) {
  EXPECT_EQ(route_errors(R"(
  - {path: /a, path_prefix: /a, upstream: app}
  - {path_regex: "/b.*", path: /b, upstream: app}
  - {path: a, upstream: app}
  - {path: "/a b", upstream: app}
)"),
            (errors{
                "routes[0].path_prefix: path is given too; a route has one of path, "
                "path_prefix, path_regex",
                "routes[1].path_regex: path is given too; a route has one of path, path_prefix, "
                "path_regex",
                "routes[2].path: \"a\" must start with '/'",
                "routes[3].path: \"/a b\" must be a path without spaces, '?' or '#'",
            }));
}

TEST(ConfigRoutes, ValidatesMethodsHeadersAndQuery) {
  EXPECT_EQ(route_errors(R"(
  - {methods: [GET, get], upstream: app}
  - {methods: [GET, GET], upstream: app}
  - {methods: [], upstream: app}
  - {methods: GET, upstream: app}
  - {headers: {"Bad Name": "1", x-a: "1", X-A: "2"}, upstream: app}
  - {headers: {X-A: [1, 2]}, upstream: app}
  - {query: {"": "1", v: "1"}, upstream: app}
  - {query: {v: "1", V: "2"}, upstream: app}
)"),
            (errors{
                "routes[0].methods[1]: \"get\" is not a method (an upper-case token such as GET)",
                "routes[1].methods[1]: duplicate method \"GET\"",
                "routes[2].methods: must name at least one method (omit for any)",
                "routes[3].methods: expected a list, got \"GET\"",
                "routes[4].headers: \"Bad Name\" is not a valid header name (RFC 9110 token)",
                "routes[4].headers.X-A: duplicate key (header names are case-insensitive)",
                "routes[5].headers.X-A: expected a value or {regex: ...}, got a list",
                "routes[6].query: a parameter name must not be empty",
            }));
}

TEST(ConfigRoutes, ListenerNamesAreUniqueAndRoutesNameExistingOnes) {
  EXPECT_EQ(errors_of(R"(
listeners:
  - {name: public, address: "127.0.0.1:8080"}
  - {name: public, address: "127.0.0.1:8081"}
  - {name: "two words", address: "127.0.0.1:8082"}
  - {name: "", address: "127.0.0.1:8083"}
upstreams: [{name: app, url: "http://127.0.0.1:9000"}]
routes:
  - {listeners: [public, intranet], upstream: app}
  - {listeners: [], path: /x, upstream: app}
  - {listeners: [public, public], path: /y, upstream: app}
)"),
            (errors{
                "listeners[1].name: duplicate listener name \"public\"",
                "listeners[2].name: \"two words\" is not a name (letters, digits, '-', '_', '.')",
                "listeners[3].name: must not be empty",
                "routes[1].listeners: must name at least one listener (omit for all)",
                "routes[2].listeners[1]: duplicate listener \"public\"",
                "routes[0].listeners[1]: no listener named \"intranet\" (listeners[].name)",
            }));
}

TEST(ConfigRoutes, ListenersMayBeDeclaredAfterRoutes) {
  must_load(R"(
routes: [{listeners: [late], upstream: app}]
upstreams: [{name: app, url: "http://127.0.0.1:9000"}]
listeners: [{name: late, address: "127.0.0.1:8080"}]
)");
}

TEST(ConfigRoutes, ValidatesRedirects) {
  EXPECT_EQ(route_errors(R"(
  - {path: /a, redirect: {to: "https://{host}{uri}"}}
  - {path: /b, redirect: {to: "https://{host"}}
  - {path: /c, redirect: {to: "{path}"}}
  - {path: /d, redirect: {to: "//{host}{path}"}}
  - {path: /e, redirect: {to: "https://{host}{path}", status: 200}}
  - {path: /f, redirect: {status: 302}}
  - {path: /g, redirect: {to: "https://x/ y"}}
  - {path: /h, redirect: {to: "https://x/}"}}
  - {path: /i, redirect: {to: "/\\evil.example"}}
)"),
            (errors{
                "routes[0].redirect.to: \"{uri}\" is not a placeholder (use {scheme}, {host}, "
                "{path})",
                "routes[1].redirect.to: unbalanced '{' (placeholders: {scheme}, {host}, {path})",
                "routes[2].redirect.to: \"{path}\" must be an absolute URL (http://, https://, "
                "{scheme}://) or a path like /new",
                "routes[3].redirect.to: \"//{host}{path}\" must be an absolute URL (http://, "
                "https://, {scheme}://) or a path like /new",
                "routes[4].redirect.status: 200 is not a redirect status (301, 302, 303, 307, "
                "308)",
                "routes[5].redirect.to: required key is missing",
                "routes[6].redirect.to: must not contain spaces or control characters",
                "routes[7].redirect.to: unbalanced '}' (placeholders: {scheme}, {host}, {path})",
                "routes[8].redirect.to: \"/\\\\evil.example\" must be an absolute URL (http://, "
                "https://, {scheme}://) or a path like /new",
            }));
  EXPECT_EQ(route_errors("  - {redirect: {to: \"{scheme}://{host}:8443{path}\", status: 308}}\n"),
            errors{});
}

TEST(ConfigRoutes, ValidatesFixedResponses) {
  EXPECT_EQ(route_errors(R"(
  - {path: /a, respond: {status: 101}}
  - {path: /b, respond: {status: 600}}
  - {path: /c, respond: {status: 204, body: "x"}}
  - {path: /d, respond: {headers: {Content-Length: "5", X-A: "a\nb"}}}
  - {path: /e, respond: {bodyy: "x"}}
)"),
            (errors{
                "routes[0].respond.status: 101 is not from 200 to 599",
                "routes[1].respond.status: 600 is not from 200 to 599",
                "routes[2].respond.body: a 204 response has no body",
                "routes[3].respond.headers.X-A: value must not contain CR, LF or NUL",
                "routes[3].respond.headers.Content-Length: is set by trafficcop from the body",
                "routes[4].respond.bodyy: unknown key",
            }));
}

TEST(ConfigRoutes, ValidatesRewrites) {
  EXPECT_EQ(route_errors(R"(
  - {path_prefix: /a, strip_prefix: true, prefix_rewrite: /v2, upstream: app}
  - {path: /b, strip_prefix: true, upstream: app}
  - {path_regex: "/c.*", prefix_rewrite: /v2, upstream: app}
  - {path_prefix: /d, strip_prefix: true, upstream_target: raw, upstream: app}
  - {path_prefix: /e, prefix_rewrite: v2, upstream: app}
  - {path_prefix: /f, strip_prefix: yes, upstream: app}
  - {path_prefix: /g, host_rewrite: "a b", upstream: app}
  - {path_prefix: /h, host_rewrite: x.example, host_header: keep, upstream: app}
  - {path_prefix: /i, host_rewrite: x.example, request_headers: {remove: [host]}, upstream: app}
  - {path_prefix: /j, host_rewrite: "x.example:99999", upstream: app}
)"),
            (errors{
                "routes[0].prefix_rewrite: strip_prefix is set too (strip_prefix: true is "
                "prefix_rewrite: /); give one",
                "routes[1].strip_prefix: applies to path_prefix routes only (it replaces the "
                "matched prefix)",
                "routes[2].prefix_rewrite: applies to path_prefix routes only (it replaces the "
                "matched prefix)",
                "routes[3].upstream_target: raw sends the client's bytes, which a prefix "
                "rewrite would not change; use normalized",
                "routes[4].prefix_rewrite: \"v2\" must start with '/'",
                "routes[5].strip_prefix: expected true or false, got \"yes\"",
                "routes[6].host_rewrite: invalid host \"a b\"",
                "routes[7].host_header: host_rewrite is set too (it decides the Host sent)",
                "routes[8].request_headers: edits Host, which host_rewrite sets; give one",
                "routes[9].host_rewrite: port 99999 is out of range (0-65535)",
            }));
}

TEST(ConfigRoutes, TopLevelRawTargetNeedsNormalizedOnRewritingRoutes) {
  EXPECT_EQ(errors_of(std::string(head) + R"(
upstream_target: raw
routes:
  - {path_prefix: /a, strip_prefix: true, upstream: app}
  - {path_prefix: /b, prefix_rewrite: /x, upstream: app, upstream_target: normalized}
  - {path_prefix: /c, upstream: app}
)"),
            errors{"routes[0].strip_prefix: the top-level upstream_target is raw, which a prefix "
                   "rewrite would not change; set upstream_target: normalized on this route"});
}

TEST(ConfigRoutes, RejectsRoutesThatCanNeverMatch) {
  EXPECT_EQ(route_errors(R"(
  - {host: A.example, path: /x, upstream: app}
  - {host: a.example, path: /x, upstream: app}
  - {path_regex: "/r.*", methods: [GET], upstream: app}
  - {path_regex: "/r.*", methods: [GET], headers: {x-a: "1"}, upstream: app}
  - {host: "*.example", path_prefix: /p, headers: {X-A: "1"}, query: {v: "2"}, upstream: app}
  - {host: "*.Example", path_prefix: /p, headers: {x-a: "1"}, query: {v: "2"}, upstream: app}
  - {path_prefix: /l, listeners: [public, admin], upstream: app}
  - {path_prefix: /l, listeners: [admin], methods: [POST], upstream: app}
  - {path_prefix: /q, query: {v: {regex: "1|2"}}, upstream: app}
  - {path_prefix: /q, query: {v: {regex: "1|2"}}, respond: {}}
)"),
            (errors{
                "routes[1]: same host and path as routes[0], so it can never match",
                "routes[3]: same host and path_regex as routes[2], whose methods, headers, "
                "query and listeners take every request this one would, so it can never match",
                "routes[5]: same host and path_prefix as routes[4], whose methods, headers, "
                "query and listeners take every request this one would, so it can never match",
                "routes[7]: same host and path_prefix as routes[6], whose methods, headers, "
                "query and listeners take every request this one would, so it can never match",
                "routes[9]: same host and path_prefix as routes[8], whose methods, headers, "
                "query and listeners take every request this one would, so it can never match",
            }));
}

TEST(ConfigRoutes, AcceptsRoutesThatDifferInTheirOtherMatchers) {
  EXPECT_EQ(route_errors(R"(
  - {path_prefix: /api, methods: [POST], upstream: app}
  - {path_prefix: /api, methods: [GET, HEAD], upstream: app}
  - {path_prefix: /api, headers: {X-Canary: "1"}, upstream: app}
  - {path_prefix: /api, headers: {X-Canary: "2"}, upstream: app}
  - {path_prefix: /api, query: {v: "2"}, upstream: app}
  - {path_prefix: /api, listeners: [admin], upstream: app}
  - {path_prefix: /api, upstream: app}
  - {path: /api, upstream: app}
  - {path_regex: /api, upstream: app}
  - {host: api.example, path_prefix: /api, upstream: app}
  - {host: "*.api.example", path_prefix: /api, upstream: app}
)"),
            errors{});
}

// Issue 9.6: a table of 10,000 routes of every kind loads (no quadratic check on the way); how
// fast is measured by bench/micro/router_bench.cpp (BM_Load10kRoutes), not by a timed test.
TEST(ConfigRoutes, LoadsTenThousandRoutes) {
  std::string yaml(head);
  yaml += "routes:\n";
  for (int i = 0; i < 10000; ++i) {
    auto n = std::to_string(i);
    switch (i % 4) {
      case 0:
        yaml += "  - {host: h" + n + ".example, path_prefix: /api/" + n + ", upstream: app}\n";
        break;
      case 1:
        yaml += "  - {host: \"*.w" + n + ".example\", path: /p/" + n + ", upstream: app}\n";
        break;
      case 2:
        yaml += "  - {path_regex: \"/r/" + n + "/[0-9]+\", methods: [GET], upstream: app}\n";
        break;
      default:
        yaml += "  - {path_prefix: /s/" + n + ", headers: {X-V: \"" + n + "\"}, upstream: app}\n";
    }
  }
  auto cfg = must_load(yaml);
  EXPECT_EQ(cfg.routes.size(), 10000u);
}

}  // namespace
}  // namespace trafficcop::config
