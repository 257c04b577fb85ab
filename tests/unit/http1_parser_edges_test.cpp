// SPDX-License-Identifier: MIT
// The edges of the hand-written HTTP/1.1 parsers (src/http1/parser.cpp): each rejection with
// its reason, each limit at and over its bound, chunk extensions, trailers, obs-fold, bare CR,
// NUL, chunk sizes that overflow, Content-Length lists. Every input is fed at every split point
// (http1_test_driver.hpp), so each case also checks that the answer does not depend on how
// the bytes arrive.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "http1_test_driver.hpp"

namespace trafficcop::http1 {
namespace {

using namespace test;  // NOLINT: the driver

const std::string host = "Host: a\r\n";
const std::string chunked_head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

struct reason_case {
  const char* name;
  std::string input;
  error_code want;
  bool response = false;
  parser_limits limits = {};
};

void PrintTo(const reason_case& c, std::ostream* os) { *os << c.name; }

class ReasonTest : public testing::TestWithParam<reason_case> {};

TEST_P(ReasonTest, RefusedForThatReason) {
  const auto& c = GetParam();
  run r;
  if (c.response) {
    auto limits = c.limits;
    r = parse_every_split(c.input, factory<response_parser>([limits](std::size_t) {
                            return std::make_unique<response_parser>(false, limits);
                          }),
                          1, /*eof=*/true);
  } else {
    r = parse_every_split(c.input, requests(c.limits));
  }
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_TRUE(r.messages[0].failed) << "accepted";
  EXPECT_EQ(r.messages[0].ec, c.want) << r.messages[0].error;
}

error_code pe(parse_error e) { return make_error_code(e); }
error_code tc(errc e) { return make_error_code(e); }

INSTANTIATE_TEST_SUITE_P(
    Http1, ReasonTest,
    testing::Values(
        // The request line (RFC 9112 §3).
        reason_case{"EmptyLineBeforeRequest", "\r\nGET / HTTP/1.1\r\n" + host + "\r\n",
                    pe(parse_error::bad_method)},
        reason_case{"TlsClientHello", std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc", 9),
                    pe(parse_error::bad_method)},
        reason_case{"TwoSpacesAfterMethod", "GET  / HTTP/1.1\r\n" + host + "\r\n",
                    pe(parse_error::bad_target)},
        reason_case{"NulInTarget", std::string("GET /a\0b HTTP/1.1\r\n", 19) + host + "\r\n",
                    pe(parse_error::bad_target)},
        reason_case{"TabInTarget", "GET /a\tb HTTP/1.1\r\n" + host + "\r\n",
                    pe(parse_error::bad_target)},
        reason_case{"LowerCaseVersion", "GET / http/1.1\r\n" + host + "\r\n",
                    pe(parse_error::bad_version)},
        reason_case{"Version12", "GET / HTTP/1.2\r\n" + host + "\r\n",
                    pe(parse_error::bad_version)},
        reason_case{"Version09", "GET / HTTP/0.9\r\n" + host + "\r\n",
                    pe(parse_error::bad_version)},
        reason_case{"BareCrAfterVersion", "GET / HTTP/1.1\rHost: a\r\n\r\n",
                    pe(parse_error::bad_version)},
        reason_case{"BareLfAfterVersion", "GET / HTTP/1.1\nHost: a\r\n\r\n",
                    pe(parse_error::bad_version)},
        reason_case{"SpaceAfterVersion", "GET / HTTP/1.1 \r\n" + host + "\r\n",
                    pe(parse_error::bad_version)},
        // Field lines (RFC 9112 §5, RFC 9110 §5.5).
        reason_case{"FieldLineStartsWithSpace", "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
                    pe(parse_error::bad_field)},
        reason_case{"NoColon", "GET / HTTP/1.1\r\n" + host + "X-A\r\n\r\n",
                    pe(parse_error::bad_field)},
        reason_case{"NonTokenName", "GET / HTTP/1.1\r\n" + host + "X(A): 1\r\n\r\n",
                    pe(parse_error::bad_field)},
        reason_case{"NulInValue", "GET / HTTP/1.1\r\n" + host + std::string("X: a\0\r\n\r\n", 9),
                    pe(parse_error::bad_value)},
        reason_case{"DelInValue", "GET / HTTP/1.1\r\n" + host + "X: a\x7f\r\n\r\n",
                    pe(parse_error::bad_value)},
        reason_case{"BareLfInHead", "GET / HTTP/1.1\r\n" + host + "X: a\n\r\n",
                    pe(parse_error::bad_value)},
        reason_case{"BareCrInValue", "GET / HTTP/1.1\r\n" + host + "X: a\rb\r\n\r\n",
                    pe(parse_error::bad_line_ending)},
        reason_case{"BareCrAsBlankLine", "GET / HTTP/1.1\r\n" + host + "\rX",
                    pe(parse_error::bad_line_ending)},
        reason_case{"ObsFold", "GET / HTTP/1.1\r\n" + host + "X: a\r\n b\r\n\r\n",
                    tc(errc::obs_fold)},
        reason_case{"BadConnection", "GET / HTTP/1.1\r\n" + host + "Connection: close; x\r\n\r\n",
                    pe(parse_error::bad_connection)},
        reason_case{"ConnectionTokensWithoutComma",
                    "GET / HTTP/1.1\r\n" + host + "Connection: close keep-alive\r\n\r\n",
                    pe(parse_error::bad_connection)},
        // Content-Length (RFC 9110 §8.6, RFC 9112 §6.3).
        reason_case{"EmptyContentLength", "POST / HTTP/1.1\r\n" + host + "Content-Length:\r\n\r\n",
                    pe(parse_error::bad_content_length)},
        reason_case{"EmptyListElement",
                    "POST / HTTP/1.1\r\n" + host + "Content-Length: 1,,1\r\n\r\nx",
                    pe(parse_error::bad_content_length)},
        reason_case{"TrailingComma", "POST / HTTP/1.1\r\n" + host + "Content-Length: 1,\r\n\r\nx",
                    pe(parse_error::bad_content_length)},
        reason_case{"SpaceInsideNumber",
                    "POST / HTTP/1.1\r\n" + host + "Content-Length: 1 1\r\n\r\nx",
                    pe(parse_error::bad_content_length)},
        reason_case{"TwentyDigits",
                    "POST / HTTP/1.1\r\n" + host + "Content-Length: 00000000000000000001\r\n\r\nx",
                    pe(parse_error::bad_content_length)},
        reason_case{"DifferentValuesInList",
                    "POST / HTTP/1.1\r\n" + host + "Content-Length: 1, 2\r\n\r\nxy",
                    pe(parse_error::multiple_content_length)},
        reason_case{"ContentLengthAfterChunked",
                    "POST / HTTP/1.1\r\n" + host +
                        "Transfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n0\r\n\r\n",
                    pe(parse_error::bad_content_length)},
        reason_case{"TransferEncodingAfterContentLength",
                    "POST / HTTP/1.1\r\n" + host +
                        "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                    pe(parse_error::bad_transfer_encoding)},
        // Chunks (RFC 9112 §7.1).
        reason_case{"NoChunkSize", chunked_head + ";a\r\n", pe(parse_error::bad_chunk)},
        reason_case{"ChunkSizeOverflows", chunked_head + "10000000000000000\r\n",
                    pe(parse_error::bad_chunk)},
        reason_case{"ChunkDataWithoutCrlf", chunked_head + "1\r\nxy\r\n0\r\n\r\n",
                    pe(parse_error::bad_chunk)},
        reason_case{"BareLfAfterChunkSize", chunked_head + "1\nx\r\n0\r\n\r\n",
                    pe(parse_error::bad_chunk_extension)},
        reason_case{"BareCrAfterChunkSize", chunked_head + "1\rx\r\n0\r\n\r\n",
                    pe(parse_error::bad_line_ending)},
        reason_case{"SpaceAfterChunkSize", chunked_head + "1 \r\nx\r\n0\r\n\r\n",
                    pe(parse_error::bad_chunk_extension)},
        reason_case{"EmptyExtension", chunked_head + "1;\r\nx\r\n0\r\n\r\n",
                    pe(parse_error::bad_chunk_extension)},
        reason_case{"SpaceAfterExtensionName", chunked_head + "1;a \r\nx\r\n0\r\n\r\n",
                    pe(parse_error::bad_chunk_extension)},
        reason_case{"ExtensionWithoutValue", chunked_head + "1;a=\r\nx\r\n0\r\n\r\n",
                    pe(parse_error::bad_chunk_extension)},
        reason_case{"ExtensionWithoutName", chunked_head + "1;=b\r\nx\r\n0\r\n\r\n",
                    pe(parse_error::bad_chunk_extension)},
        reason_case{"UnclosedQuote", chunked_head + "1;a=\"b\r\nx\r\n0\r\n\r\n",
                    pe(parse_error::bad_quoted_string)},
        reason_case{"ControlByteInQuote",
                    chunked_head + std::string("1;a=\"\x01\"\r\nx\r\n0\r\n\r\n", 15),
                    pe(parse_error::bad_quoted_string)},
        reason_case{"NulInQuote", chunked_head + std::string("1;a=\"\0\"\r\nx\r\n0\r\n\r\n", 15),
                    pe(parse_error::bad_quoted_string)},
        // Trailers (RFC 9112 §7.1.2, RFC 9110 §6.5.1): never framing.
        reason_case{"ContentLengthTrailer", chunked_head + "0\r\nContent-Length: 1\r\n\r\n",
                    pe(parse_error::bad_content_length)},
        reason_case{"TransferEncodingTrailer",
                    chunked_head + "0\r\nTransfer-Encoding: chunked\r\n\r\n",
                    pe(parse_error::bad_transfer_encoding)},
        reason_case{"NulInTrailer", chunked_head + std::string("0\r\nX: \0\r\n\r\n", 11),
                    pe(parse_error::bad_value)},
        reason_case{"UnderscoreTrailerRejected",
                    chunked_head + "0\r\nX_A: 1\r\n\r\n",
                    tc(errc::bad_request),
                    false,
                    {.underscores = underscore_fields::reject}},
        reason_case{"TrailersCountAgainstMaxHeaders",
                    chunked_head + "0\r\nX: 1\r\nY: 2\r\n\r\n",
                    tc(errc::header_too_large),
                    false,
                    {.max_headers = 3}},
        // Responses (RFC 9112 §4).
        reason_case{"StatusWithoutSpace", "HTTP/1.1 200\r\n\r\n", pe(parse_error::bad_status),
                    true},
        reason_case{"TwoDigitStatus", "HTTP/1.1 20 OK\r\n\r\n", pe(parse_error::bad_status), true},
        reason_case{"ControlByteInReason", "HTTP/1.1 200 O\x01K\r\n\r\n",
                    pe(parse_error::bad_reason), true},
        reason_case{"BareCrInReason", "HTTP/1.1 200 O\rK\r\n\r\n", pe(parse_error::bad_line_ending),
                    true},
        reason_case{"Http2StatusLine", "HTTP/2.0 200 OK\r\n\r\n", pe(parse_error::bad_version),
                    true},
        reason_case{"TruncatedContentLengthBody", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nab",
                    pe(parse_error::partial_message), true},
        reason_case{"TruncatedChunkedBody",
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
                    pe(parse_error::partial_message), true},
        reason_case{"FoldedValueOver4KiB",
                    "HTTP/1.1 200 OK\r\nX: " + std::string(3000, 'a') + "\r\n " +
                        std::string(3000, 'b') + "\r\n\r\n",
                    tc(errc::header_too_large), true}),
    [](const testing::TestParamInfo<reason_case>& info) { return std::string(info.param.name); });

// --- limits at and over their bound ---------------------------------------------------------

TEST(Http1Limits, ChunkSizeLineAtAndOverMaxHeaderBytes) {
  // The line with its CRLF: 64 bytes fit a limit of 64, 65 do not (431).
  const std::string at = "1;" + std::string(60, 'e') + "\r\n";
  ASSERT_EQ(at.size(), 64u);
  auto r =
      parse_every_split(chunked_head + at + "x\r\n0\r\n\r\n", requests({.max_header_bytes = 64}));
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].error, "");
  EXPECT_EQ(r.messages[0].body, "x");
  const std::string over = "1;" + std::string(61, 'e') + "\r\n";
  r = parse_every_split(chunked_head + over + "x\r\n0\r\n\r\n", requests({.max_header_bytes = 64}));
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].error_status, 431);
}

