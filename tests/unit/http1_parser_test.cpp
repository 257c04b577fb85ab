// SPDX-License-Identifier: MIT
// Byte-split tests of the sans-I/O HTTP/1.1 parsers: every way of feeding input, same events.
#include "http1_test_driver.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace trafficcop::http1 {
namespace {

using namespace test;  // NOLINT: the driver

// --- requests -------------------------------------------------------------------------------

TEST(RequestParser, SimpleGet) {
  const std::string in =
      "GET /a/b%2Fc?x=1&y=2 HTTP/1.1\r\n"
      "Host: example.com\r\n"
      "User-Agent: curl/8.0\r\n"
      "Accept: */*\r\n"
      "\r\n";
  auto r = parse_every_split(in, requests());
  ASSERT_EQ(r.messages.size(), 1u);
  const auto& m = r.messages[0];
  EXPECT_EQ(m.error, "");
  EXPECT_EQ(m.method, "GET");
  EXPECT_EQ(m.target, "/a/b%2Fc?x=1&y=2");
  EXPECT_EQ(m.version, 11);
  EXPECT_EQ(m.header,
            (fields{{"Host", "example.com"}, {"User-Agent", "curl/8.0"}, {"Accept", "*/*"}}));
  EXPECT_TRUE(m.done);
  EXPECT_EQ(m.body, "");
  EXPECT_EQ(m.length, std::nullopt);
  EXPECT_EQ(r.consumed, in.size());
}

TEST(RequestParser, Http10WithoutHostIsAccepted) {
  const std::string in = "GET / HTTP/1.0\r\nAccept: */*\r\n\r\n";
  auto r = parse_every_split(in, requests());
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].error, "");
  EXPECT_EQ(r.messages[0].version, 10);
  EXPECT_TRUE(r.messages[0].done);
}

TEST(RequestParser, PostWithContentLength) {
  const std::string in =
      "POST /form HTTP/1.1\r\n"
      "Host: a\r\n"
      "Content-Type: application/x-www-form-urlencoded\r\n"
      "Content-Length: 23\r\n"
      "\r\n"
      "name=trafficcop&x=1%202";
  auto r = parse_every_split(in, requests());
  ASSERT_EQ(r.messages.size(), 1u);
  const auto& m = r.messages[0];
  EXPECT_EQ(m.error, "");
  EXPECT_EQ(m.method, "POST");
  EXPECT_EQ(m.length, 23u);
  EXPECT_EQ(m.body, "name=trafficcop&x=1%202");
  EXPECT_TRUE(m.done);
  EXPECT_EQ(r.consumed, in.size());
}

TEST(RequestParser, ChunkedWithExtensionsAndTrailers) {
  const std::string in =
      "POST /upload HTTP/1.1\r\n"
      "Host: a\r\n"
      "Transfer-Encoding: chunked\r\n"
      "Trailer: X-Checksum\r\n"
      "\r\n"
      "5;name=value\r\n"
      "hello\r\n"
      "6;a;b=\"quoted str\"\r\n"
      " world\r\n"
      "A\r\n"
      "0123456789\r\n"
      "0;last\r\n"
      "X-Checksum: abc123\r\n"
      "X-Other: 1\r\n"
      "\r\n";
  auto r = parse_every_split(in, requests());
  ASSERT_EQ(r.messages.size(), 1u);
  const auto& m = r.messages[0];
  EXPECT_EQ(m.error, "");
  EXPECT_EQ(m.length, std::nullopt);
  EXPECT_EQ(m.body, "hello world0123456789");
  EXPECT_EQ(m.trailer, (fields{{"X-Checksum", "abc123"}, {"X-Other", "1"}}));
  EXPECT_EQ(m.header,
            (fields{{"Host", "a"}, {"Transfer-Encoding", "chunked"}, {"Trailer", "X-Checksum"}}));
  EXPECT_TRUE(m.done);
  EXPECT_EQ(r.consumed, in.size());
}

TEST(RequestParser, EmptyChunkedBodyWithTrailer) {
  // A body that starts with the last chunk: Beast resumes it only with 5 bytes or more.
  const std::string in =
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n\r\n";
  auto r = parse_every_split(in, requests());
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].error, "");
  EXPECT_EQ(r.messages[0].body, "");
  EXPECT_EQ(r.messages[0].trailer, (fields{{"X-T", "1"}}));
  EXPECT_TRUE(r.messages[0].done);
  EXPECT_EQ(r.consumed, in.size());
}

