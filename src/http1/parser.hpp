// SPDX-License-Identifier: MIT
// Sans-I/O HTTP/1.1 request and response parsers, written for the proxy (RFC 9112, RFC 9110).
//
// Bytes go in, a parsed head and body bytes come out; no socket, no timer, so every byte split
// can be tested and the parsers fuzzed (fuzz/, with Beast's parser as the differential oracle).
// The grammar is strict (tokens, field-value bytes, CRLF only) and the proxy's posture is part
// of it (spec 50-53, 60): limits with their own codes, obs-fold rejected in requests,
// Transfer-Encoding other than chunked refused, Host required on 1.1.
//
// Usage: feed the buffered input to put_head() until is_header_done(); then put_body() moves
// body bytes into the caller's buffer until is_done(). A parser parses one message; make a new
// one for the next. Nothing here allocates beyond the caller's strings and field maps.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "trafficcop/error.hpp"
#include "trafficcop/http.hpp"

namespace trafficcop::http1 {

/// Why a message is malformed, beyond the proxy's own codes (errc): all answered with 400 by a
/// server (status_for), "malformed response" by the transport.
enum class parse_error {
  bad_method = 1,
  bad_target,
  bad_version,
  bad_status,
  bad_reason,
  bad_field,        // field name not a token, or no ':' right after it
  bad_value,        // a control byte in a field value
  bad_line_ending,  // CR not followed by LF, or LF without CR
  bad_content_length,
  multiple_content_length,  // values that differ
  bad_transfer_encoding,    // after Content-Length, or repeated after chunked
  bad_connection,           // Connection not a token list
  bad_chunk,                // chunk-size not hex, overflowing, or data not followed by CRLF
  bad_chunk_extension,
  bad_quoted_string,  // in a chunk extension: a byte qdtext/quoted-pair do not allow, unclosed
  partial_message,    // the input ended before the message did
  stale_input,        // put_head given fewer bytes than it already parsed
};
const boost::system::error_category& parse_error_category() noexcept;
inline error_code make_error_code(parse_error e) noexcept {
  return {static_cast<int>(e), parse_error_category()};
}

struct parser_limits {
  std::size_t max_header_bytes = 16 * 1024;  // start line + fields; each chunk-size line, the
                                             // trailer section → 431
  std::size_t max_headers = 100;             // field lines, trailers included; → 431
  std::size_t max_uri_bytes = 8 * 1024;      // → 414
  std::uint64_t max_body_bytes = 0;          // 0 = unlimited; → 413
  /// Requests only; a response's fields are passed as they are.
  underscore_fields underscores = underscore_fields::keep;
};

/// Moves body bytes out of `in` into `out`: how much of each was used.
struct body_step {
  std::size_t consumed = 0;
  std::size_t written = 0;
};

class parser_base {
 public:
  parser_base(const parser_base&) = delete;
  parser_base& operator=(const parser_base&) = delete;

  /// Parses the head if `in` holds all of it; returns the bytes consumed (0 while it needs
  /// more: keep the bytes, append, call again with all of them). On a malformed head `ec` is
  /// set. Never consumes body bytes.
  std::size_t put_head(std::string_view in, error_code& ec);
  /// Copies body bytes from `in` into `out`. Trailers land in trailer(). Once done(), a no-op.
  /// Returns {0, 0} only when `in` holds nothing more it can use: read more, call again.
  body_step put_body(std::string_view in, asio::mutable_buffer out, error_code& ec);
  /// The connection ended: completes a close-delimited body, or reports a truncated one.
  void put_eof(error_code& ec);

  header_map& fields() noexcept { return *fields_; }
  header_map& trailer() noexcept { return trailer_; }
  int version() const noexcept { return version_; }
  /// Body length if framed by Content-Length; nullopt for chunked or close-delimited.
  std::optional<std::uint64_t> length() const {
    if (chunked_ || !has_length_) return std::nullopt;
    return length_;
  }

  bool got_some() const noexcept { return got_some_; }
  bool is_header_done() const noexcept { return st_ > state::fields; }
  bool is_done() const noexcept { return st_ == state::done; }
  /// Transfer-Encoding: chunked was accepted (also where the status says there is no body).
  bool chunked() const noexcept { return chunked_; }
  /// The body ends when the connection does (a response without framing).
  bool need_eof() const noexcept { return need_eof_; }
  /// RFC 9112 §9.3: the connection may carry another message after this one. "close" wins
  /// in any version; an HTTP/1.0 message needs "keep-alive", and one that was chunked has
  /// faulty framing (RFC 9112 §6.1: the recipient closes after it).
  bool keep_alive() const noexcept {
    if (conn_close_) return false;
    if (version_ < 11 && (!conn_keep_alive_ || chunked_)) return false;
    return !need_eof_;
  }

