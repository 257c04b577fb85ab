// SPDX-License-Identifier: MIT
// The fuzz targets' oracle: the HTTP/1.1 parsers the proxy used before its own (src/http1/),
// Beast's basic_parser with the proxy's posture on top, kept as they were so that
// fuzz/http1_*_fuzz.cpp can check the hand-written parsers against them differentially.
// Compiled into the fuzz targets and their replays only, never into the proxy.
//
// What follows is the original description.
//
// Bytes go in, a parsed head and body bytes come out; no socket, no timer, so every byte split
// can be tested and the parsers fuzzed (fuzz/). Beast does the grammar and framing (RFC 9112);
// this layer adds the proxy's posture on top (spec 50-53, 60): limits with their own codes,
// obs-fold rejected, Transfer-Encoding other than chunked refused, Host required on 1.1.
//
// Usage: feed the buffered input to put_head() until head_done(); then put_body() moves body
// bytes into the caller's buffer until done(). A parser parses one message; make a new one
// for the next (Beast's rule).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/http/basic_parser.hpp>

#include "http1/parser.hpp"
#include "trafficcop/error.hpp"
#include "trafficcop/http.hpp"

namespace trafficcop::http1::beast_oracle {

using bsv = boost::beast::string_view;  // Beast's callback string type

using http1::body_step;
using http1::parser_limits;

template <bool IsRequest>
class parser_base : public boost::beast::http::basic_parser<IsRequest> {
 public:
  /// Parses the head if `in` holds all of it; returns the bytes consumed (0 while it needs
  /// more: keep the bytes, append, call again). On a malformed head `ec` is set.
  std::size_t put_head(std::string_view in, error_code& ec);
  /// Copies body bytes from `in` into `out`. Trailers land in trailer(). Once done(), a no-op.
  body_step put_body(std::string_view in, asio::mutable_buffer out, error_code& ec);
  /// The connection ended: completes a close-delimited body, or reports a truncated one.
  void put_eof(error_code& ec);

  header_map& fields() noexcept { return *fields_; }
  header_map& trailer() noexcept { return trailer_; }
  int version() const noexcept { return version_; }
  /// Body length if framed by Content-Length; nullopt for chunked or close-delimited.
  std::optional<std::uint64_t> length() const;

 protected:
  /// Fields go to `fields` (cleared first, its storage reused) or to the parser's own map.
  parser_base(const parser_limits& limits, header_map* fields);
  parser_base(parser_base&&) = delete;  // fields_ may point into this object
  void on_field_impl(boost::beast::http::field f, bsv name, bsv value, error_code& ec) override;
  void on_header_impl(error_code& ec) override;
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  std::size_t on_body_impl(bsv body, error_code& ec) override;
  void on_chunk_header_impl(std::uint64_t size, bsv, error_code& ec) override;
  std::size_t on_chunk_body_impl(std::uint64_t, bsv body, error_code& ec) override;
  void on_finish_impl(error_code&) override {}
  std::size_t sink(std::string_view body, error_code& ec);
  error_code translate(error_code ec, std::string_view in) const;

  parser_limits limits_;
  header_map own_fields_;
  header_map* fields_;
  header_map trailer_;
  int version_ = 11;
  bool in_trailer_ = false;
  bool te_seen_ = false;
  std::size_t dropped_ = 0;      // field lines dropped (underscores)
  std::size_t head_used_ = 0;    // head bytes Beast consumed before the head was complete
  std::size_t lf_scanned_ = 0;   // head bytes checked for a bare LF
  std::size_t stalled_ = 0;      // put_body calls Beast again once `in` has this many bytes
  std::uint64_t body_left_ = 0;  // body bytes max_body_bytes still allows
  asio::mutable_buffer out_;     // where put_body copies to
  std::size_t written_ = 0;
};

class request_parser final : public parser_base<true> {
 public:
  explicit request_parser(const parser_limits& limits = {})
      : parser_base<true>(limits, nullptr), method_(&own_method_), target_(&own_target_) {}
  /// Parses straight into `into`: method, target and header, reusing their storage (a
  /// connection reuses one request object, so a steady stream of requests allocates nothing).
  request_parser(const parser_limits& limits, request& into)
      : parser_base<true>(limits, &into.header), method_(&into.method), target_(&into.target) {
    method_->clear();
    target_->clear();
  }
  const std::string& method() const noexcept { return *method_; }
  const std::string& target() const noexcept { return *target_; }
  bool expects_continue() const noexcept { return expect_continue_; }

 private:
  void on_request_impl(boost::beast::http::verb, bsv method, bsv target, int version,
                       error_code& ec) override;
  void on_response_impl(int, bsv, int, error_code& ec) override;
  void on_header_impl(error_code& ec) override;

  std::string own_method_;
  std::string own_target_;
  std::string* method_;
  std::string* target_;
  bool expect_continue_ = false;
};

class response_parser final : public parser_base<false> {
 public:
  /// `head_request`: the response to a HEAD has no body whatever its framing says (spec 39).
  /// `fields`: where the header fields go (see parser_base); null for the parser's own map.
  explicit response_parser(bool head_request, const parser_limits& limits = {},
                           header_map* fields = nullptr);
  int status() const noexcept { return status_; }
  const std::string& reason() const noexcept { return reason_; }

 private:
  void on_request_impl(boost::beast::http::verb, bsv, bsv, int, error_code& ec) override;
  void on_response_impl(int status, bsv reason, int version, error_code& ec) override;

  int status_ = 0;
  std::string reason_;
};

using http1::status_for;

extern template class parser_base<true>;
extern template class parser_base<false>;

}  // namespace trafficcop::http1::beast_oracle
