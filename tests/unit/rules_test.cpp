// SPDX-License-Identifier: MIT
// Table-driven tests of the proxy-hop header and URL rules in src/http/rules.hpp.
#include "http/rules.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace trafficcop::http {
namespace {

using fields = std::vector<std::pair<std::string, std::string>>;

header_map make_headers(const fields& fs) {
  header_map h;
  for (const auto& [name, value] : fs) h.add(name, value);
  return h;
}

fields dump(const header_map& h) {
  fields out;
  for (const auto& f : h) out.emplace_back(f.name, f.value);
  return out;
}

// --- spec 10 --------------------------------------------------------------------------------

TEST(HopByHop, IsHopByHopMatchesFixedListCaseInsensitively) {
  struct tc {
    std::string_view name;
    bool want;
  };
  const tc cases[] = {
      {"Connection", true},
      {"connection", true},
      {"Proxy-Connection", true},
      {"KEEP-ALIVE", true},
      {"Proxy-Authenticate", true},
      {"proxy-authorization", true},
      {"Te", true},
      {"TE", true},
      {"Trailer", true},
      {"Transfer-Encoding", true},
      {"Upgrade", true},
      {"http2-settings", true},  // spec 10: tip, #80416
      {"Trailers", false},       // spec 18: the plural is not special
      {"Connections", false},
      {"Keep-Alive ", false},
      {"X-Forwarded-For", false},
      {"Set-Cookie", false},
      {"", false},
  };
  for (const auto& c : cases) EXPECT_EQ(is_hop_by_hop(c.name), c.want) << c.name;
}

// --- spec 9, 10, 33 -------------------------------------------------------------------------

TEST(HopByHop, RemovesConnectionListedNames) {
  // spec 33: the Connection variants of Go's TestReverseProxyConnectionResponseFields; several
  // entries are two Connection lines.
  struct tc {
    std::vector<std::string> connection;
    bool other_listed;
  };
  const tc cases[] = {
      {{"X-Hop, close"}, false},
      {{"close, X-Hop"}, false},
      {{"x-hOP, ClOsE"}, false},
      {{"X-Hop, X-Other, close"}, true},
      {{"X-Hop", "X-Other, close"}, true},
      {{"", "X-Hop, close"}, false},  // spec 9: CVE-2021-33197, empty first line
      {{"x-hOP, ClOsE", ""}, false},
      {{"X-Hop"}, false},
  };
  for (const auto& c : cases) {
    header_map h;
    for (const auto& v : c.connection) h.add("Connection", v);
    h.add("X-Hop", "secret");
    h.add("X-Other", "private");
    h.add("X-Extension", "keep");
    remove_hop_by_hop(h);
    fields want;
    if (!c.other_listed) want.emplace_back("X-Other", "private");
    want.emplace_back("X-Extension", "keep");
    EXPECT_EQ(dump(h), want) << c.connection.front();
  }
}

TEST(HopByHop, EmptyFirstConnectionLineDoesNotHideLaterOnes) {
  // spec 9: Go's TestReverseProxyStripEmptyConnection (#46313, CVE-2021-33197).
  auto h = make_headers({{"Connection", ""},
                         {"Connection", "X-Some-Conn-Header"},
                         {"X-Some-Conn-Header", "should be deleted"},
                         {"X-Some-Other-Header", "should be kept"}});
  remove_hop_by_hop(h);
  EXPECT_EQ(dump(h), (fields{{"X-Some-Other-Header", "should be kept"}}));
}

TEST(HopByHop, ConnectionTokensAreTrimmedAndEmptyElementsIgnored) {
  // spec 9: split on commas, OWS trimmed, empty elements skipped, case-insensitive.
  struct tc {
    std::string connection;
    fields want;
  };
  const tc cases[] = {
      {" , X-A ,\tx-b,, ", {{"X-C", "3"}}},
      {",,,", {{"X-A", "1"}, {"X-B", "2"}, {"X-C", "3"}}},
      {"", {{"X-A", "1"}, {"X-B", "2"}, {"X-C", "3"}}},
      {"X-A X-B", {{"X-A", "1"}, {"X-B", "2"}, {"X-C", "3"}}},  // one token, matches nothing
      {"X-C,X-A", {{"X-B", "2"}}},
  };
  for (const auto& c : cases) {
    auto h = make_headers({{"X-A", "1"}, {"Connection", c.connection}, {"X-B", "2"}, {"X-C", "3"}});
    remove_hop_by_hop(h);
    EXPECT_EQ(dump(h), c.want) << '"' << c.connection << '"';
  }
}

TEST(HopByHop, RemovesFixedListAndKeepsOrderOfTheRest) {
  // spec 10 fixed list in mixed case; spec 18: repeated lines, Set-Cookie lines and
  // "Trailers" (plural) stay, in their order.
  auto h = make_headers({{"Host", "example.com"},
                         {"connection", "keep-alive"},
                         {"Set-Cookie", "a=1"},
                         {"PROXY-CONNECTION", "keep-alive"},
                         {"Keep-Alive", "timeout=5"},
                         {"Set-Cookie", "b=2"},
                         {"Proxy-Authenticate", "Basic"},
                         {"Proxy-Authorization", "Basic Zm9vOmJhcg=="},
                         {"te", "trailers"},
                         {"Trailer", "X-Sum"},
                         {"Trailers", "kept"},
                         {"Transfer-Encoding", "chunked"},
                         {"Upgrade", "websocket"},
                         {"HTTP2-Settings", "AAMAAABkAAQAAP__"},
                         {"Cookie", "x=1; y=2"},
                         {"Accept", "a"},
                         {"Accept", "b"}});
  remove_hop_by_hop(h);
  EXPECT_EQ(dump(h), (fields{{"Host", "example.com"},
                             {"Set-Cookie", "a=1"},
                             {"Set-Cookie", "b=2"},
                             {"Trailers", "kept"},
                             {"Cookie", "x=1; y=2"},
                             {"Accept", "a"},
                             {"Accept", "b"}}));
}

TEST(HopByHop, ConnectionMayNameEndToEndFields) {
  // spec 12: a client can delete any field by naming it (#50580); the rule applies as Go's.
  auto h = make_headers({{"Connection", "Cookie, x-forwarded-for"},
                         {"Cookie", "s=1"},
                         {"X-Forwarded-For", "10.0.0.1"},
                         {"Accept", "*/*"}});
  remove_hop_by_hop(h);
  EXPECT_EQ(dump(h), (fields{{"Accept", "*/*"}}));
}

TEST(HopByHop, NoHopByHopFieldsLeavesHeadersUnchanged) {
  const fields in = {{"Host", "h"}, {"Accept", "*/*"}, {"User-Agent", ""}};
  auto h = make_headers(in);
  remove_hop_by_hop(h);
  EXPECT_EQ(dump(h), in);
}

// --- spec 11 --------------------------------------------------------------------------------

TEST(Te, HasTrailersLooksAtEveryTeLine) {
  struct tc {
    std::vector<std::string> te;
    bool want;
  };
  const tc cases[] = {
      {{"foo", "bar, trailers"}, true},  // spec 11: Go's TestReverseProxy
      {{"trailers"}, true},
      {{"TRAILERS"}, true},
      {{" gzip ,\ttrailers "}, true},
      {{"foo"}, false},
      {{"trailersx"}, false},
      {{"gzip; trailers"}, false},  // one element "gzip; trailers", not the token
      {{""}, false},
      {{}, false},
  };
  for (const auto& c : cases) {
    header_map h;
    for (const auto& v : c.te) h.add("TE", v);
    EXPECT_EQ(te_has_trailers(h), c.want) << (c.te.empty() ? "<none>" : c.te.back());
  }
}

TEST(Te, TrailersSeenOnInboundEvenWhenTeIsConnectionListed) {
  // spec 11: the check reads the inbound header, so it survives TE being hop-by-hop.
  const auto in = make_headers(
      {{"Connection", "close, TE"}, {"Te", "foo"}, {"Te", "bar, trailers"}, {"Accept", "*/*"}});
  auto out = in;
  remove_hop_by_hop(out);
  EXPECT_FALSE(out.contains("Te"));
  EXPECT_EQ(dump(out), (fields{{"Accept", "*/*"}}));
  EXPECT_TRUE(te_has_trailers(in));
}

// --- spec 1, 2 ------------------------------------------------------------------------------

TEST(JoinPath, LeavesExactlyOneSlashAtTheJoin) {
  struct tc {
    std::string_view base, in, want;
  };
  const tc cases[] = {
      {"/base", "/dir", "/base/dir"},  // spec 1
      {"/base/", "/dir", "/base/dir"},
      {"/base", "/", "/base/"},
      {"", "x", "/x"},
      {"", "", "/"},
      {"", "/x", "/x"},
      {"/", "/", "/"},
      {"/base/", "dir", "/base/dir"},
      {"/base", "dir", "/base/dir"},
      {"/base", "", "/base/"},          // Go's singleJoiningSlash
      {"/base//", "//x", "/base///x"},  // only the one duplicate at the join goes
  };
  for (const auto& c : cases)
    EXPECT_EQ(join_path(c.base, c.in), c.want) << '"' << c.base << "\" + \"" << c.in << '"';
}

TEST(JoinPath, KeepsPercentEncodingUnchanged) {
  struct tc {
    std::string_view base, in, want;
  };
  const tc cases[] = {
      {"/a%2Fb", "/c", "/a%2Fb/c"},  // spec 2
      {"/a%2F", "/c", "/a%2F/c"},    // %2F is not a '/' at the join (Go's EscapedPath rule)
      {"/base", "/x%2fy%20z", "/base/x%2fy%20z"},
      {"/base", "/%2E%2E/etc", "/base/%2E%2E/etc"},
      {"/sp%20ace/", "/%7Euser", "/sp%20ace/%7Euser"},
  };
  for (const auto& c : cases)
    EXPECT_EQ(join_path(c.base, c.in), c.want) << '"' << c.base << "\" + \"" << c.in << '"';
}

// --- spec 3 ---------------------------------------------------------------------------------

TEST(MergeQuery, JoinsRawQueriesWithAmpersand) {
  struct tc {
    std::string_view target, in, want;
  };
  const tc cases[] = {
      {"sta=tic", "us=er", "sta=tic&us=er"},  // spec 3: Go's TestReverseProxyQuery
      {"", "us=er", "us=er"},
      {"sta=tic", "", "sta=tic"},
      {"", "", ""},
      {"a=%zz", "b=1;c=2", "a=%zz&b=1;c=2"},  // raw bytes, no re-encoding
      {"x=1&", "&y=2", "x=1&&&y=2"},
  };
  for (const auto& c : cases)
    EXPECT_EQ(merge_query(c.target, c.in), c.want) << c.target << " | " << c.in;
}

// --- spec 4 ---------------------------------------------------------------------------------

TEST(SanitizeQuery, KeepsWellFormedQueriesRaw) {
  // spec 3, 4: nothing to fix, so the raw bytes go upstream unchanged.
  const std::string_view cases[] = {
      "",   "a=1&b=2", "b=2&a=1", "a=%41", "q=x+y", "a=b=c", "%E2%82%AC=%e2%82%ac",
      "&&", "k",       "a=1&a=2", "x=%00",
  };
  for (const auto raw : cases) EXPECT_EQ(sanitize_query(raw), std::nullopt) << raw;
}

TEST(SanitizeQuery, ReencodesLikeParseQueryAndEncode) {
  struct tc {
    std::string_view raw, want;
  };
  const tc cases[] = {
      {"a=1&a=2;b=3", "a=1"},  // spec 4, CVE-2022-2880
      {"a=%zz", ""},           // spec 4
      {"a=1;", ""},
      {";", ""},
      {"a%", ""},
      {"a=%4", ""},
      {"a=%4g&b=1", "b=1"},
      {"%zz=1&b=2", "b=2"},                         // bad escape in the key drops the pair too
      {"z=1&a=2&m=3&a=1&bad;", "a=2&a=1&m=3&z=1"},  // keys sorted, values keep order
      {"q=a+b&x=%7e;", "q=a+b"},
      {"k=%2F%20~&;", "k=%2F+~"},
      {"v=%c3%a9&z;", "v=%C3%A9"},  // upper-case hex out
      {"key&x=1;", "key="},         // no '=' means an empty value
      {"&&a=1;&&b&", "b="},
      {"%C3%A9=2&z=1&;", "z=1&%C3%A9=2"},  // bytewise order: 'z' < 0xC3
      {"x=\xff&;", "x=%FF"},
      {"sp=a%20b%2B&t=%26$:/?@,=&;", "sp=a+b%2B&t=%26%24%3A%2F%3F%40%2C%3D"},
  };
  for (const auto& c : cases) {
    const auto got = sanitize_query(c.raw);
    ASSERT_TRUE(got.has_value()) << c.raw;
    EXPECT_EQ(*got, c.want) << c.raw;
  }
}

TEST(SanitizeQuery, TooManyParametersYieldEmptyQuery) {
  // spec 4: CVE-2026-39825 (#78948); more than 10000 parameters make ParseQuery fail whole.
  std::string at_limit;
  for (int i = 0; i < 10000; ++i) at_limit += i == 0 ? "a=1" : "&a=1";
  EXPECT_EQ(sanitize_query(at_limit), std::nullopt);

  std::string at_limit_with_semicolon = at_limit + ";";
  const auto reencoded = sanitize_query(at_limit_with_semicolon);
  ASSERT_TRUE(reencoded.has_value());
  EXPECT_EQ(reencoded->size(), at_limit.size() - 4);  // the last pair "a=1;" is dropped

  EXPECT_EQ(sanitize_query(at_limit + "&a=1"), std::optional<std::string>(""));
  EXPECT_EQ(sanitize_query(std::string(10000, '&')), std::optional<std::string>(""));
}

// --- spec 13 --------------------------------------------------------------------------------

TEST(HostOf, SplitsHostFromPortLikeGo) {
  struct tc {
    std::string_view addr, want;
  };
  const tc cases[] = {
      {"127.0.0.1:8080", "127.0.0.1"},
      {"203.0.113.7:1", "203.0.113.7"},
      {"[::1]:443", "::1"},
      {"[2001:db8::1]:5555", "2001:db8::1"},
      {"[fe80::1%eth0]:80", "fe80::1%eth0"},
      {"host:", "host"},  // Go's SplitHostPort does not check the port
      {"", ""},
      {"127.0.0.1", ""},  // missing port
      {"::1", ""},        // too many colons
      {"2001:db8::1:80", ""},
      {"[::1]", ""},
      {"[::1]80", ""},
      {"[::1]:80:90", ""},
      {"[::1:80", ""},
      {"a[b:80", ""},
      {"a]b:80", ""},
      {"[::1]:8]0", ""},
      {"[[::1]:80", ""},
      {":80", ""},
  };
  for (const auto& c : cases) EXPECT_EQ(host_of(c.addr), c.want) << c.addr;
}

// --- spec 13, 14, 15, 16, 56 ----------------------------------------------------------------

TEST(Forwarded, AppliesModeToOutboundHeaders) {
  struct tc {
    const char* what;
    fields in;
    std::string_view client;
    bool tls;
    forwarded_mode mode;
    fields want;
  };
  const tc cases[] = {
      {"spec 13: one prior value",
       {{"X-Forwarded-For", "203.0.113.7"}},
       "127.0.0.1:4321",
       false,
       forwarded_mode::append,
       {{"X-Forwarded-For", "203.0.113.7, 127.0.0.1"},
        {"X-Forwarded-Host", "front.example"},
        {"X-Forwarded-Proto", "http"}}},
      {"spec 13: no prior value",
       {{"Accept", "*/*"}},
       "127.0.0.1:4321",
       false,
       forwarded_mode::append,
       {{"Accept", "*/*"},
        {"X-Forwarded-For", "127.0.0.1"},
        {"X-Forwarded-Host", "front.example"},
        {"X-Forwarded-Proto", "http"}}},
      {"spec 13: prior lines folded into one, at the first line's place",
       {{"X-Forwarded-For", "10.0.0.1, 10.0.0.2"},
        {"Accept", "*/*"},
        {"x-forwarded-for", "10.0.0.3"}},
       "192.0.2.9:1",
       true,
       forwarded_mode::append,
       {{"X-Forwarded-For", "10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.9"},
        {"Accept", "*/*"},
        {"X-Forwarded-Host", "front.example"},
        {"X-Forwarded-Proto", "https"}}},
      {"spec 13: an empty prior line still counts, as in Go",
       {{"X-Forwarded-For", ""}},
       "127.0.0.1:1",
       false,
       forwarded_mode::append,
       {{"X-Forwarded-For", ", 127.0.0.1"},
        {"X-Forwarded-Host", "front.example"},
        {"X-Forwarded-Proto", "http"}}},
      {"spec 56: spoofed host/proto replaced in place; Forwarded kept in append mode",
       {{"X-Forwarded-Proto", "https"},
        {"Forwarded", "for=198.51.100.1"},
        {"X-Forwarded-Host", "evil.example"},
        {"X-Forwarded-Host", "evil2.example"}},
       "127.0.0.1:1",
       false,
       forwarded_mode::append,
       {{"X-Forwarded-Proto", "http"},
        {"Forwarded", "for=198.51.100.1"},
        {"X-Forwarded-Host", "front.example"},
        {"X-Forwarded-For", "127.0.0.1"}}},
      {"spec 13: IPv6 client without brackets",
       {},
       "[2001:db8::1]:5555",
       true,
       forwarded_mode::append,
       {{"X-Forwarded-For", "2001:db8::1"},
        {"X-Forwarded-Host", "front.example"},
        {"X-Forwarded-Proto", "https"}}},
      {"spec 13: unparseable client address adds no XFF",
       {{"X-Forwarded-For", "203.0.113.7"}},
       "",
       false,
       forwarded_mode::append,
       {{"X-Forwarded-For", "203.0.113.7"},
        {"X-Forwarded-Host", "front.example"},
        {"X-Forwarded-Proto", "http"}}},
      {"spec 15: replace drops every inbound forwarding field",
       {{"Forwarded", "for=198.51.100.1"},
        {"X-Forwarded-For", "203.0.113.7"},
        {"Accept", "*/*"},
        {"X-Forwarded-Host", "evil.example"},
        {"X-Forwarded-Proto", "https"},
        {"X-Forwarded-For", "203.0.113.8"}},
       "127.0.0.1:4321",
       false,
       forwarded_mode::replace,
       {{"Accept", "*/*"},
        {"X-Forwarded-For", "127.0.0.1"},
        {"X-Forwarded-Host", "front.example"},
        {"X-Forwarded-Proto", "http"}}},
      {"spec 15, 16: replace with unparseable client address has no XFF",
       {{"X-Forwarded-For", "203.0.113.7"}},
       "not-an-addr",
       true,
       forwarded_mode::replace,
       {{"X-Forwarded-Host", "front.example"}, {"X-Forwarded-Proto", "https"}}},
      {"spec 14: off forwards inbound values untouched and adds nothing",
       {{"X-Forwarded-For", "203.0.113.7"},
        {"Forwarded", "for=198.51.100.1"},
        {"X-Forwarded-Host", "evil.example"}},
       "127.0.0.1:4321",
       true,
       forwarded_mode::off,
       {{"X-Forwarded-For", "203.0.113.7"},
        {"Forwarded", "for=198.51.100.1"},
        {"X-Forwarded-Host", "evil.example"}}},
  };
  for (const auto& c : cases) {
    auto h = make_headers(c.in);
    apply_forwarded(h, c.client, "front.example", c.tls, c.mode);
    EXPECT_EQ(dump(h), c.want) << c.what;
  }
}

// --- spec 50 --------------------------------------------------------------------------------

TEST(FieldSyntax, IsTokenAcceptsOnlyTchars) {
  struct tc {
    std::string_view s;
    bool want;
  };
  const tc cases[] = {
      {"Content-Type", true},
      {"x!#$%&'*+-.^_`|~09AZaz", true},
      {"GET", true},
      {"websocket", true},
      {"", false},
      {"Bad Name", false},
      {"name:", false},
      {"a/b", false},
      {"a\tb", false},
      {"(x)", false},
      {"\"q\"", false},
      {"a,b", false},
      {"a;b", false},
      {"a=b", false},
      {"{x}", false},
      {"[x]", false},
      {"@", false},
      {"?", false},
      {"\\", false},
      {"x\x7f", false},
      {"\xc3\xa9", false},
      {std::string_view("a\0b", 3), false},
  };
  for (const auto& c : cases) EXPECT_EQ(is_token(c.s), c.want) << c.s;
}

TEST(FieldSyntax, IsValidFieldValueRejectsControlsButHtab) {
  struct tc {
    std::string_view s;
    bool want;
  };
  const tc cases[] = {
      {"", true},
      {"text/html; charset=utf-8", true},
      {"a\tb", true},  // spec 50: HTAB allowed
      {" padded ", true},
      {"\x80\xff obs-text", true},
      {"caf\xc3\xa9", true},
      {std::string_view("a\0b", 3), false},  // spec 50: NUL
      {"a\rb", false},                       // spec 50: CR
      {"a\nb", false},                       // spec 50: LF
      {"\r\nX-Injected: 1", false},
      {"a\x01", false},
      {"\x1f", false},
      {"\x0b", false},
      {"del\x7f", false},
  };
  for (const auto& c : cases) EXPECT_EQ(is_valid_field_value(c.s), c.want) << c.s;
}

// --- spec 24, 26, 27 ------------------------------------------------------------------------

TEST(Upgrade, UpgradeTypeFollowsConnectionAndFirstUpgradeLine) {
  struct tc {
    const char* what;
    fields in;
    std::optional<std::string> want;
  };
  const tc cases[] = {
      {"spec 24: websocket", {{"Connection", "Upgrade"}, {"Upgrade", "websocket"}}, "websocket"},
      {"spec 24: token among others, any case",
       {{"Connection", "keep-alive, upgrade"}, {"Upgrade", "WebSocket"}},
       "WebSocket"},
      {"spec 24: token on a second Connection line",
       {{"Connection", "keep-alive"}, {"connection", "UPGRADE"}, {"Upgrade", "websocket"}},
       "websocket"},
      {"spec 24: first element of the first line",
       {{"Connection", "Upgrade"}, {"Upgrade", " websocket , foo/2"}},
       "websocket"},
      {"RFC 9110 §5.6.1: empty list elements skipped",
       {{"Connection", "Upgrade"}, {"Upgrade", ", websocket"}},
       "websocket"},
      {"spec 26: second Upgrade line h2c, websocket forwarded",
       {{"Connection", "Upgrade"}, {"Upgrade", "websocket"}, {"Upgrade", "h2c"}},
       "websocket"},
      {"spec 26: h2c refused",
       {{"Connection", "Upgrade, HTTP2-Settings"},
        {"Upgrade", "h2c"},
        {"HTTP2-Settings", "AAMAAABkAAQAAP__"}},
       std::nullopt},
      {"spec 26: h2c in any case", {{"Connection", "Upgrade"}, {"Upgrade", "H2C"}}, std::nullopt},
      {"spec 26: first line contains h2c",
       {{"Connection", "Upgrade"}, {"Upgrade", "websocket, h2c"}},
       std::nullopt},
      {"spec 26: h2c first line hides a later websocket line",
       {{"Connection", "Upgrade"}, {"Upgrade", "h2c"}, {"Upgrade", "websocket"}},
       std::nullopt},
      {"spec 24: no upgrade token",
       {{"Connection", "keep-alive"}, {"Upgrade", "websocket"}},
       std::nullopt},
      {"spec 24: Connection token must match whole",
       {{"Connection", "Upgraded"}, {"Upgrade", "websocket"}},
       std::nullopt},
      {"spec 24: no Connection at all", {{"Upgrade", "websocket"}}, std::nullopt},
      {"spec 24: no Upgrade field", {{"Connection", "Upgrade"}}, std::nullopt},
      {"spec 24: blank Upgrade line",
       {{"Connection", "Upgrade"}, {"Upgrade", " \t"}},
       std::nullopt},
      {"spec 24: non-ASCII type is returned for the caller to reject",
       {{"Connection", "Upgrade"}, {"Upgrade", "w\xc3\xa9"}},
       "w\xc3\xa9"},
  };
  for (const auto& c : cases) EXPECT_EQ(upgrade_type(make_headers(c.in)), c.want) << c.what;
}

TEST(Upgrade, IsPrintableAsciiChecksUpgradeTypes) {
  struct tc {
    std::string_view s;
    bool want;
  };
  const tc cases[] = {
      {"websocket", true}, {"foo/2", true},  {"!~", true},
      {"a b", true},  // spaces inside are printable
      {"", false},         {" a", false},    {"a ", false},
      {" ", false},        {"a\tb", false},  {"w\xc3\xa9", false},  // spec 24: not ASCII → 502
      {"a\x7f", false},    {"a\x1f", false}, {std::string_view("a\0", 2), false},
  };
  for (const auto& c : cases) EXPECT_EQ(is_printable_ascii(c.s), c.want) << c.s;
}

TEST(Upgrade, NonAsciiUpgradeTypeFailsThePrintableCheck) {
  // spec 24: the caller answers 502 when the type is not printable ASCII.
  const auto t = upgrade_type(make_headers({{"Connection", "Upgrade"}, {"Upgrade", "w\xc3\xa9"}}));
  ASSERT_TRUE(t.has_value());
  EXPECT_FALSE(is_printable_ascii(*t));
}

// --- issue 14.1: one Transfer-Encoding decision ----------------------------------------------

TEST(ClassifyTransferEncoding, OnlyOneChunkedAloneIsReframable) {
  EXPECT_EQ(classify_transfer_encoding("chunked"), te_kind::chunked);
  EXPECT_EQ(classify_transfer_encoding(" Chunked "), te_kind::chunked);
  EXPECT_EQ(classify_transfer_encoding(", chunked,"), te_kind::chunked);
  EXPECT_EQ(classify_transfer_encoding("gzip"), te_kind::unsupported);
  EXPECT_EQ(classify_transfer_encoding("gzip, chunked"), te_kind::unsupported);
  EXPECT_EQ(classify_transfer_encoding(""), te_kind::unsupported);
  EXPECT_EQ(classify_transfer_encoding("chunked, gzip"), te_kind::malformed);
  EXPECT_EQ(classify_transfer_encoding("chunked, chunked"), te_kind::malformed);
  EXPECT_EQ(classify_transfer_encoding("chunked,chunked"), te_kind::malformed);
  EXPECT_EQ(classify_transfer_encoding("CHUNKED , chunked"), te_kind::malformed);
  EXPECT_EQ(classify_transfer_encoding(", chunked, chunked"), te_kind::malformed);
  EXPECT_EQ(classify_transfer_encoding("gzip, chunked, chunked"), te_kind::malformed);
}

// --- issue 14.2: path normalisation --------------------------------------------------------

std::optional<std::string> normalized(std::string t) {
  if (!normalize_target(t)) return std::nullopt;
  return t;
}

TEST(NormalizeTarget, ResolvesDotSegmentsAndDecodesUnreserved) {
  const std::pair<std::string, std::string> cases[] = {
      {"/", "/"},
      {"/a/b?x=/../y", "/a/b?x=/../y"},  // the query is not a path
      {"/public/../internal/x", "/internal/x"},
      {"/public/%2e%2e/internal/x", "/internal/x"},
      {"/public/%2E%2E/internal/x", "/internal/x"},
      {"/public/.%2e/internal/x", "/internal/x"},
      {"/a/./b/.", "/a/b/"},
      {"/a/b/..", "/a/"},
      {"/..", "/"},
      {"/../../etc/passwd", "/etc/passwd"},
      {"/a//../b", "/a/b"},
      {"/a/..//b", "//b"},
      {"/.well-known/acme", "/.well-known/acme"},
      {"/a/.../b", "/a/.../b"},
      {"/%41%7e%2D%5f%2e", "/A~-_."},
      {"/a%2Fb/%2f", "/a%2Fb/%2f"},  // escaped slashes stay escaped: never a separator
      {"/a%20b%3F", "/a%20b%3F"},    // reserved and other bytes stay as received
      {"/a/%2e%2e?q=%2e", "/?q=%2e"},
      {"*", "*"},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(normalized(in), want) << in;
}

TEST(NormalizeTarget, RejectsBadEscapesAndHiddenDotSegments) {
  for (std::string in :
       {"/p/%zz", "/p/%2", "/p%", "/public/..%2finternal", "/public/..%2Fx",
        "/public/%2e%2e%2finternal", "/x%2f..", "/x%2f.%2fy", "/..%5cx", "/x\\..\\y", "/..\\x"}) {
    EXPECT_EQ(normalized(in), std::nullopt) << in;
  }
  // Not hidden dot segments: dots that are part of a longer name.
  EXPECT_EQ(normalized("/a..%2fb"), "/a..%2fb");
  EXPECT_EQ(normalized("/a\\b"), "/a\\b");
}

// --- issue 14.3: Host values ----------------------------------------------------------------

TEST(IsValidHost, UriHostWithOptionalPort) {
  for (std::string_view ok :
       {"a", "example.com", "Example.COM:8080", "127.0.0.1", "[::1]", "[::1]:443",
        "[2001:db8::1]:80", "a-b_c.example", "host:", "%41.example", "x:65535", "a!$&'()*+,;=b"}) {
    EXPECT_TRUE(is_valid_host(ok)) << ok;
  }
  for (std::string_view bad :
       {"", ":80", "a b", "evil.example/x?y#z", "a@b:c:d", "a:b:c", "[::1", "[::1]x", "[zz]", "[]",
        "x:123456", "x:65536", "x:8o", "a\\b", "a%zz", "a\tb", "ex\x80mple"}) {
    EXPECT_FALSE(is_valid_host(bad)) << bad;
  }
}

// Found by rules_fuzz: inet_pton reads a C string, so a NUL inside the brackets ended the
// literal early and "[::ffff:0.2.3.4\0\0]:80" passed as a valid host.
TEST(IsValidHost, NulInsideAnIpv6LiteralIsInvalid) {
  using namespace std::string_view_literals;
  EXPECT_FALSE(is_valid_host("[::ffff:0.2.3.4\0\0]:80"sv));
  EXPECT_FALSE(is_valid_host("[::1\0evil]"sv));
  EXPECT_FALSE(is_valid_host("a\0b"sv));
  EXPECT_TRUE(is_valid_host("[::ffff:0.2.3.4]:80"sv));
}

// --- absolute-form (RFC 9112 §3.2.2), as the HTTP/1.1 server applies it ----------------------

TEST(SplitAbsoluteForm, GivesOriginFormAndTheAuthority) {
  const std::tuple<std::string, std::string, std::string> cases[] = {
      {"http://example.com/p?q", "example.com", "/p?q"},
      {"HTTPS://[::1]:8443/a/../b", "[::1]:8443", "/a/../b"},  // normalised afterwards
      {"http://h", "h", "/"},
      {"http://h?q=1", "h", "/?q=1"},
      {"http://h:/x", "h:", "/x"},
  };
  for (const auto& [in, host, origin] : cases) {
    std::string t = in;
    auto authority = split_absolute_form(t);
    ASSERT_TRUE(authority) << in;
    EXPECT_EQ(*authority, host) << in;
    EXPECT_EQ(t, origin) << in;
  }
  for (std::string bad : {"ftp://h/x", "http:/h", "http://a b/", "http:///x", "http://a@b/",
                          "http://abs.example\\x/k3", "h/x"}) {
    std::string t = bad;
    EXPECT_FALSE(split_absolute_form(t)) << bad;
    EXPECT_EQ(t, bad) << "left alone";
  }
}

}  // namespace
}  // namespace trafficcop::http