 protected:
  /// Fields go to `fields` (cleared first, its storage reused) or to the parser's own map.
  parser_base(bool request, const parser_limits& limits, header_map* fields);
  ~parser_base() = default;

  enum class state : std::uint8_t {
    start_line,
    fields,
    body_length,  // Content-Length
    chunk_size,
    chunk_data,
    chunk_crlf,  // after a chunk's data
    trailer,
    to_eof,  // close-delimited (responses)
    done,
  };
  enum class scan : std::uint8_t { need_more, field, blank, error };

  bool start_line(const char* p, std::size_t end, error_code& ec);
  bool request_line(const char* p, std::size_t end, error_code& ec);
  bool status_line(const char* p, std::size_t end, error_code& ec);
  scan field_line(const char* p, std::size_t end, bool fold_ok, error_code& ec);
  std::string_view field_value(const char* p);
  void on_field(std::string_view name, std::string_view value, bool in_trailer, error_code& ec);
  void finish_head(error_code& ec);
  bool chunk_line(std::string_view in, std::size_t& i, error_code& ec);
  bool trailer_lines(std::string_view in, std::size_t& i, error_code& ec);

  parser_limits limits_;
  header_map own_fields_;
  header_map* fields_;
  header_map trailer_;
  std::string* method_ = nullptr;  // requests
  std::string* target_ = nullptr;
  std::string* reason_ = nullptr;  // responses
  std::string fold_;               // an unfolded obs-fold value (responses, trailers)
  std::uint64_t length_ = 0;       // the Content-Length
  std::uint64_t left_ = 0;         // bytes left of the Content-Length body or of a chunk
  std::uint64_t body_left_ = 0;    // body bytes max_body_bytes still allows
  // The line scanner: offsets into the head (put_head), or into the unconsumed input (chunk
  // lines and trailers, which put_body does not consume until each line is complete).
  std::uint32_t pos_ = 0;      // next byte to look at
  std::uint32_t line_ = 0;     // start of the current line
  std::uint32_t mark_ = 0;     // method end / field name end
  std::uint32_t mark2_ = 0;    // target start
  std::uint32_t cr_ = 0;       // the line's (last) CR
  std::uint32_t section_ = 0;  // trailer section bytes consumed (with the last-chunk line)
  std::size_t stalled_ = 0;    // put_body looks again once `in` has this many bytes
  std::size_t dropped_ = 0;    // field lines dropped (underscores)
  int version_ = 11;
  int status_ = 0;
  std::uint8_t phase_ = 0;
  std::uint8_t hosts_ = 0;
  state st_ = state::start_line;
  bool request_;
  bool skip_body_ = false;  // the answer to a HEAD
  bool got_some_ = false;
  bool has_length_ = false;
  bool chunked_ = false;
  bool need_eof_ = false;
  bool conn_close_ = false;
  bool conn_keep_alive_ = false;
  bool expect_seen_ = false;
  bool expect_continue_ = false;
  bool folded_ = false;
};

class request_parser final : public parser_base {
 public:
  explicit request_parser(const parser_limits& limits = {}) : parser_base(true, limits, nullptr) {
    method_ = &own_method_;
    target_ = &own_target_;
  }
  /// Parses straight into `into`: method, target and header, reusing their storage (a
  /// connection reuses one request object, so a steady stream of requests allocates nothing).
  request_parser(const parser_limits& limits, request& into)
      : parser_base(true, limits, &into.header) {
    method_ = &into.method;
    target_ = &into.target;
    method_->clear();
    target_->clear();
  }
  const std::string& method() const noexcept { return *method_; }
  const std::string& target() const noexcept { return *target_; }
  bool expects_continue() const noexcept { return expect_continue_; }

 private:
  std::string own_method_;
  std::string own_target_;
};

class response_parser final : public parser_base {
 public:
  /// `head_request`: the response to a HEAD has no body whatever its framing says (spec 39).
  /// `fields`: where the header fields go (see parser_base); null for the parser's own map.
  explicit response_parser(bool head_request, const parser_limits& limits = {},
                           header_map* fields = nullptr)
      : parser_base(false, limits, fields) {
    skip_body_ = head_request;
    reason_ = &own_reason_;
  }
  int status() const noexcept { return status_; }
  const std::string& reason() const noexcept { return own_reason_; }

 private:
  std::string own_reason_;
};

/// The status a server answers a request parse error with: 400, 413, 414, 431 or 501.
int status_for(error_code ec) noexcept;

}  // namespace trafficcop::http1

template <>
struct boost::system::is_error_code_enum<trafficcop::http1::parse_error> : std::true_type {};