TEST(RequestParser, PipelinedRequestsParseFromTheRemainder) {
  const std::string first =
      "POST /one HTTP/1.1\r\n"
      "Host: a\r\n"
      "Content-Length: 3\r\n"
      "\r\n"
      "abc";
  const std::string second =
      "GET /two HTTP/1.1\r\n"
      "Host: a\r\n"
      "\r\n";
  auto r = parse_every_split(first + second, requests(), 2);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].error, "");
  EXPECT_EQ(r.messages[0].target, "/one");
  EXPECT_EQ(r.messages[0].body, "abc");
  EXPECT_EQ(r.messages[0].consumed, first.size());
  EXPECT_EQ(r.messages[1].error, "");
  EXPECT_EQ(r.messages[1].method, "GET");
  EXPECT_EQ(r.messages[1].target, "/two");
  EXPECT_TRUE(r.messages[1].done);
  EXPECT_EQ(r.consumed, first.size() + second.size());
}

TEST(RequestParser, PipelinedAfterChunkedBody) {
  const std::string first =
      "POST /one HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
  const std::string second = "GET /two HTTP/1.1\r\nHost: a\r\n\r\n";
  auto r = parse_every_split(first + second, requests(), 2);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].body, "abc");
  EXPECT_EQ(r.messages[0].consumed, first.size());
  EXPECT_EQ(r.messages[1].target, "/two");
  EXPECT_EQ(r.consumed, first.size() + second.size());
}

TEST(RequestParser, IdenticalDuplicateContentLengthIsAccepted) {
  const std::string in =
      "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nbody";
  auto r = parse_every_split(in, requests());
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].error, "");
  EXPECT_EQ(r.messages[0].length, 4u);
  EXPECT_EQ(r.messages[0].body, "body");
}

TEST(RequestParser, TransferEncodingWithWhitespaceAndCase) {
  const std::string in =
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\t  CHUNKED \r\n\r\n1\r\nx\r\n0\r\n\r\n";
  auto r = parse_every_split(in, requests());
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].error, "");
  EXPECT_EQ(r.messages[0].body, "x");
}

TEST(RequestParser, IncompleteInputNeitherConsumesNorFails) {
  const std::string in = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n12345";
  for (std::size_t k = 0; k < in.find("\r\n\r\n") + 4; ++k) {
    request_parser p;
    error_code ec;
    EXPECT_EQ(p.put_head(std::string_view(in).substr(0, k), ec), 0u) << k;
    EXPECT_FALSE(ec) << k << ": " << ec.message();
    EXPECT_FALSE(p.is_header_done()) << k;
  }
  auto r = parse_every_split(in, requests());
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_TRUE(r.messages[0].head_done);
  EXPECT_FALSE(r.messages[0].done);
  EXPECT_EQ(r.messages[0].body, "12345");
  EXPECT_EQ(r.messages[0].error, "");
}

TEST(RequestParser, ExpectContinue) {
  request_parser p;
  error_code ec;
  const std::string in =
      "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n";
  EXPECT_EQ(p.put_head(in, ec), in.size());
  EXPECT_FALSE(ec);
  EXPECT_TRUE(p.expects_continue());
}

TEST(RequestParser, TruncatedBodyAtEofIsAnError) {
  request_parser p;
  error_code ec;
  const std::string head = "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n";
  ASSERT_EQ(p.put_head(head + "ab", ec), head.size());
  char out[16];
  auto step = p.put_body("ab", asio::buffer(out), ec);
  EXPECT_EQ(step.written, 2u);
  p.put_eof(ec);
  EXPECT_TRUE(ec);
  request_parser empty;
  empty.put_eof(ec);
  EXPECT_TRUE(ec);
}