TEST(Http1Limits, TrailerSectionAtAndOverMaxHeaderBytes) {
  // "0\r\n" + trailer lines + "\r\n": 64 bytes fit a limit of 64 (the head is 52 bytes).
  const std::string field = "X: " + std::string(64 - 3 - 2 - 5, 't') + "\r\n";
  const std::string section = "0\r\n" + field + "\r\n";
  ASSERT_EQ(section.size(), 64u);
  auto r = parse_every_split(chunked_head + section, requests({.max_header_bytes = 64}));
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].error, "");
  EXPECT_EQ(r.messages[0].trailer, (fields{{"X", std::string(54, 't')}}));
  const std::string over = "0\r\nX: t" + field.substr(3) + "\r\n";
  ASSERT_EQ(over.size(), 65u);
  r = parse_every_split(chunked_head + over, requests({.max_header_bytes = 64}));
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].error_status, 431);
}

TEST(Http1Limits, UriLimitAppliesBeforeTheLineEnds) {
  // 414 as soon as the target is longer than allowed, not only at the end of the head.
  request_parser p({.max_uri_bytes = 8});
  error_code ec;
  EXPECT_EQ(p.put_head("GET /012345678", ec), 0u);
  EXPECT_EQ(ec, errc::uri_too_long);
}

TEST(Http1Limits, RequestLineOverTheHeaderLimitIs414) {
  auto r = parse_every_split("GET /" + std::string(100, 'a'),
                             requests({.max_header_bytes = 64, .max_uri_bytes = 1000}));
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].error_status, 414);
}

