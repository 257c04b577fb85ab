// SPDX-License-Identifier: MIT
// Request identity parsers: W3C traceparent (https://www.w3.org/TR/trace-context/ §3.2) and
// the request id sanity rule; and the config keys of request_id, trace_context and
// access_log.fields.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "config/config.hpp"
#include "http/trace_context.hpp"

namespace trafficcop::http {
namespace {

constexpr std::string_view trace = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr std::string_view parent = "00f067aa0ba902b7";

std::string tp(std::string_view version, std::string_view t, std::string_view p,
               std::string_view flags, std::string_view tail = "") {
  return std::string(version) + "-" + std::string(t) + "-" + std::string(p) + "-" +
         std::string(flags) + std::string(tail);
}

// parse_traceparent returns views into its argument: each value below outlives its result.
TEST(Traceparent, ParsesVersion00) {
  const std::string v = tp("00", trace, parent, "01");
  auto r = parse_traceparent(v);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->trace_id, trace);
  EXPECT_EQ(r->parent_id, parent);
  EXPECT_EQ(r->flags, 1);
  r = parse_traceparent(tp("00", trace, parent, "00"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->flags, 0);
  r = parse_traceparent(tp("00", trace, parent, "ff"));  // unknown bits parse; callers mask
  ASSERT_TRUE(r);
  EXPECT_EQ(r->flags, 0xff);
}

TEST(Traceparent, RejectsWhatTheSpecCallsInvalid) {
  const std::string zeros32(32, '0'), zeros16(16, '0');
  const std::string invalid[] = {
      "",
      tp("00", trace, parent, "01").substr(0, 54),  // short
      tp("00", trace, parent, "01", "-"),           // 00 has nothing after the flags
      tp("00", trace, parent, "01", "-extra"),
      tp("ff", trace, parent, "01"),  // §3.2.2.1
      tp("0G", trace, parent, "01"),
      tp("0A", trace, parent, "01"),                               // uppercase version
      tp("00", zeros32, parent, "01"),                             // §3.2.2.3
      tp("00", trace, zeros16, "01"),                              // §3.2.2.4
      tp("00", "4BF92F3577B34DA6A3CE929D0E0E4736", parent, "01"),  // HEXDIGLC only
      tp("00", trace, "00F067AA0BA902B7", parent.substr(0, 2)),
      tp("00", trace, parent, "0X"),
      tp("00", trace, parent, "1"),
      tp("00", std::string(trace.substr(1)) + "-", parent, "01"),  // separators misplaced
      "00_" + std::string(trace) + "-" + std::string(parent) + "-01",
      "00-" + std::string(trace) + "_" + std::string(parent) + "-01",
      "00-" + std::string(trace) + "-" + std::string(parent) + "_01",
      " " + tp("00", trace, parent, "01"),
      tp("00", trace, parent, "01") + " ",
      tp("00", std::string(31, 'a') + "g", parent, "01"),
  };
  for (const auto& v : invalid) EXPECT_FALSE(parse_traceparent(v)) << '"' << v << '"';
}

TEST(Traceparent, ReadsLaterVersionsAsSection324Asks) {
  // A higher version: the first 55 characters as in 00, then the end or '-' and more.
  const std::string v01 = tp("01", trace, parent, "01");
  auto r = parse_traceparent(v01);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->trace_id, trace);
  const std::string vcc = tp("cc", trace, parent, "01", "-what-the-future-holds");
  r = parse_traceparent(vcc);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->parent_id, parent);
  EXPECT_EQ(r->flags, 1);
  EXPECT_FALSE(parse_traceparent(tp("cc", trace, parent, "01", "x")));  // not '-' after flags
  EXPECT_FALSE(parse_traceparent(tp("cc", trace, parent, "01").substr(0, 54)));
}

TEST(Traceparent, AppendWritesVersion00ThatParsesBack) {
  std::string out = "x";
  append_traceparent(out, trace, parent, 0x01);
  EXPECT_EQ(out, "x00-" + std::string(trace) + "-" + std::string(parent) + "-01");
  out.clear();
  append_traceparent(out, trace, parent, 0xa2);
  auto r = parse_traceparent(out);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->flags, 0xa2);
}

