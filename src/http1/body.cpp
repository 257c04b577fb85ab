// SPDX-License-Identifier: MIT
// HTTP/1.1 parsers, the body: Content-Length, chunked (RFC 9112 §7.1) and close-delimited
// framing, chunk extensions, the trailer section and the body limit. The head is parser.cpp.
#include <algorithm>
#include <cstring>

#include "http1/chars.hpp"
#include "http1/parser.hpp"

namespace trafficcop::http1 {

using namespace chars;  // NOLINT: the grammar's byte classes

// --- the body -------------------------------------------------------------------------------

body_step parser_base::put_body(std::string_view in, asio::mutable_buffer out, error_code& ec) {
  ec = {};
  if (st_ <= state::fields || st_ == state::done) return {};
  // Waiting for the rest of a chunk-size line, a chunk's CRLF or a trailer line: nothing new.
  if (in.size() < stalled_) return {};
  stalled_ = 0;
  char* dst = static_cast<char*>(out.data());
  const std::size_t room = out.size();
  std::size_t i = 0, w = 0;
  auto copy = [&](std::size_t n) {
    if (n > 0) std::memcpy(dst + w, in.data() + i, n);  // `out` may be empty (null)
    i += n;
    w += n;
  };
  for (;;) {
    switch (st_) {
      case state::body_length: {
        auto n = static_cast<std::size_t>(
            std::min<std::uint64_t>(left_, std::min(in.size() - i, room - w)));
        copy(n);
        left_ -= n;
        if (left_ == 0) st_ = state::done;
        return {i, w};
      }
      case state::to_eof: {
        std::size_t n = std::min(in.size() - i, room - w);
        if (limits_.max_body_bytes > 0 && in.size() > i) {
          if (body_left_ == 0) {
            ec = errc::body_too_large;
            return {i, w};
          }
          n = static_cast<std::size_t>(std::min<std::uint64_t>(n, body_left_));
          body_left_ -= n;
        }
        copy(n);
        return {i, w};
      }
      case state::chunk_data: {
        auto n = static_cast<std::size_t>(
            std::min<std::uint64_t>(left_, std::min(in.size() - i, room - w)));
        copy(n);
        left_ -= n;
        if (left_ > 0) return {i, w};
        st_ = state::chunk_crlf;
        [[fallthrough]];
      }
      case state::chunk_crlf:
        if (in.size() - i < 2) {
          stalled_ = in.size() - i + 1;
          return {i, w};
        }
        if (in[i] != '\r' || in[i + 1] != '\n') {
          ec = parse_error::bad_chunk;
          return {i, w};
        }
        i += 2;
        st_ = state::chunk_size;
        [[fallthrough]];
      case state::chunk_size:
        if (!chunk_line(in, i, ec)) return {i, w};
        break;
      case state::trailer:
        trailer_lines(in, i, ec);
        return {i, w};
      default:
        return {i, w};
    }
  }
}

// chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF; last-chunk = 1*"0" [ chunk-ext ] CRLF
// (RFC 9112 §7.1). A line (CRLF included) longer than max_header_bytes is a 431, as a head
// line would be. True when the line was consumed and the state moved on.
bool parser_base::chunk_line(std::string_view in, std::size_t& i, error_code& ec) {
  const std::string_view rest = in.substr(i);
  const std::size_t lim = std::min(rest.size(), limits_.max_header_bytes);
  // pos_ is how far earlier calls looked for the CR of this line.
  const void* cr = pos_ < lim ? std::memchr(rest.data() + pos_, '\r', lim - pos_) : nullptr;
  if (!cr) {
    pos_ = static_cast<std::uint32_t>(lim);
    if (rest.size() >= limits_.max_header_bytes) {
      ec = errc::header_too_large;
    } else {
      stalled_ = rest.size() + 1;
    }
    return false;
  }
  const std::size_t eol = static_cast<const char*>(cr) - rest.data();
  if (eol + 2 > limits_.max_header_bytes) {
    ec = errc::header_too_large;
    return false;
  }
  if (eol + 1 >= rest.size()) {
    pos_ = static_cast<std::uint32_t>(eol);
    stalled_ = rest.size() + 1;
    return false;
  }
  if (rest[eol + 1] != '\n') {
    ec = parse_error::bad_line_ending;
    return false;
  }
  const std::string_view line = rest.substr(0, eol);
  std::size_t k = 0;
  std::uint64_t size = 0;
  for (; k < line.size(); ++k) {
    int d = hexval(line[k]);
    if (d < 0) break;
    if (size > (UINT64_MAX >> 4)) {
      ec = parse_error::bad_chunk;  // RFC 9112 §7.1: anticipate overflow
      return false;
    }
    size = size << 4 | static_cast<std::uint64_t>(d);
  }
  if (k == 0) {
    ec = parse_error::bad_chunk;
    return false;
  }
  // chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ), read and
  // dropped (a proxy re-frames the body). chunk-ext-val = token / quoted-string.
  auto skip_bws = [&](std::size_t j) {
    while (j < line.size() && ows(line[j])) ++j;
    return j;
  };
  while (k < line.size()) {
    std::size_t j = skip_bws(k);
    if (j == line.size() || line[j] != ';') {
      ec = parse_error::bad_chunk_extension;  // also whitespace at the end of the line
      return false;
    }
    j = skip_bws(j + 1);
    std::size_t name = j;
    while (j < line.size() && is(tchar, line[j])) ++j;
    if (j == name) {
      ec = parse_error::bad_chunk_extension;
      return false;
    }
    k = j;
    j = skip_bws(j);
    if (j == line.size() || line[j] != '=') continue;
    j = skip_bws(j + 1);
    if (j < line.size() && line[j] == '"') {
      // quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE (RFC 9110 §5.6.4)
      for (++j;; ++j) {
        if (j == line.size()) {
          ec = parse_error::bad_quoted_string;
          return false;
        }
        if (line[j] == '"') break;
        if (line[j] == '\\') {
          ++j;
          if (j == line.size() || !(is(qdtext, line[j]) || line[j] == '"' || line[j] == '\\')) {
            ec = parse_error::bad_quoted_string;
            return false;
          }
        } else if (!is(qdtext, line[j])) {
          ec = parse_error::bad_quoted_string;
          return false;
        }
      }
      k = j + 1;
    } else {
      std::size_t val = j;
      while (j < line.size() && is(tchar, line[j])) ++j;
      if (j == val) {
        ec = parse_error::bad_chunk_extension;
        return false;
      }
      k = j;
    }
  }
  i += eol + 2;
  pos_ = 0;
  if (size > 0) {
    if (limits_.max_body_bytes > 0) {
      if (size > body_left_) {
        ec = errc::body_too_large;
        return false;
      }
      body_left_ -= size;
    }
    left_ = size;
    st_ = state::chunk_data;
    return true;
  }
  st_ = state::trailer;
  phase_ = 0;
  section_ = static_cast<std::uint32_t>(eol + 2);
  return true;
}

// trailer-section = *( field-line CRLF ), then CRLF (RFC 9112 §7.1.2). Each complete line is
// consumed; with the last-chunk line, the section must fit in max_header_bytes (431).
bool parser_base::trailer_lines(std::string_view in, std::size_t& i, error_code& ec) {
  for (;;) {
    const std::string_view rest = in.substr(i);
    const std::size_t budget =
        limits_.max_header_bytes - std::min<std::size_t>(section_, limits_.max_header_bytes);
    const std::size_t end = std::min(rest.size(), budget);
    switch (field_line(rest.data(), end, true, ec)) {
      case scan::need_more:
        if (rest.size() >= budget)
          ec = errc::header_too_large;
        else
          stalled_ = rest.size() + 1;
        return false;
      case scan::error:
        return false;
      case scan::field:
        on_field({rest.data() + line_, mark_ - line_}, field_value(rest.data()), true, ec);
        if (ec) return false;
        break;
      case scan::blank:
        st_ = state::done;
        break;
    }
    // The line (or the blank line) is done: consume it.
    i += pos_;
    section_ += pos_;
    pos_ = 0;
    if (st_ == state::done) return true;
  }
}

void parser_base::put_eof(error_code& ec) {
  ec = {};
  if (st_ == state::to_eof) {
    st_ = state::done;
    return;
  }
  if (st_ != state::done) ec = parse_error::partial_message;
}

}  // namespace trafficcop::http1
