// SPDX-License-Identifier: MIT
// HTTP/1.1 parsers: the RFC 9112 grammar, framing, and the proxy's validation and limits.
//
// Lines are scanned as they arrive and never twice: the scanner keeps its place (pos_, phase_)
// between calls, so a head trickling in a byte at a time costs what a whole one does, and a
// malformed one is refused at its first bad byte instead of at its end.
#include "http1/parser.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include "http/rules.hpp"
#include "http1/chars.hpp"

namespace trafficcop::http1 {

using namespace chars;  // NOLINT: the grammar's byte classes

namespace {

// The `n` bytes at `p` are a prefix of `pattern` ('D' stands for a digit): the start line is
// checked as far as it has arrived, so that junk is refused at its first byte.
bool matches(const char* p, std::size_t n, std::string_view pattern) {
  for (std::size_t i = 0; i < n && i < pattern.size(); ++i) {
    if (pattern[i] == 'D' ? p[i] < '0' || p[i] > '9' : p[i] != pattern[i]) return false;
  }
  return true;
}

// "HTTP/1.0" or "HTTP/1.1", given 8 bytes that match "HTTP/D.D".
bool known_version(const char* v) { return v[5] == '1' && (v[7] == '0' || v[7] == '1'); }

// The fields whose value this layer reads.
enum class known : std::uint8_t {
  other,
  host,
  expect,
  connection,
  content_length,
  transfer_encoding
};

known classify(std::string_view name) {
  switch (name.size()) {
    case 4:
      return iequals(name, "host") ? known::host : known::other;
    case 6:
      return iequals(name, "expect") ? known::expect : known::other;
    case 10:
      return iequals(name, "connection") ? known::connection : known::other;
    case 14:
      return iequals(name, "content-length") ? known::content_length : known::other;
    case 16:
      return iequals(name, "proxy-connection") ? known::connection : known::other;
    case 17:
      return iequals(name, "transfer-encoding") ? known::transfer_encoding : known::other;
    default:
      return known::other;
  }
}

// Beast unfolds into a buffer of this size and refuses longer values (431); so do we.
constexpr std::size_t max_folded_value = 4096;

class parse_error_category_impl final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "http1"; }
  std::string message(int ev) const override {
    switch (static_cast<parse_error>(ev)) {
      case parse_error::bad_method:
        return "bad method";
      case parse_error::bad_target:
        return "bad request-target";
      case parse_error::bad_version:
        return "bad HTTP version";
      case parse_error::bad_status:
        return "bad status code";
      case parse_error::bad_reason:
        return "bad reason phrase";
      case parse_error::bad_field:
        return "bad field name";
      case parse_error::bad_value:
        return "bad field value";
      case parse_error::bad_line_ending:
        return "bad line ending";
      case parse_error::bad_content_length:
        return "bad Content-Length";
      case parse_error::multiple_content_length:
        return "conflicting Content-Length values";
      case parse_error::bad_transfer_encoding:
        return "bad Transfer-Encoding";
      case parse_error::bad_connection:
        return "bad Connection";
      case parse_error::bad_chunk:
        return "bad chunk";
      case parse_error::bad_chunk_extension:
        return "bad chunk extension";
      case parse_error::bad_quoted_string:
        return "bad quoted-string in a chunk extension";
      case parse_error::partial_message:
        return "partial message";
      case parse_error::stale_input:
        return "head bytes dropped by the caller";
    }
    return "http1 parse error";
  }
};

}  // namespace

const boost::system::error_category& parse_error_category() noexcept {
  static const parse_error_category_impl c;
  return c;
}

parser_base::parser_base(bool request, const parser_limits& limits, header_map* fields)
    : limits_(limits),
      fields_(fields ? fields : &own_fields_),
      body_left_(limits.max_body_bytes),
      request_(request) {
  fields_->clear();
}

// --- the head -------------------------------------------------------------------------------