TEST(Http1Limits, ChunkSizesCountAgainstTheBodyLimit) {
  // A huge declared chunk is refused at its size line, before any of its bytes.
  auto r = parse_every_split(chunked_head + "ffffffffffffffff\r\nabc",
                             requests({.max_body_bytes = 1000}));
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].error_status, 413);
  EXPECT_EQ(r.messages[0].body, "");
}

// --- accepted edges -------------------------------------------------------------------------

TEST(Http1Edges, LargestChunkSizeIsReadNotOverflowed) {
  auto r = parse_every_split(chunked_head + "0000ffffffffffffffff\r\nabc", requests());
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_FALSE(r.messages[0].failed) << r.messages[0].error;
  EXPECT_EQ(r.messages[0].body, "abc");
  EXPECT_FALSE(r.messages[0].done);
}

TEST(Http1Edges, ChunkExtensions) {
  const std::string body =
      "1;a\r\nA\r\n"
      "1;a=b\r\nB\r\n"
      "1 ;\ta = b ; c\r\nC\r\n"
      "1;a=\"q \\\"x\\\\ \x80\"\r\nD\r\n"
      "1;a=\"\";b=\"x\"\r\nE\r\n"
      "0;last=\"yes\"\r\n\r\n";
  auto r = parse_every_split(chunked_head + body, requests());
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].error, "");
  EXPECT_EQ(r.messages[0].body, "ABCDE");
  EXPECT_TRUE(r.messages[0].done);
}