TEST(RequestParser, PutBodyOnFinishedParserIsANoOp) {
  // The transport and server call put_body once more after the end; that must stay harmless.
  request_parser p;
  error_code ec;
  const std::string in = "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next";
  ASSERT_EQ(p.put_head(in, ec), in.size() - 9);
  ASSERT_TRUE(p.is_done());
  char out[16];
  auto step = p.put_body("GET /next", asio::buffer(out), ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(step.consumed, 0u);
  EXPECT_EQ(step.written, 0u);
}

// A head of 51 bytes, a 17-byte target and 2 fields: the limit tests' yardstick.
const std::string limit_head = "GET /0123456789abcdef HTTP/1.1\r\nHost: a\r\nX-B: 1\r\n\r\n";

TEST(RequestParser, LimitsAreInclusive) {
  // Exactly at each limit is accepted; one over is refused (see RejectionTest).
  const std::string& head = limit_head;
  ASSERT_EQ(head.size(), 51u);
  auto r = parse_every_split(
      head, requests({.max_header_bytes = head.size(), .max_headers = 2, .max_uri_bytes = 17}));
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].error, "");
  EXPECT_TRUE(r.messages[0].done);

  const std::string body = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789";
  r = parse_every_split(body, requests({.max_body_bytes = 10}));
  EXPECT_EQ(r.messages[0].error, "");
  EXPECT_EQ(r.messages[0].body, "0123456789");

  const std::string chunked =
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n";
  r = parse_every_split(chunked, requests({.max_body_bytes = 10}));
  EXPECT_EQ(r.messages[0].error, "");
  EXPECT_EQ(r.messages[0].body, "0123456789");
}

// --- request rejections ---------------------------------------------------------------------

struct reject_case {
  const char* name;
  std::string input;
  int status;
  parser_limits limits = {};
};

void PrintTo(const reject_case& c, std::ostream* os) { *os << c.name; }

class RejectionTest : public testing::TestWithParam<reject_case> {};

TEST_P(RejectionTest, AnswersTheExpectedStatus) {
  const auto& c = GetParam();
  auto r = parse_every_split(c.input, requests(c.limits));
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_TRUE(r.messages[0].failed) << "accepted";
  EXPECT_EQ(r.messages[0].error_status, c.status) << r.messages[0].error;
}

const std::string host = "Host: a\r\n";

