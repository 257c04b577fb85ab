// SPDX-License-Identifier: MIT
// The Beast-based HTTP/1.1 parsers, kept as the fuzz targets' oracle (beast_oracle.hpp).
#include "beast_oracle.hpp"

#include <algorithm>
#include <cstring>

#include <boost/beast/http/error.hpp>

#include "http/rules.hpp"

namespace trafficcop::http1::beast_oracle {

namespace bh = boost::beast::http;

template <bool IsRequest>
parser_base<IsRequest>::parser_base(const parser_limits& limits, header_map* fields)
    : limits_(limits), fields_(fields ? fields : &own_fields_), body_left_(limits.max_body_bytes) {
  fields_->clear();
  this->header_limit(
      static_cast<std::uint32_t>(std::min<std::size_t>(limits.max_header_bytes, UINT32_MAX)));
  if (limits.max_body_bytes > 0)
    this->body_limit(limits.max_body_bytes);
  else
    this->body_limit(boost::none);
  this->eager(false);
}

template <bool IsRequest>
std::size_t parser_base<IsRequest>::put_head(std::string_view in, error_code& ec) {
  ec = {};
  // Beast consumes the complete lines of an incomplete head (and says need_more), but callers
  // keep the whole head buffered until it is complete: feed Beast only the bytes it has not
  // consumed yet, and apply the header limit to the whole head here.
  if (in.size() < head_used_) {
    ec = errc::bad_request;  // the caller dropped bytes of the head
    return 0;
  }
  std::size_t n =
      head_used_ + this->put(asio::buffer(in.data() + head_used_, in.size() - head_used_), ec);
  if (ec == bh::error::need_more) {
    head_used_ = n;
    ec = {};
    if (in.size() >= limits_.max_header_bytes) {
      ec = translate(bh::error::header_limit, in);
      return 0;
    }
    // Once it waits, Beast parses again only after a CRLFCRLF, so a head with bare-LF line
    // ends (which it rejects when it sees them whole) would wait for the limit or the timeout.
    for (; lf_scanned_ < in.size(); ++lf_scanned_) {
      if (in[lf_scanned_] == '\n' && (lf_scanned_ == 0 || in[lf_scanned_ - 1] != '\r')) {
        ec = bh::error::bad_line_ending;
        return 0;
      }
    }
    return 0;
  }
  if (!ec && n > limits_.max_header_bytes) ec = bh::error::header_limit;
  if (ec) {
    ec = translate(ec, in);
    return n;
  }
  if constexpr (IsRequest) {
    // RFC 9112 §5.2: a server must reject obs-fold or replace it; Beast unfolds silently, so
    // look for a line that starts with SP/HTAB in the head it consumed (spec 60).
    std::string_view head = in.substr(0, n);
    if (head.find("\n ") != std::string_view::npos || head.find("\n\t") != std::string_view::npos)
      ec = errc::obs_fold;
  }
  return n;
}

template <bool IsRequest>
body_step parser_base<IsRequest>::put_body(std::string_view in, asio::mutable_buffer out,
                                           error_code& ec) {
  ec = {};
  if (this->is_done()) return {};  // Beast asserts on input after the end
  // Stalled in a chunk-size line or the trailers: wait for new bytes, and for a last chunk for
  // at least 5 ("0\r\n\r\n"): Beast asserts that much when it resumes one.
  if (in.size() < stalled_) return {};
  out_ = out;
  written_ = 0;
  this->eager(true);
  std::size_t consumed = this->put(asio::buffer(in.data(), in.size()), ec);
  stalled_ = 0;
  if (ec == bh::error::need_buffer || ec == bh::error::need_more) {
    ec = {};
    if (consumed == 0 && written_ == 0 && !in.empty() && out.size() > 0) {
      // Only a chunk-size line or the trailer section leaves input unused with room in `out`;
      // bound them like a head, or a peer could make the caller buffer without end.
      if (in.size() >= limits_.max_header_bytes) ec = errc::header_too_large;
      bool last_chunk = in[0] == '0' && in.find("\r\n") != std::string_view::npos;
      stalled_ = last_chunk ? std::max<std::size_t>(in.size() + 1, 5) : in.size() + 1;
    }
  } else if (ec) {
    ec = translate(ec, in);
  }
  out_ = {};
  return {consumed, written_};
}

template <bool IsRequest>
void parser_base<IsRequest>::put_eof(error_code& ec) {
  ec = {};
  if (!this->got_some()) {
    ec = bh::error::partial_message;
    return;
  }
  bh::basic_parser<IsRequest>::put_eof(ec);
}

template <bool IsRequest>
std::optional<std::uint64_t> parser_base<IsRequest>::length() const {
  if (this->chunked()) return std::nullopt;
  auto cl = this->content_length();
  if (!cl) return std::nullopt;
  return *cl;
}

template <bool IsRequest>
void parser_base<IsRequest>::on_field_impl(bh::field f, bsv name_b, bsv value_b, error_code& ec) {
  std::string_view name(name_b.data(), name_b.size());
  std::string_view value(value_b.data(), value_b.size());
  // Beast has already checked the name is a token and ':' follows it directly (no whitespace
  // before the colon, spec 50/60); it tolerates some control bytes in values, we do not.
  if (!http::is_valid_field_value(value)) {
    ec = errc::bad_request;
    return;
  }
  header_map& into = in_trailer_ ? trailer_ : *fields_;
  if (fields_->size() + trailer_.size() + dropped_ >= limits_.max_headers) {
    ec = errc::header_too_large;
    return;
  }
  if (IsRequest && limits_.underscores != underscore_fields::keep &&
      name.find('_') != std::string_view::npos) {
    if (limits_.underscores == underscore_fields::reject) {
      ec = errc::bad_request;
      return;
    }
    ++dropped_;  // still a line of the head: it counts against max_headers
    return;
  }
  if (f == bh::field::transfer_encoding && !in_trailer_) {
    // RFC 9112 §6.1: chunked must be the final coding, applied once, and only chunked is
    // re-framable by a proxy; anything else is 501 (spec 53), chunked-not-last is 400 (spec 60).
    // Chunked applied twice ("chunked, chunked") is 400 too: Beast frames a message as chunked
    // only when its one chunked is last, so it would read such a body as absent (a request)
    // or close-delimited (a response) and the chunk bytes would become the next message.
    if (te_seen_) {
      ec = errc::bad_request;
      return;
    }
    switch (http::classify_transfer_encoding(value)) {
      case http::te_kind::chunked:
        te_seen_ = true;
        break;
      case http::te_kind::unsupported:
        ec = errc::unsupported_transfer_encoding;
        return;
      case http::te_kind::malformed:
        ec = errc::bad_request;
        return;
    }
  }
  into.add(name, value);
}

template <bool IsRequest>
void parser_base<IsRequest>::on_header_impl(error_code& ec) {
  in_trailer_ = true;
  // One framing decision: a Transfer-Encoding we accepted must be what Beast frames by, or
  // the body boundary we check is not the one the bytes are split at.
  if (te_seen_ != this->chunked()) {
    ec = errc::bad_request;
    return;
  }
  // Beast has checked a Content-Length against the limit; past the head, body_left_ counts:
  // Beast takes a chunk's size off its budget again each time it retries an incomplete chunk
  // line, and a whole unread close-delimited input each time put_body is called.
  this->body_limit(boost::none);
}

template <bool IsRequest>
void parser_base<IsRequest>::on_chunk_header_impl(std::uint64_t size, bsv, error_code& ec) {
  if (limits_.max_body_bytes == 0) return;
  if (size > body_left_) {
    ec = bh::error::body_limit;
    return;
  }
  body_left_ -= size;
}

template <bool IsRequest>
std::size_t parser_base<IsRequest>::sink(std::string_view body, error_code& ec) {
  std::size_t room = out_.size() - written_;
  if (room == 0) {
    ec = bh::error::need_buffer;
    return 0;
  }
  std::size_t n = std::min(room, body.size());
  std::memcpy(static_cast<char*>(out_.data()) + written_, body.data(), n);
  written_ += n;
  return n;
}

template <bool IsRequest>
std::size_t parser_base<IsRequest>::on_body_impl(bsv body, error_code& ec) {
  std::string_view b(body.data(), body.size());
  if (limits_.max_body_bytes == 0) return sink(b, ec);
  if (b.size() > body_left_) {  // only a close-delimited body can get here
    if (body_left_ == 0) {
      ec = bh::error::body_limit;
      return 0;
    }
    b = b.substr(0, body_left_);
  }
  std::size_t n = sink(b, ec);
  body_left_ -= n;
  return n;
}

template <bool IsRequest>
std::size_t parser_base<IsRequest>::on_chunk_body_impl(std::uint64_t, bsv body, error_code& ec) {
  return sink({body.data(), body.size()}, ec);
}

template <bool IsRequest>
error_code parser_base<IsRequest>::translate(error_code ec, std::string_view in) const {
  if (ec == bh::error::header_limit) {
    // A request line that alone does not fit is a long URI (414), not a large header (431).
    auto eol = in.find('\n');
    if (IsRequest && (eol == std::string_view::npos || eol > limits_.max_uri_bytes))
      return errc::uri_too_long;
    return errc::header_too_large;
  }
  if (ec == bh::error::body_limit) return errc::body_too_large;
  return ec;
}

void request_parser::on_request_impl(bh::verb, bsv method, bsv target, int version,
                                     error_code& ec) {
  if (target.size() > this->limits_.max_uri_bytes) {
    ec = errc::uri_too_long;
    return;
  }
  method_->assign(method.data(), method.size());
  target_->assign(target.data(), target.size());
  version_ = version;
}

void request_parser::on_response_impl(int, bsv, int, error_code& ec) {
  ec = errc::bad_request;  // unreachable: Beast calls this only on response parsers
}

void request_parser::on_header_impl(error_code& ec) {
  parser_base::on_header_impl(ec);
  if (ec) return;
  // RFC 9112 §3.2: a 1.1 request without Host, or with more than one, gets 400 (spec 50).
  std::size_t hosts = 0;
  for (const auto& f : *fields_)
    if (iequals(f.name, "host")) ++hosts;
  if (hosts > 1 || (hosts == 0 && version_ >= 11)) {
    ec = hosts > 1 ? errc::bad_request : errc::missing_host;
    return;
  }
  // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing; a 1.0
  // client cannot have meant chunked.
  if (te_seen_ && version_ < 11) {
    ec = errc::bad_request;
    return;
  }
  expect_continue_ = version_ >= 11 && fields_->has_token("expect", "100-continue");
}

response_parser::response_parser(bool head_request, const parser_limits& limits, header_map* fields)
    : parser_base<false>(limits, fields) {
  if (head_request) skip(true);
}

void response_parser::on_request_impl(bh::verb, bsv, bsv, int, error_code& ec) {
  ec = errc::upstream_protocol_error;  // unreachable: Beast calls this only on request parsers
}

void response_parser::on_response_impl(int status, bsv reason, int version, error_code&) {
  status_ = status;
  reason_.assign(reason.data(), reason.size());
  version_ = version;
}

template class parser_base<true>;
template class parser_base<false>;

}  // namespace trafficcop::http1::beast_oracle