TEST(RequestId, SaneMeansVisibleAsciiWithoutQuoteOrBackslash) {
  for (std::string_view ok :
       {"a", "abc123", "0f8fad5b-d9cb-469f-a165-70867728950e", "dGVzdA+/x==", "svc:1234/abc",
        "01ARZ3NDEKTSV4RRFFQ69G5FAV", "a,b;c(d)e[f]{g}<h>@i?j=k!#$%&'*+^_`|~"})
    EXPECT_TRUE(is_sane_request_id(ok)) << ok;
  const std::string long_ok(128, 'x'), too_long(129, 'x');
  EXPECT_TRUE(is_sane_request_id(long_ok));
  EXPECT_FALSE(is_sane_request_id(too_long));
  for (std::string_view bad :
       {std::string_view(""), std::string_view("a b"), std::string_view("a\"b"),
        std::string_view("a\\b"), std::string_view("a\tb"), std::string_view("a\x7f"),
        std::string_view("caf\xc3\xa9"), std::string_view("a\0b", 3), std::string_view("a\nb")})
    EXPECT_FALSE(is_sane_request_id(bad)) << bad;
}

TEST(RequestId, NonzeroLowerHex) {
  EXPECT_TRUE(is_nonzero_lower_hex("0001"));
  EXPECT_FALSE(is_nonzero_lower_hex("0000"));
  EXPECT_FALSE(is_nonzero_lower_hex(""));
  EXPECT_FALSE(is_nonzero_lower_hex("000A"));
}

}  // namespace
}  // namespace trafficcop::http

namespace trafficcop::config {
namespace {

constexpr std::string_view minimal = R"(
listeners:
  - address: 127.0.0.1:8080
upstreams:
  - name: demo
    url: http://127.0.0.1:9000
routes:
  - upstream: demo
)";

TEST(ConfigIdentity, Defaults) {
  auto r = load_string(minimal, "t.yaml");
  ASSERT_TRUE(r.cfg);
  EXPECT_EQ(r.cfg->request_id.header, "X-Request-Id");
  EXPECT_TRUE(r.cfg->request_id.trust_incoming);
  EXPECT_TRUE(r.cfg->request_id.upstream);
  EXPECT_TRUE(r.cfg->request_id.response);
  EXPECT_TRUE(r.cfg->trace_context.enabled);
  EXPECT_TRUE(r.cfg->trace_context.sampled);
  EXPECT_TRUE(r.cfg->access_log.fields.empty());
}

TEST(ConfigIdentity, ParsesEveryKey) {
  auto r = load_string(std::string(minimal) + R"(
request_id: {header: X-Correlation-Id, trust_incoming: false, upstream: false, response: false}
trace_context: {enabled: false, sampled: false}
access_log: {format: combined, fields: [trace_id, endpoint, tries, user_agent, protocol]}
)",
                       "t.yaml");
  for (const auto& e : r.errors) ADD_FAILURE() << e;
  ASSERT_TRUE(r.cfg);
  EXPECT_EQ(r.cfg->request_id.header, "X-Correlation-Id");
  EXPECT_FALSE(r.cfg->request_id.trust_incoming);
  EXPECT_FALSE(r.cfg->request_id.upstream);
  EXPECT_FALSE(r.cfg->request_id.response);
  EXPECT_FALSE(r.cfg->trace_context.enabled);
  EXPECT_FALSE(r.cfg->trace_context.sampled);
  EXPECT_EQ(r.cfg->access_log.fields,
            (std::vector<log_field>{log_field::trace_id, log_field::endpoint, log_field::tries,
                                    log_field::user_agent, log_field::protocol}));
}

TEST(ConfigIdentity, ErrorsArePathQualified) {
  auto r = load_string(std::string(minimal) + R"(
request_id: {header: "X Request", trust: true}
trace_context: {enabled: maybe}
access_log: {fields: [time, agent, time, {a: 1}]}
)",
                       "t.yaml");
  EXPECT_EQ(r.errors,
            (std::vector<std::string>{
                "request_id.header: \"X Request\" is not a valid header name (RFC 9110 token)",
                "request_id.trust: unknown key",
                "trace_context.enabled: expected true or false, got \"maybe\"",
                "access_log.fields[1]: unknown access log field \"agent\" (one of time, id, "
                "trace_id, span_id, remote, host, method, target, proto, protocol, status, "
                "bytes_in, bytes_out, duration_ms, upstream, endpoint, upstream_status, "
                "upstream_ms, tries, error, user_agent, referer, tls_version, tls_client, "
                "rate_limit)",
                "access_log.fields[2]: field \"time\" is listed twice",
                "access_log.fields[3]: expected a string, got a map"}));
  r = load_string(std::string(minimal) + "access_log: {fields: []}\n", "t.yaml");
  EXPECT_EQ(r.errors,
            (std::vector<std::string>{"access_log.fields: at least one field is required"}));
}

}  // namespace
}  // namespace trafficcop::config