INSTANTIATE_TEST_SUITE_P(
    RequestParser, RejectionTest,
    testing::Values(
        // spec 60: ambiguous framing, either order.
        reject_case{"ContentLengthThenChunked",
                    "POST / HTTP/1.1\r\n" + host +
                        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                    400},
        reject_case{"ChunkedThenContentLength",
                    "POST / HTTP/1.1\r\n" + host +
                        "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
                    400},
        // spec 51
        reject_case{
            "ConflictingContentLength",
            "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            400},
        reject_case{"ConflictingContentLengthList",
                    "POST / HTTP/1.1\r\n" + host + "Content-Length: 5, 6\r\n\r\nhello!", 400},
        reject_case{"NegativeContentLength",
                    "POST / HTTP/1.1\r\n" + host + "Content-Length: -1\r\n\r\n", 400},
        reject_case{"NonNumericContentLength",
                    "POST / HTTP/1.1\r\n" + host + "Content-Length: 0x10\r\n\r\n", 400},
        reject_case{"PlusSignContentLength",
                    "POST / HTTP/1.1\r\n" + host + "Content-Length: +5\r\n\r\nhello", 400},
        reject_case{
            "OverflowingContentLength",
            "POST / HTTP/1.1\r\n" + host + "Content-Length: 99999999999999999999999\r\n\r\n", 400},
        // spec 53, 60
        reject_case{"TransferEncodingGzip",
                    "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip\r\n\r\n", 501},
        reject_case{"TransferEncodingGzipChunked",
                    "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501},
        reject_case{"TransferEncodingLookalike",
                    "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: xchunked\r\n\r\n", 501},
        reject_case{"ChunkedNotLast",
                    "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400},
        reject_case{"ChunkedTwice",
                    "POST / HTTP/1.1\r\n" + host +
                        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                    400},
        // Issue 14.1: chunked applied twice in one line, whatever the spelling.
        reject_case{"ChunkedTwiceInOneLine",
                    "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, chunked\r\n\r\n",
                    400},
        reject_case{"ChunkedTwiceNoSpace",
                    "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked,chunked\r\n\r\n",
                    400},
        reject_case{"ChunkedTwiceCaseAndSpace",
                    "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: CHUNKED , chunked\r\n\r\n",
                    400},
        reject_case{"ChunkedTwiceAfterEmptyElement",
                    "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: , chunked, chunked\r\n\r\n",
                    400},
        reject_case{"UnderscoreFieldRejected",
                    "GET / HTTP/1.1\r\n" + host + "X_A: 1\r\n\r\n",
                    400,
                    {.underscores = underscore_fields::reject}},
        // spec 50, 60
        reject_case{"ObsFold", "GET / HTTP/1.1\r\n" + host + "X-A: b\r\n c\r\n\r\n", 400},
        reject_case{"ObsFoldTab", "GET / HTTP/1.1\r\n" + host + "X-A: b\r\n\tc\r\n\r\n", 400},
        reject_case{"NulInValue",
                    "GET / HTTP/1.1\r\n" + host + std::string("X-A: b\0c\r\n\r\n", 13), 400},
        reject_case{"BareCrInValue", "GET / HTTP/1.1\r\n" + host + "X-A: b\rc\r\n\r\n", 400},
        reject_case{"BareLfLineEndings", "GET / HTTP/1.1\nHost: a\n\n", 400},
        reject_case{"SpaceBeforeColon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
        reject_case{"SpaceBeforeColonOnTransferEncoding",
                    "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding : chunked\r\n\r\n", 400},
        reject_case{"EmptyFieldName", "GET / HTTP/1.1\r\n" + host + ": x\r\n\r\n", 400},
        reject_case{"MissingHost", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400},
        reject_case{"TwoHosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        reject_case{"BadVersion", "GET / HTTP/2.0\r\n" + host + "\r\n", 400},
        reject_case{"BadMethod", "G(T / HTTP/1.1\r\n" + host + "\r\n", 400},
        reject_case{"BadChunkSize",
                    "POST / HTTP/1.1\r\n" + host +
                        "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
                    400},
        reject_case{"OverflowingChunkSize",
                    "POST / HTTP/1.1\r\n" + host +
                        "Transfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nx\r\n0\r\n\r\n",
                    400},
        reject_case{"ChunkDataTooLong",
                    "POST / HTTP/1.1\r\n" + host +
                        "Transfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n",
                    400},
        // Limits.
        reject_case{"UriTooLong",
                    "GET /0123456789abcdef0 HTTP/1.1\r\n" + host + "\r\n",
                    414,
                    {.max_uri_bytes = 17}},
        reject_case{"RequestLineOverHeaderLimit",
                    "GET /" + std::string(200, 'a') + " HTTP/1.1\r\n" + host + "\r\n",
                    414,
                    {.max_header_bytes = 128, .max_uri_bytes = 64}},
        reject_case{"HeaderTooLarge",
                    "GET / HTTP/1.1\r\n" + host + "X-Big: " + std::string(100, 'x') + "\r\n\r\n",
                    431,
                    {.max_header_bytes = 64}},
        reject_case{"HeaderOneByteOverLimit", limit_head, 431, {.max_header_bytes = 50}},
        reject_case{"UriOneByteOverLimit", limit_head, 414, {.max_uri_bytes = 16}},
        reject_case{"OneFieldOverLimit", limit_head, 431, {.max_headers = 1}},
        reject_case{"TooManyFields",
                    "GET / HTTP/1.1\r\n" + host + "A: 1\r\nB: 2\r\nC: 3\r\n\r\n",
                    431,
                    {.max_headers = 3}},
        reject_case{"DeclaredBodyTooLarge",
                    "POST / HTTP/1.1\r\n" + host + "Content-Length: 11\r\n\r\n01234567890",
                    413,
                    {.max_body_bytes = 10}},
        reject_case{"ChunkedBodyTooLarge",
                    "POST / HTTP/1.1\r\n" + host +
                        "Transfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n67890\r\n0\r\n\r\n",
                    413,
                    {.max_body_bytes = 10}},
        // A chunk-size line or trailer section that never ends cannot make the caller buffer
        // more than a head.
        reject_case{"EndlessChunkExtension",
                    "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n1;" +
                        std::string(100, 'e'),
                    431,
                    {.max_header_bytes = 64}},
        reject_case{"EndlessTrailers",
                    "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0\r\n" +
                        "X-T: " + std::string(100, 't'),
                    431,
                    {.max_header_bytes = 64}}),
    [](const testing::TestParamInfo<reject_case>& info) { return std::string(info.param.name); });

// --- responses ------------------------------------------------------------------------------

TEST(ResponseParser, ContentLength) {
  const std::string in =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n";
  auto r = parse_every_split(in, responses());
  ASSERT_EQ(r.messages.size(), 1u);
  const auto& m = r.messages[0];
  EXPECT_EQ(m.error, "");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.reason, "OK");
  EXPECT_EQ(m.version, 11);
  EXPECT_EQ(m.length, 12u);
  EXPECT_EQ(m.body, "hello world\n");
  EXPECT_TRUE(m.done);
}

TEST(ResponseParser, ChunkedWithTrailers) {
  const std::string in =
      "HTTP/1.1 200 OK\r\n"
      "Transfer-Encoding: chunked\r\n"
      "Trailer: Grpc-Status, Grpc-Message\r\n"
      "\r\n"
      "4\r\nwiki\r\n"
      "5;ext\r\npedia\r\n"
      "e\r\n in\r\n\r\nchunks.\r\n"
      "0\r\n"
      "Grpc-Status: 0\r\n"
      "Grpc-Message: ok\r\n"
      "\r\n";
  auto r = parse_every_split(in, responses());
  ASSERT_EQ(r.messages.size(), 1u);
  const auto& m = r.messages[0];
  EXPECT_EQ(m.error, "");
  EXPECT_EQ(m.length, std::nullopt);
  EXPECT_EQ(m.body, "wikipedia in\r\n\r\nchunks.");
  EXPECT_EQ(m.trailer, (fields{{"Grpc-Status", "0"}, {"Grpc-Message", "ok"}}));
  EXPECT_TRUE(m.done);
  EXPECT_EQ(r.consumed, in.size());
}

TEST(ResponseParser, CloseDelimitedEndsAtEof) {
  const std::string in = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of this is body";
  auto r = parse_every_split(in, responses(), 1, /*eof=*/true);
  ASSERT_EQ(r.messages.size(), 1u);
  const auto& m = r.messages[0];
  EXPECT_EQ(m.error, "");
  EXPECT_EQ(m.length, std::nullopt);
  EXPECT_EQ(m.body, "all of this is body");
  EXPECT_TRUE(m.done);
}

TEST(ResponseParser, CloseDelimitedBodyLimit) {
  // The limit counts bytes delivered, however small the output buffer and however often
  // put_body is called with the same unread input.
  factory<response_parser> limited = [](std::size_t) {
    return std::make_unique<response_parser>(false, parser_limits{.max_body_bytes = 20});
  };
  const std::string head = "HTTP/1.1 200 OK\r\n\r\n";
  auto r = parse_every_split(head + std::string(20, 'b'), limited, 1, /*eof=*/true);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].error, "");
  EXPECT_EQ(r.messages[0].body, std::string(20, 'b'));
  EXPECT_TRUE(r.messages[0].done);

  r = parse_every_split(head + std::string(21, 'b'), limited, 1, /*eof=*/true);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_TRUE(r.messages[0].failed);
  EXPECT_EQ(r.messages[0].error_status, 413);
}

TEST(ResponseParser, HeadResponseHasNoBody) {
  // The Content-Length describes the GET body; the next response follows the head directly.
  const std::string first = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
  const std::string second = "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno";
  auto r = parse_every_split(first + second, responses({0}), 2);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0].error, "");
  EXPECT_EQ(r.messages[0].length, 1000u);
  EXPECT_EQ(r.messages[0].body, "");
  EXPECT_TRUE(r.messages[0].done);
  EXPECT_EQ(r.messages[0].consumed, first.size());
  EXPECT_EQ(r.messages[1].status, 404);
  EXPECT_EQ(r.messages[1].body, "no");
}

