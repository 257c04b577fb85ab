// SPDX-License-Identifier: MIT
// The route table (src/app/router.hpp) without sockets: host and path precedence, exhaustively
// over every subset of a set of competing routes, the other matchers, listener limits, and the
// pure helpers behind prefix rewrites and redirect templates.
#include "app/router.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace trafficcop::app {
namespace {

constexpr auto none = route_table::none;

/// A table from YAML route lines (validated by the loader, as in the binary).
struct table {
  config::config cfg;
  route_table routes;

  static config::config load(const std::string& route_lines) {
    auto r = config::load_string(R"(
listeners:
  - {name: public, address: "127.0.0.1:8080"}
  - {name: admin, address: "127.0.0.1:8081"}
upstreams: [{name: app, url: "http://127.0.0.1:9000"}]
routes:
)" + route_lines);
    for (const auto& e : r.errors) ADD_FAILURE() << e;
    return r.cfg.value_or(config::config{});
  }
  explicit table(const std::string& route_lines)
      : cfg(load(route_lines)), routes(cfg.routes, cfg.listeners) {}
};

struct req_spec {
  std::string host = "a.example";
  std::string target = "/";
  std::string method = "GET";
  std::vector<std::pair<std::string, std::string>> headers = {};
  std::size_t listener = 0;
};

request make(const req_spec& s) {
  request r;
  r.method = s.method;
  r.host = s.host;
  r.target = s.target;
  r.raw_target = s.target;
  for (const auto& [n, v] : s.headers) r.header.add(n, v);
  r.listener = s.listener;
  return r;
}

std::size_t match(const table& t, const req_spec& s) { return t.routes.match(make(s)); }

TEST(RouteTable, HostExactThenLongestWildcardThenAny) {
  table t(R"(
  - {path_prefix: /, upstream: app}
  - {host: "*.example.com", upstream: app}
  - {host: "*.b.example.com", upstream: app}
  - {host: a.b.example.com, upstream: app}
)");
  EXPECT_EQ(match(t, {.host = "a.b.example.com"}), 3u);
  EXPECT_EQ(match(t, {.host = "A.B.Example.COM:8443"}), 3u);  // case and port ignored
  EXPECT_EQ(match(t, {.host = "a.b.example.com."}), 3u);      // the root's trailing dot
  EXPECT_EQ(match(t, {.host = "x.b.example.com"}), 2u);
  EXPECT_EQ(match(t, {.host = "y.x.b.example.com"}), 2u);  // more than one label
  EXPECT_EQ(match(t, {.host = "b.example.com"}), 1u);      // *.b.example.com needs a label
  EXPECT_EQ(match(t, {.host = "example.com"}), 0u);        // *.example.com does too
  EXPECT_EQ(match(t, {.host = "other.example"}), 0u);
  EXPECT_EQ(match(t, {.host = "[::1]:8080"}), 0u);
  EXPECT_EQ(match(t, {.host = ""}), 0u);  // HTTP/1.0 without Host
}

TEST(RouteTable, IPv6HostsAreExactHosts) {
  table t(R"(
  - {host: "[::1]", upstream: app}
  - {upstream: app, path: /x}
)");
  EXPECT_EQ(match(t, {.host = "[::1]:8080"}), 0u);
  EXPECT_EQ(match(t, {.host = "[::1]"}), 0u);
  EXPECT_EQ(match(t, {.host = "[::2]", .target = "/x"}), 1u);
}

TEST(RouteTable, NoRouteIsNone) {
  table t(R"(
  - {host: a.example, path_prefix: /api, upstream: app}
  - {path: /only, upstream: app}
)");
  EXPECT_EQ(match(t, {.target = "/other"}), none);
  EXPECT_EQ(match(t, {.host = "b.example", .target = "/api"}), none);
  EXPECT_EQ(match(t, {.target = "*", .method = "OPTIONS"}), none);
}

TEST(RouteTable, AHostWithoutAMatchingPathFallsThroughToWildcardsThenAnyHost) {
  table t(R"(
  - {host: a.example, path_prefix: /api, upstream: app}
  - {host: "*.example", path_prefix: /web, upstream: app}
  - {path_prefix: /, upstream: app}
)");
  EXPECT_EQ(match(t, {.target = "/api/x"}), 0u);
  EXPECT_EQ(match(t, {.target = "/web/x"}), 1u);
  EXPECT_EQ(match(t, {.target = "/other"}), 2u);
}

TEST(RouteTable, PathExactThenRegexInFileOrderThenLongestPrefix) {
  table t(R"(
  - {path_prefix: /, upstream: app}
  - {path_prefix: /api, upstream: app}
  - {path_prefix: /api/v1, upstream: app}
  - {path_regex: "/api/v[0-9]+/users/.*", upstream: app}
  - {path_regex: "/api/.*/users/42", upstream: app}
  - {path: /api/v1/users/42, upstream: app}
)");
  EXPECT_EQ(match(t, {.target = "/api/v1/users/42"}), 5u);  // exact
  EXPECT_EQ(match(t, {.target = "/api/v1/users/42?x=1"}), 5u);
  EXPECT_EQ(match(t, {.target = "/api/v2/users/42"}), 3u);  // first regex in file order
  EXPECT_EQ(match(t, {.target = "/api/vx/users/42"}), 4u);
  EXPECT_EQ(match(t, {.target = "/api/v1/orders"}), 2u);  // longest prefix
  EXPECT_EQ(match(t, {.target = "/api/v1"}), 2u);
  EXPECT_EQ(match(t, {.target = "/api/v10"}), 1u);  // whole segments only
  EXPECT_EQ(match(t, {.target = "/api"}), 1u);
  EXPECT_EQ(match(t, {.target = "/apix"}), 0u);
}

// From four regexes on, a host's regexes are matched in one pass (an RE2::Set): the result
// must be the same as trying them one by one in file order.
TEST(RouteTable, ManyRegexesStillMatchInFileOrder) {
  table t(R"(
  - {path_regex: "/a/[0-9]+", methods: [POST], upstream: app}
  - {path_regex: "/a/.*", headers: {X-A: "1"}, upstream: app}
  - {path_regex: "/a/[0-9]+", upstream: app}
  - {path_regex: "/b|/a/1", upstream: app}
  - {path_regex: "/(a|b)/.*", upstream: app}
  - {path_regex: "/c", listeners: [admin], upstream: app}
  - {path_prefix: /, upstream: app}
)");
  EXPECT_EQ(match(t, {.target = "/a/1", .method = "POST", .headers = {{"X-A", "1"}}}), 0u);
  EXPECT_EQ(match(t, {.target = "/a/1", .headers = {{"X-A", "1"}}}), 1u);
  EXPECT_EQ(match(t, {.target = "/a/1"}), 2u);
  EXPECT_EQ(match(t, {.target = "/b"}), 3u);
  EXPECT_EQ(match(t, {.target = "/a/x"}), 4u);
  EXPECT_EQ(match(t, {.target = "/b/"}), 4u);
  EXPECT_EQ(match(t, {.target = "/c"}), 6u);
  EXPECT_EQ(match(t, {.target = "/c", .listener = 1}), 5u);
  EXPECT_EQ(match(t, {.target = "/a"}), 6u);
  EXPECT_EQ(match(t, {.target = "/x/a/1"}), 6u);  // anchored at both ends, as one by one
  EXPECT_EQ(match(t, {.target = "/a/1x"}), 4u);
}

TEST(RouteTable, RegexesMatchTheWholePathNotAPart) {
  table t(R"(
  - {path_regex: "/admin", upstream: app}
  - {path_regex: "/img/.*\\.png", upstream: app}
)");
  EXPECT_EQ(match(t, {.target = "/admin"}), 0u);
  EXPECT_EQ(match(t, {.target = "/x/admin"}), none);
  EXPECT_EQ(match(t, {.target = "/admin/x"}), none);
  EXPECT_EQ(match(t, {.target = "/img/a/b.png?v=1"}), 1u);  // the query is not the path
  EXPECT_EQ(match(t, {.target = "/img/a.pngx"}), none);
}

TEST(RouteTable, PrefixesMatchWholeSegments) {
  table t(R"(
  - {path_prefix: /a, upstream: app}
  - {path_prefix: /a/b/, upstream: app}
  - {path_prefix: /a/b, upstream: app, methods: [POST]}
  - {path_prefix: /c/, upstream: app}
)");
  EXPECT_EQ(match(t, {.target = "/a"}), 0u);
  EXPECT_EQ(match(t, {.target = "/a/"}), 0u);
  EXPECT_EQ(match(t, {.target = "/a/b"}), 0u);  // /a/b/ needs the slash; /a/b is POST only
  EXPECT_EQ(match(t, {.target = "/a/b", .method = "POST"}), 2u);
  EXPECT_EQ(match(t, {.target = "/a/b/"}), 1u);
  EXPECT_EQ(match(t, {.target = "/a/b/c"}), 1u);
  EXPECT_EQ(match(t, {.target = "/a/bc"}), 0u);
  EXPECT_EQ(match(t, {.target = "/c"}), none);
  EXPECT_EQ(match(t, {.target = "/c/"}), 3u);
  EXPECT_EQ(match(t, {.target = "/c//d"}), 3u);
}

TEST(RouteTable, SamePathMatcherFirstInFileOrderWhoseMatchersHold) {
  table t(R"(
  - {path_prefix: /api, methods: [POST, PUT], upstream: app}
  - {path_prefix: /api, headers: {X-Canary: "1"}, upstream: app}
  - {path_prefix: /api, query: {v: "2"}, upstream: app}
  - {path_prefix: /api, headers: {X-Canary: {regex: "[0-9]+"}}, query: {v: "3"}, upstream: app}
  - {path_prefix: /api, upstream: app}
  - {path_prefix: /, methods: [DELETE], upstream: app}
)");
  EXPECT_EQ(match(t, {.target = "/api/x", .method = "PUT", .headers = {{"X-Canary", "1"}}}), 0u);
  EXPECT_EQ(match(t, {.target = "/api/x", .headers = {{"x-canary", "1"}}}), 1u);
  EXPECT_EQ(match(t, {.target = "/api/x?v=2", .headers = {{"X-Canary", "1"}}}), 1u);
  EXPECT_EQ(match(t, {.target = "/api/x?v=2", .headers = {{"X-Canary", "2"}}}), 2u);
  EXPECT_EQ(match(t, {.target = "/api/x?v=3", .headers = {{"X-Canary", "22"}}}), 3u);
  EXPECT_EQ(match(t, {.target = "/api/x?v=3", .headers = {{"X-Canary", "2a"}}}), 4u);
  EXPECT_EQ(match(t, {.target = "/api/x?v=3"}), 4u);
  EXPECT_EQ(match(t, {.target = "/api", .method = "DELETE"}), 4u);  // longest prefix first
}

TEST(RouteTable, WhenNoRouteOfTheLongestPrefixHoldsAShorterOneIsTried) {
  table t(R"(
  - {path_prefix: /api/v2, methods: [GET], upstream: app}
  - {path_prefix: /api, methods: [GET, POST], upstream: app}
  - {path_prefix: /, upstream: app}
  - {path: /api/v2/x, methods: [PUT], upstream: app}
  - {path_regex: "/api/v2/.*", methods: [PATCH], upstream: app}
)");
  EXPECT_EQ(match(t, {.target = "/api/v2/x"}), 0u);
  EXPECT_EQ(match(t, {.target = "/api/v2/x", .method = "POST"}), 1u);
  EXPECT_EQ(match(t, {.target = "/api/v2/x", .method = "DELETE"}), 2u);
  EXPECT_EQ(match(t, {.target = "/api/v2/x", .method = "PUT"}), 3u);
  EXPECT_EQ(match(t, {.target = "/api/v2/x", .method = "PATCH"}), 4u);
  EXPECT_EQ(match(t, {.target = "/api/v2/y", .method = "PUT"}), 2u);
}

TEST(RouteTable, MethodsAreCaseSensitive) {
  table t("  - {path_prefix: /, methods: [GET, HEAD], upstream: app}\n");
  EXPECT_EQ(match(t, {.method = "GET"}), 0u);
  EXPECT_EQ(match(t, {.method = "HEAD"}), 0u);
  EXPECT_EQ(match(t, {.method = "get"}), none);
  EXPECT_EQ(match(t, {.method = "POST"}), none);
}

TEST(RouteTable, HeaderConditionsHoldOnAnyLineOfTheField) {
  table t(R"(
  - {path: /h, headers: {X-Tier: gold, X-Id: {regex: "[a-f0-9]{4}"}}, upstream: app}
  - {path: /e, headers: {X-Empty: ""}, upstream: app}
)");
  req_spec s{.target = "/h",
             .headers = {{"x-tier", "silver"}, {"X-TIER", "gold"}, {"x-id", "beef"}}};
  EXPECT_EQ(match(t, s), 0u);
  s.headers = {{"X-Tier", "gold"}, {"X-Id", "beefy"}};  // a regex matches the whole value
  EXPECT_EQ(match(t, s), none);
  s.headers = {{"X-Tier", "Gold"}, {"X-Id", "beef"}};  // values are case-sensitive
  EXPECT_EQ(match(t, s), none);
  s.headers = {{"X-Id", "beef"}};
  EXPECT_EQ(match(t, s), none);
  EXPECT_EQ(match(t, {.target = "/e", .headers = {{"X-Empty", ""}}}), 1u);
  EXPECT_EQ(match(t, {.target = "/e"}), none);  // absent is not empty
}

TEST(RouteTable, QueryConditionsCompareUnescapedParameters) {
  table t(R"(
  - {path: /q, query: {v: "2", name: "a b&c"}, upstream: app}
  - {path: /r, query: {lang: {regex: "[a-z]{2}"}}, upstream: app}
  - {path: /f, query: {flag: ""}, upstream: app}
)");
  EXPECT_EQ(match(t, {.target = "/q?v=2&name=a+b%26c"}), 0u);
  EXPECT_EQ(match(t, {.target = "/q?name=a%20b%26c&v=%32"}), 0u);
  EXPECT_EQ(match(t, {.target = "/q?v=1&v=2&name=a+b%26c"}), 0u);  // any of the repeated ones
  EXPECT_EQ(match(t, {.target = "/q?v=2"}), none);
  EXPECT_EQ(match(t, {.target = "/q?V=2&name=a+b%26c"}), none);  // names are case-sensitive
  EXPECT_EQ(match(t, {.target = "/q"}), none);
  EXPECT_EQ(match(t, {.target = "/r?lang=fr"}), 1u);
  EXPECT_EQ(match(t, {.target = "/r?lang=fra"}), none);
  EXPECT_EQ(match(t, {.target = "/f?flag"}), 2u);
  EXPECT_EQ(match(t, {.target = "/f?flag="}), 2u);
  EXPECT_EQ(match(t, {.target = "/f?flags"}), none);
  EXPECT_EQ(match(t, {.target = "/f?x=%zz&flag"}), 2u);  // a bad escape elsewhere is harmless
}

TEST(RouteTable, ListenerLimitedRoutes) {
  table t(R"(
  - {path_prefix: /, listeners: [admin], upstream: app}
  - {path_prefix: /, listeners: [public], methods: [GET], upstream: app}
  - {path: /shared, upstream: app}
)");
  EXPECT_EQ(match(t, {.listener = 1}), 0u);
  EXPECT_EQ(match(t, {.listener = 0}), 1u);
  EXPECT_EQ(match(t, {.method = "POST", .listener = 0}), none);
  EXPECT_EQ(match(t, {.target = "/shared", .listener = 0}), 2u);
  EXPECT_EQ(match(t, {.target = "/shared", .listener = 1}), 2u);
  EXPECT_EQ(match(t, {.listener = 7}), none);  // a listener with no name
}

// The precedence table of docs/config.md, as written there.
TEST(RouteTable, DocsPrecedenceExample) {
  table t(R"(
  - {host: shop.example.com, path: /cart, upstream: app}
  - {host: shop.example.com, path_regex: "/ca.*", upstream: app}
  - {host: shop.example.com, path_prefix: /, upstream: app}
  - {host: "*.example.com", path: /x, upstream: app}
  - {path_prefix: /x, methods: [POST], upstream: app}
  - {path_prefix: /x, upstream: app}
)");
  EXPECT_EQ(match(t, {.host = "shop.example.com", .target = "/cart"}), 0u);
  EXPECT_EQ(match(t, {.host = "shop.example.com", .target = "/cat"}), 1u);
  EXPECT_EQ(match(t, {.host = "shop.example.com", .target = "/x"}), 2u);
  EXPECT_EQ(match(t, {.host = "www.example.com", .target = "/x"}), 3u);
  EXPECT_EQ(match(t, {.host = "other.org", .target = "/x/y", .method = "POST"}), 4u);
  EXPECT_EQ(match(t, {.host = "other.org", .target = "/x/y"}), 5u);
  EXPECT_EQ(match(t, {.host = "other.org", .target = "/y"}), none);
}

// Every subset of these competing routes, in file order: the table must pick the route that
// ranks first by (host level, path level), ties broken by file order, and nothing when the
// subset holds no route that matches. 2^10 tables.
TEST(RouteTable, PrecedenceOverEverySubsetOfCompetingRoutes) {
  struct candidate {
    std::string_view yaml;
    int host_rank;  // exact 0, *.b.example.com 1, *.example.com 2, any 3
    int path_rank;  // exact 0, regex 1 (file order within), prefix by length: 2 long, 3 short
  };
  const std::vector<candidate> all = {
      {"{path_prefix: /, upstream: app}", 3, 4},
      {"{path_prefix: /x, upstream: app}", 3, 3},
      {"{host: \"*.example.com\", path_prefix: /x/y, upstream: app}", 2, 2},
      {"{host: \"*.example.com\", path_regex: \"/x/.*\", upstream: app}", 2, 1},
      {"{host: \"*.b.example.com\", path_prefix: /, upstream: app}", 1, 4},
      {"{host: \"*.b.example.com\", path: /x/y/z, upstream: app}", 1, 0},
      {"{host: a.b.example.com, path_prefix: /x, upstream: app}", 0, 3},
      {"{host: a.b.example.com, path_regex: \"/x/y/.*\", upstream: app}", 0, 1},
      {"{host: a.b.example.com, path_regex: \"/x/.*/z\", upstream: app}", 0, 1},
      {"{host: a.b.example.com, path_prefix: /nope, upstream: app}", 0, 3},  // never matches
  };
  const req_spec request{.host = "a.b.example.com", .target = "/x/y/z?q=1"};
  for (unsigned set = 1; set < (1u << all.size()); ++set) {
    std::string lines;
    std::vector<std::size_t> chosen;  // index in `all` of each route of this table
    for (std::size_t i = 0; i < all.size(); ++i)
      if (set & (1u << i)) {
        lines += "  - " + std::string(all[i].yaml) + "\n";
        chosen.push_back(i);
      }
    std::size_t want = none;
    for (std::size_t k = 0; k < chosen.size(); ++k) {
      const auto& c = all[chosen[k]];
      if (chosen[k] == all.size() - 1) continue;  // /nope
      if (want == none) {
        want = k;
        continue;
      }
      const auto& w = all[chosen[want]];
      if (std::pair(c.host_rank, c.path_rank) < std::pair(w.host_rank, w.path_rank)) want = k;
    }
    table t(lines);
    ASSERT_EQ(match(t, request), want) << "routes:\n" << lines;
  }
}

TEST(RouteTable, TenThousandRoutes) {
  std::string lines;
  for (int i = 0; i < 10000; ++i) {
    auto n = std::to_string(i);
    lines += "  - {host: h" + n + ".example, path_prefix: /api/" + n + ", upstream: app}\n";
  }
  lines += "  - {host: \"*.example\", path_prefix: /, upstream: app}\n";
  table t(lines);
  EXPECT_EQ(match(t, {.host = "h0.example", .target = "/api/0/x"}), 0u);
  EXPECT_EQ(match(t, {.host = "h9999.example", .target = "/api/9999"}), 9999u);
  EXPECT_EQ(match(t, {.host = "h9999.example", .target = "/api/9998"}), 10000u);
  EXPECT_EQ(match(t, {.host = "h5.other", .target = "/api/5"}), none);
}

TEST(PrefixRewrite, ReplacesTheMatchedPrefixWithOneSlashAtTheSeam) {
  struct row {
    std::string_view prefix, replacement, path, want;
  };
  for (const row& r : std::vector<row>{
           {"/api", "/", "/api/x", "/x"},
           {"/api", "/", "/api", "/"},
           {"/api", "/", "/api/", "/"},
           {"/api/", "/", "/api/x/y", "/x/y"},
           {"/api", "/v2/", "/api/x", "/v2/x"},
           {"/api", "/v2/", "/api", "/v2/"},
           {"/api", "/v2", "/api/x", "/v2/x"},
           {"/api", "/v2", "/api", "/v2"},
           {"/api", "/v2", "/api/", "/v2/"},
           {"/api/", "/v2", "/api/x", "/v2/x"},
           {"/api/", "/v2/", "/api/x", "/v2/x"},
           {"/", "/v2", "/x", "/v2/x"},
           {"/", "/v2/", "/x", "/v2/x"},
           {"/", "/v2", "/", "/v2"},
           {"/", "/", "/x/y", "/x/y"},
           {"/api", "/", "/api//x", "//x"},
       }) {
    auto [n, head] = prefix_rewrite(r.path, r.prefix, r.replacement);
    std::string got = std::string(head) + std::string(r.path.substr(n));
    EXPECT_EQ(got, r.want) << r.prefix << " -> " << r.replacement << " on " << r.path;
  }
}

TEST(RedirectLocation, ExpandsSchemeHostWithoutPortAndTheRawTarget) {
  request r = make({.host = "Example.com:8080", .target = "/a/b?x=1"});
  r.raw_target = "/a/./b?x=1";  // what the client sent: {path} is nginx's $request_uri
  EXPECT_EQ(redirect_location("https://{host}{path}", r), "https://Example.com/a/./b?x=1");
  EXPECT_EQ(redirect_location("{scheme}://{host}:8443{path}", r),
            "http://Example.com:8443/a/./b?x=1");
  r.tls = true;
  EXPECT_EQ(redirect_location("{scheme}://new.example/", r), "https://new.example/");
  EXPECT_EQ(redirect_location("/moved", r), "/moved");
  r.host = "[::1]:8080";
  EXPECT_EQ(redirect_location("https://{host}/", r), "https://[::1]/");
  r.host = "";  // HTTP/1.0 without Host: the address the client connected to
  r.local_addr = "127.0.0.1:8080";
  EXPECT_EQ(redirect_location("https://{host}/", r), "https://127.0.0.1/");
}

TEST(BareHost, LowerCaseWithoutPortOrTrailingDot) {
  std::string out;
  for (auto [in, want] : std::vector<std::pair<std::string_view, std::string_view>>{
           {"Example.COM:8080", "example.com"},
           {"example.com.", "example.com"},
           {"example.com.:80", "example.com"},
           {"[::1]:80", "[::1]"},
           {"[::1]", "[::1]"},
           {"", ""},
       }) {
    bare_host(in, out);
    EXPECT_EQ(out, want) << in;
  }
}

}  // namespace
}  // namespace trafficcop::app