std::size_t parser_base::put_head(std::string_view in, error_code& ec) {
  ec = {};
  if (st_ > state::fields) return 0;
  if (in.size() < pos_) {
    ec = parse_error::stale_input;  // the caller dropped bytes of the head
    return 0;
  }
  if (!in.empty()) got_some_ = true;
  // The whole head, blank line included, must fit in max_header_bytes: look no further.
  const std::size_t end = std::min(in.size(), limits_.max_header_bytes);
  const char* p = in.data();
  auto over_limit = [&] {
    // A request line that alone does not fit is a long URI (414), not a large header (431).
    if (in.size() >= limits_.max_header_bytes)
      ec = request_ && st_ == state::start_line ? errc::uri_too_long : errc::header_too_large;
    return 0;
  };
  if (st_ == state::start_line) {
    if (!start_line(p, end, ec)) return ec ? 0 : over_limit();
    st_ = state::fields;
    phase_ = 0;
  }
  // RFC 9112 §5.2: a server must reject obs-fold (spec 60) or replace it; responses are
  // unfolded, as a proxy may do.
  for (;;) {
    switch (field_line(p, end, !request_, ec)) {
      case scan::need_more:
        return over_limit();
      case scan::error:
        return 0;
      case scan::field:
        on_field({p + line_, mark_ - line_}, field_value(p), false, ec);
        if (ec) return 0;
        break;
      case scan::blank: {
        const std::size_t n = pos_;
        finish_head(ec);
        return ec ? 0 : n;
      }
    }
  }
}

bool parser_base::start_line(const char* p, std::size_t end, error_code& ec) {
  return request_ ? request_line(p, end, ec) : status_line(p, end, ec);
}

// request-line = method SP request-target SP HTTP-version CRLF (RFC 9112 §3). No empty line
// before it is tolerated, as before (Beast's rule).
bool parser_base::request_line(const char* p, std::size_t end, error_code& ec) {
  enum : std::uint8_t { method, target, version };
  switch (phase_) {
    case method:
      pos_ = static_cast<std::uint32_t>(skip(tchar, p, pos_, end));
      if (pos_ >= end) return false;
      if (p[pos_] != ' ' || pos_ == 0) {
        ec = parse_error::bad_method;
        return false;
      }
      mark_ = pos_++;
      mark2_ = pos_;
      phase_ = target;
      [[fallthrough]];
    case target:
      pos_ = static_cast<std::uint32_t>(skip(pathchar, p, pos_, end));
      if (pos_ - mark2_ > limits_.max_uri_bytes) {
        ec = errc::uri_too_long;  // as soon as it is known, complete or not
        return false;
      }
      if (pos_ >= end) return false;
      if (p[pos_] != ' ' || pos_ == mark2_) {
        ec = parse_error::bad_target;
        return false;
      }
      ++pos_;
      phase_ = version;
      [[fallthrough]];
    case version: {
      const char* v = p + pos_;
      if (!matches(v, end - pos_, "HTTP/D.D\r\n")) {
        ec = parse_error::bad_version;
        return false;
      }
      if (end - pos_ >= 8 && !known_version(v)) {
        ec = parse_error::bad_version;
        return false;
      }
      if (end - pos_ < 10) return false;
      version_ = 10 * (v[5] - '0') + (v[7] - '0');
      if ((version_ != 10 && version_ != 11) || v[8] != '\r' || v[9] != '\n') {
        ec = parse_error::bad_version;
        return false;
      }
      method_->assign(p, mark_);
      target_->assign(p + mark2_, pos_ - 1 - mark2_);
      pos_ += 10;
      return true;
    }
  }
  return false;
}

// status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF (RFC 9112 §4). The
// second SP is required, as Beast requires it.
bool parser_base::status_line(const char* p, std::size_t end, error_code& ec) {
  enum : std::uint8_t { version, reason, lf };
  switch (phase_) {
    case version: {
      if (!matches(p, std::min<std::size_t>(end, 9), "HTTP/D.D ")) {
        ec = parse_error::bad_version;
        return false;
      }
      if (end >= 8 && !known_version(p)) {
        ec = parse_error::bad_version;
        return false;
      }
      if (end > 9 && !matches(p + 9, std::min<std::size_t>(end, 13) - 9, "DDD ")) {
        ec = parse_error::bad_status;
        return false;
      }
      if (end < 13) return false;
      version_ = 10 * (p[5] - '0') + (p[7] - '0');
      if ((version_ != 10 && version_ != 11) || p[8] != ' ') {
        ec = parse_error::bad_version;
        return false;
      }
      status_ = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
      if (status_ < 100 || status_ > 599) {  // RFC 9110 §15: three digits, 100 to 599
        ec = parse_error::bad_status;
        return false;
      }
      pos_ = 13;
      phase_ = reason;
      [[fallthrough]];
    }
    case reason:
      pos_ = static_cast<std::uint32_t>(skip(vchar, p, pos_, end));
      if (pos_ >= end) return false;
      if (p[pos_] != '\r') {
        ec = parse_error::bad_reason;
        return false;
      }
      cr_ = pos_++;
      phase_ = lf;
      [[fallthrough]];
    case lf:
      if (pos_ >= end) return false;
      if (p[pos_] != '\n') {
        ec = parse_error::bad_line_ending;
        return false;
      }
      ++pos_;
      reason_->assign(p + 13, cr_ - 13);
      return true;
  }
  return false;
}