TEST(ResponseParser, NoContentAndNotModifiedHaveNoBody) {
  for (std::string head :
       {"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nETag: \"x\"\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"}) {
    SCOPED_TRACE(head);
    const std::string next = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    auto r = parse_every_split(head + next, responses(), 2);
    ASSERT_EQ(r.messages.size(), 2u);
    EXPECT_EQ(r.messages[0].error, "");
    EXPECT_EQ(r.messages[0].body, "");
    EXPECT_TRUE(r.messages[0].done);
    EXPECT_EQ(r.messages[0].consumed, head.size());
    EXPECT_EQ(r.messages[1].body, "hello");
  }
}

TEST(ResponseParser, InformationalThenFinal) {
  const std::string in =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
      "HTTP/1.1 201 Created\r\nLocation: /x/1\r\nContent-Length: 2\r\n\r\nok";
  auto r = parse_every_split(in, responses(), 3);
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].status, 100);
  EXPECT_TRUE(r.messages[0].done);
  EXPECT_EQ(r.messages[1].status, 103);
  EXPECT_EQ(r.messages[1].header, (fields{{"Link", "</style.css>; rel=preload"}}));
  EXPECT_EQ(r.messages[2].status, 201);
  EXPECT_EQ(r.messages[2].body, "ok");
  EXPECT_EQ(r.consumed, in.size());
}