TEST(Http1Edges, ContentLengthLists) {
  for (std::string v : {"5, 5", "5,5", "5 ,\t5", "005", "5", "\t5 "}) {
    SCOPED_TRACE(v);
    auto r = parse_every_split(
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + v + "\r\nContent-Length: 5\r\n\r\nhello",
        requests());
    ASSERT_EQ(r.messages.size(), 1u);
    EXPECT_EQ(r.messages[0].error, "");
    EXPECT_EQ(r.messages[0].length, 5u);
    EXPECT_EQ(r.messages[0].body, "hello");
  }
  // Callers keep lengths in int64: INT64_MAX is the largest; one more (19 digits still) is a
  // 400, not a negative length (which the server read as "unknown" and re-framed chunked).
  auto r = parse_every_split(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\nx", requests());
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_FALSE(r.messages[0].failed);
  EXPECT_EQ(r.messages[0].length, 9223372036854775807u);
  for (std::string v : {"9223372036854775808", "9999999999999999999"}) {
    SCOPED_TRACE(v);
    auto big = parse_every_split("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + v + "\r\n\r\nx",
                                 requests());
    ASSERT_EQ(big.messages.size(), 1u);
    EXPECT_TRUE(big.messages[0].failed);
    EXPECT_EQ(big.messages[0].error_status, 400);
  }
}

TEST(Http1Edges, StatusOutsideOneHundredToFiveNinetyNineIsRefused) {
  // RFC 9110 §15: a 099 was framed as a body by the parser and as an interim by its caller.
  for (std::string s : {"000", "099", "600", "999"}) {
    SCOPED_TRACE(s);
    auto r = parse_every_split("HTTP/1.1 " + s + " X\r\nContent-Length: 0\r\n\r\n", responses());
    ASSERT_EQ(r.messages.size(), 1u);
    EXPECT_TRUE(r.messages[0].failed);
  }
  for (std::string s : {"100", "599"}) {
    SCOPED_TRACE(s);
    auto r = parse_every_split("HTTP/1.1 " + s + " X\r\nContent-Length: 0\r\n\r\n", responses());
    ASSERT_GE(r.messages.size(), 1u);
    EXPECT_FALSE(r.messages[0].failed);
    EXPECT_EQ(r.messages[0].status, std::stoi(s));
  }
}

TEST(Http1Edges, FragmentInTargetIsRefused) {
  // RFC 9112 §3.2: no fragment in a request-target; routing must not see one the upstream drops.
  for (std::string t : {"/a#b", "http://a/b#", "/#"}) {
    SCOPED_TRACE(t);
    auto r = parse_every_split("GET " + t + " HTTP/1.1\r\nHost: a\r\n\r\n", requests());
    ASSERT_EQ(r.messages.size(), 1u);
    EXPECT_TRUE(r.messages[0].failed);
    EXPECT_EQ(r.messages[0].error_status, 400);
  }
}

TEST(Http1Edges, TrailersWithObsFoldAreUnfolded) {
  // RFC 9112 §5.2 lets a recipient replace obs-fold with SP; only request heads are refused.
  const std::string body = "0\r\nX-A: one\r\n two\r\n\tthree\r\nX-B: 1\r\n\r\n";
  auto r = parse_every_split(chunked_head + body, requests());
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].error, "");
  EXPECT_EQ(r.messages[0].trailer, (fields{{"X-A", "one two three"}, {"X-B", "1"}}));
}