// field-line = field-name ":" OWS field-value OWS, CRLF (RFC 9112 §5). A line is complete once
// the byte after its CRLF is known: SP or HTAB there is obs-fold (§5.2).
parser_base::scan parser_base::field_line(const char* p, std::size_t end, bool fold_ok,
                                          error_code& ec) {
  enum : std::uint8_t { start, name, value, lf, next, blank_lf };
  for (;;) {
    switch (phase_) {
      case start:
        if (pos_ >= end) return scan::need_more;
        if (p[pos_] == '\r') {
          ++pos_;
          phase_ = blank_lf;
          continue;
        }
        if (!is(tchar, p[pos_])) {  // also a leading SP/HTAB, ':', a bare LF
          ec = parse_error::bad_field;
          return scan::error;
        }
        line_ = pos_++;
        folded_ = false;
        phase_ = name;
        [[fallthrough]];
      case name:
        pos_ = static_cast<std::uint32_t>(skip(tchar, p, pos_, end));
        if (pos_ >= end) return scan::need_more;
        if (p[pos_] != ':') {  // RFC 9112 §5.1: no whitespace before the colon (spec 50)
          ec = parse_error::bad_field;
          return scan::error;
        }
        mark_ = pos_++;
        phase_ = value;
        [[fallthrough]];
      case value:
        pos_ = static_cast<std::uint32_t>(skip_value(p, pos_, end));
        if (pos_ >= end) return scan::need_more;
        if (p[pos_] != '\r') {  // NUL, a bare LF, another CTL (RFC 9110 §5.5)
          ec = parse_error::bad_value;
          return scan::error;
        }
        cr_ = pos_++;
        phase_ = lf;
        [[fallthrough]];
      case lf:
        if (pos_ >= end) return scan::need_more;
        if (p[pos_] != '\n') {  // a bare CR (RFC 9112 §2.2)
          ec = parse_error::bad_line_ending;
          return scan::error;
        }
        ++pos_;
        phase_ = next;
        [[fallthrough]];
      case next:
        if (pos_ >= end) return scan::need_more;
        if (ows(p[pos_])) {
          if (!fold_ok) {
            ec = errc::obs_fold;
            return scan::error;
          }
          folded_ = true;
          ++pos_;
          phase_ = value;
          continue;
        }
        phase_ = start;
        return scan::field;
      case blank_lf:
        if (pos_ >= end) return scan::need_more;
        if (p[pos_] != '\n') {
          ec = parse_error::bad_line_ending;
          return scan::error;
        }
        ++pos_;
        phase_ = start;
        return scan::blank;
    }
  }
}

// The value of the field line just scanned: trimmed; an obs-fold becomes one SP between the
// non-empty pieces (RFC 9112 §5.2), as Beast unfolds.
std::string_view parser_base::field_value(const char* p) {
  std::string_view raw(p + mark_ + 1, cr_ - mark_ - 1);
  if (!folded_) return trim(raw);
  fold_.clear();
  for (;;) {
    auto eol = raw.find("\r\n");
    auto piece = trim(raw.substr(0, eol));
    if (!piece.empty()) {
      if (!fold_.empty()) fold_ += ' ';
      fold_.append(piece);
    }
    if (eol == std::string_view::npos) break;
    raw.remove_prefix(eol + 2);
  }
  return fold_;
}