TEST(ResponseParser, SwitchingProtocolsLeavesTheRestUnread) {
  const std::string head =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
  const std::string raw = "\x81\x05hello";
  auto r = parse_every_split(head + raw, responses());
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].error, "");
  EXPECT_EQ(r.messages[0].status, 101);
  EXPECT_TRUE(r.messages[0].done);
  EXPECT_EQ(r.consumed, head.size());
}

TEST(ResponseParser, PutBodyAfterBodilessResponseIsANoOp) {
  // The transport reads the body of a HEAD response like any other: one put_body after done.
  response_parser p(/*head_request=*/true);
  error_code ec;
  const std::string in = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
  ASSERT_EQ(p.put_head(in, ec), in.size());
  ASSERT_TRUE(p.is_done());
  char out[4];
  auto step = p.put_body("", asio::buffer(out), ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_EQ(step.consumed, 0u);
  p.put_eof(ec);
  EXPECT_FALSE(ec) << ec.message();
}

TEST(ResponseParser, TruncatedBodiesFailAtEof) {
  for (std::string in : {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabc",
                         "HTTP/1.1 200 OK\r\nContent-"}) {
    SCOPED_TRACE(in);
    auto r = parse_every_split(in, responses(), 1, /*eof=*/true);
    ASSERT_EQ(r.messages.size(), 1u);
    EXPECT_FALSE(r.messages[0].done);
    if (r.messages[0].head_done) {
      EXPECT_TRUE(r.messages[0].failed);
    }
  }
}

TEST(ResponseParser, MalformedResponsesFail) {
  for (std::string in :
       {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        // Issue 14.1: read as close-delimited, the chunk framing would become body bytes.
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,chunked\r\n\r\n0\r\n\r\n"}) {
    SCOPED_TRACE(in);
    auto r = parse_every_split(in, responses());
    ASSERT_EQ(r.messages.size(), 1u);
    EXPECT_TRUE(r.messages[0].failed);
  }
}

TEST(RequestParser, UnderscoreFieldsDroppedButCounted) {
  // Issue 14.4: dropped before any handler sees them; each still counts against max_headers.
  const std::string in = "GET / HTTP/1.1\r\nHost: a\r\nX_A: 1\r\nX-B: 2\r\n\r\n";
  auto r = parse_every_split(in, requests({.underscores = underscore_fields::drop}));
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_FALSE(r.messages[0].failed) << r.messages[0].error;
  EXPECT_EQ(r.messages[0].header, (fields{{"Host", "a"}, {"X-B", "2"}}));
  auto over =
      parse_every_split(in, requests({.max_headers = 2, .underscores = underscore_fields::drop}));
  ASSERT_EQ(over.messages.size(), 1u);
  EXPECT_EQ(over.messages[0].error_status, 431);
}

TEST(ResponseParser, UnderscoreFieldsArePassed) {
  const std::string in = "HTTP/1.1 204 No Content\r\nX_A: 1\r\n\r\n";
  auto r = parse_every_split(in, responses());
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].header, (fields{{"X_A", "1"}}));
}

}  // namespace
}  // namespace trafficcop::http1