TEST(Http1Edges, ResponseObsFoldIsUnfolded) {
  const std::string in =
      "HTTP/1.1 200 OK\r\nX-A: a  \r\n  b\r\n \r\nX-Empty:\r\n c\r\nContent-Length: 0\r\n\r\n";
  auto r = parse_every_split(in, responses());
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].error, "");
  EXPECT_EQ(r.messages[0].header,
            (fields{{"X-A", "a b"}, {"X-Empty", "c"}, {"Content-Length", "0"}}));
}

TEST(Http1Edges, EmptyReasonAndObsText) {
  auto r = parse_every_split("HTTP/1.1 200 \r\nX: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n",
                             responses());
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].error, "");
  EXPECT_EQ(r.messages[0].reason, "");
  EXPECT_EQ(r.messages[0].header, (fields{{"X", "caf\xc3\xa9"}, {"Content-Length", "0"}}));
}

TEST(Http1Edges, KeepAlive) {
  struct kcase {
    std::string in;
    bool keep;
  };
  for (const auto& c : std::vector<kcase>{
           {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
           {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
           {"GET / HTTP/1.1\r\nHost: a\r\nConnection: , Upgrade, CLOSE\r\n\r\n", false},
           {"GET / HTTP/1.0\r\n\r\n", false},
           {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
           // RFC 9112 §9.3: close wins over keep-alive, in 1.0 too.
           {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false},
           {"GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n", false},
           // Connection in the trailers is read as Beast read it.
           {chunked_head + "0\r\nConnection: close\r\n\r\n", false}}) {
    SCOPED_TRACE(c.in);
    auto r = parse_every_split(c.in, requests());
    ASSERT_EQ(r.messages.size(), 1u);
    EXPECT_EQ(r.messages[0].error, "");
    EXPECT_EQ(r.messages[0].keep_alive, c.keep);
  }
  auto r = parse_every_split("HTTP/1.1 200 OK\r\n\r\nbody", responses(), 1, /*eof=*/true);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_TRUE(r.messages[0].done);
  EXPECT_FALSE(r.messages[0].keep_alive);  // close-delimited
  // RFC 9112 §6.1: a chunked HTTP/1.0 response has faulty framing: never pooled.
  auto c = parse_every_split(
      "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      responses());
  ASSERT_EQ(c.messages.size(), 1u);
  EXPECT_TRUE(c.messages[0].done);
  EXPECT_FALSE(c.messages[0].keep_alive);
  auto k = parse_every_split(
      "HTTP/1.0 200 OK\r\nConnection: keep-alive, close\r\n"
      "Content-Length: 0\r\n\r\n",
      responses());
  ASSERT_EQ(k.messages.size(), 1u);
  EXPECT_FALSE(k.messages[0].keep_alive);
}

TEST(Http1Edges, HeadBytesDroppedByTheCallerAreAnError) {
  request_parser p;
  error_code ec;
  EXPECT_EQ(p.put_head("GET / HTTP/1.1\r\nHo", ec), 0u);
  EXPECT_FALSE(ec);
  p.put_head("GET", ec);
  EXPECT_EQ(ec, parse_error::stale_input);
}

TEST(Http1Edges, ByteAtATimeHeadIsScannedOnce) {
  // The scanner keeps its place: feeding 16 KiB one byte at a time must not rescan the head
  // (16 K calls over up to 16 KiB each would be 128 M byte visits; this would time out).
  const std::string in = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(16000, 'v') + "\r\n\r\n";
  for (int round = 0; round < 20; ++round) {
    request_parser p({.max_header_bytes = 32 * 1024});
    error_code ec;
    std::size_t n = 0;
    for (std::size_t k = 1; k <= in.size() && !p.is_header_done(); ++k)
      n = p.put_head(std::string_view(in).substr(0, k), ec);
    ASSERT_FALSE(ec);
    ASSERT_EQ(n, in.size());
  }
}

}  // namespace
}  // namespace trafficcop::http1