void parser_base::on_field(std::string_view name, std::string_view value, bool in_trailer,
                           error_code& ec) {
  if (folded_ && fold_.size() > max_folded_value) {
    ec = errc::header_too_large;
    return;
  }
  const known k = classify(name);
  // Framing and connection fields, in the trailer section too: there a Content-Length or a
  // Transfer-Encoding is refused (RFC 9110 §6.5.1: never framing), as Beast refuses them.
  switch (k) {
    case known::connection: {
      // RFC 9110 §7.6.1: Connection = #connection-option (tokens; empty elements allowed).
      bool need_comma = false;
      for (std::size_t i = 0;;) {
        while (i < value.size() && ows(value[i])) ++i;
        if (i == value.size()) break;
        if (value[i] == ',') {
          need_comma = false;
          ++i;
          continue;
        }
        if (!is(tchar, value[i]) || need_comma) {
          ec = parse_error::bad_connection;
          return;
        }
        std::size_t j = i;
        while (j < value.size() && is(tchar, value[j])) ++j;
        auto opt = value.substr(i, j - i);
        if (iequals(opt, "close")) conn_close_ = true;
        if (iequals(opt, "keep-alive")) conn_keep_alive_ = true;
        need_comma = true;
        i = j;
      }
      break;
    }
    case known::content_length: {
      // RFC 9110 §8.6, RFC 9112 §6.3: a list of identical values, or lines with the same
      // value, mean that value; anything else is a 400 (spec 51). Each value as
      // http::parse_content_length reads one (at most 19 digits).
      if (chunked_) {
        ec = parse_error::bad_content_length;
        return;
      }
      std::string_view rest = value;
      for (;;) {
        auto comma = rest.find(',');
        auto v = http::parse_content_length(trim(rest.substr(0, comma)));
        // Callers keep lengths in int64 (request::content_length): above its range is a 400.
        if (!v || *v > static_cast<std::uint64_t>(INT64_MAX)) {
          ec = parse_error::bad_content_length;
          return;
        }
        if (has_length_ && *v != length_) {
          ec = parse_error::multiple_content_length;
          return;
        }
        length_ = *v;
        has_length_ = true;
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
      }
      break;
    }
    case known::transfer_encoding:
      // RFC 9112 §6.1, §6.3: with a Content-Length, or after chunked, framing is ambiguous.
      if (chunked_ || has_length_) {
        ec = parse_error::bad_transfer_encoding;
        return;
      }
      break;
    default:
      break;
  }
  if (fields_->size() + trailer_.size() + dropped_ >= limits_.max_headers) {
    ec = errc::header_too_large;
    return;
  }
  if (request_ && limits_.underscores != underscore_fields::keep &&
      name.find('_') != std::string_view::npos) {
    if (limits_.underscores == underscore_fields::reject) {
      ec = errc::bad_request;
      return;
    }
    ++dropped_;  // still a line of the head: it counts against max_headers
    return;
  }
  if (in_trailer) {
    trailer_.add(name, value);
    return;
  }
  switch (k) {
    case known::transfer_encoding:
      // RFC 9112 §6.1: chunked must be the final coding, applied once, and only chunked is
      // re-framable by a proxy; anything else is 501 (spec 53), chunked-not-last or chunked
      // twice is 400 (spec 60, issue 14.1).
      switch (http::classify_transfer_encoding(value)) {
        case http::te_kind::chunked:
          chunked_ = true;
          break;
        case http::te_kind::unsupported:
          ec = errc::unsupported_transfer_encoding;
          return;
        case http::te_kind::malformed:
          ec = errc::bad_request;
          return;
      }
      break;
    case known::host:
      if (hosts_ < 2) ++hosts_;
      break;
    case known::expect:
      expect_seen_ = true;
      break;
    default:
      break;
  }
  fields_->add(name, value);
}

void parser_base::finish_head(error_code& ec) {
  const bool no_body =
      !request_ && (skip_body_ || status_ / 100 == 1 || status_ == 204 || status_ == 304);
  if (no_body) {
    st_ = state::done;  // RFC 9112 §6.3 rules 1-2: whatever the framing fields say
  } else if (has_length_) {
    // A declared body over the limit is refused before anything else about the head.
    if (length_ > 0 && limits_.max_body_bytes > 0 && length_ > limits_.max_body_bytes) {
      ec = errc::body_too_large;
      return;
    }
    left_ = length_;
    st_ = length_ > 0 ? state::body_length : state::done;
  } else if (chunked_) {
    st_ = state::chunk_size;
  } else if (request_) {
    st_ = state::done;  // RFC 9112 §6.3 rule 7
  } else {
    need_eof_ = true;  // rule 8: the body ends with the connection
    st_ = state::to_eof;
  }
  pos_ = 0;
  phase_ = 0;
  if (!request_) return;
  // RFC 9112 §3.2: a 1.1 request without Host, or with more than one, gets 400 (spec 50).
  if (hosts_ > 1) {
    ec = errc::bad_request;
    return;
  }
  if (hosts_ == 0 && version_ >= 11) {
    ec = errc::missing_host;
    return;
  }
  // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing; a 1.0
  // client cannot have meant chunked.
  if (chunked_ && version_ < 11) {
    ec = errc::bad_request;
    return;
  }
  expect_continue_ = expect_seen_ && version_ >= 11 && fields_->has_token("expect", "100-continue");
}

int status_for(error_code ec) noexcept {
  if (ec.category() == error_category()) {
    proxy_error e{ec, error_source::downstream, {}};
    return e.status();
  }
  return 400;
}

}  // namespace trafficcop::http1
