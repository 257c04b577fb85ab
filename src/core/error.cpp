// SPDX-License-Identifier: MIT
// The trafficcop error category and the error → status mapping (one place, spec 44/57).
#include "trafficcop/error.hpp"

namespace trafficcop {
namespace {

class category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "trafficcop"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::bad_request:
        return "bad request";
      case errc::uri_too_long:
        return "request-target too long";
      case errc::header_too_large:
        return "request header too large";
      case errc::body_too_large:
        return "request body too large";
      case errc::unsupported_transfer_encoding:
        return "unsupported transfer encoding";
      case errc::missing_host:
        return "missing Host header";
      case errc::obs_fold:
        return "obsolete line folding in header";
      case errc::read_header_timeout:
        return "timed out reading request header";
      case errc::read_body_timeout:
        return "timed out reading request body";
      case errc::client_gone:
        return "client closed the connection";
      case errc::upstream_connect_failed:
        return "upstream connect failed";
      case errc::upstream_connect_timeout:
        return "upstream connect timed out";
      case errc::upstream_timeout:
        return "upstream response timed out";
      case errc::upstream_closed:
        return "upstream closed the connection";
      case errc::upstream_protocol_error:
        return "malformed upstream response";
      case errc::upstream_bad_upgrade:
        return "upstream upgrade response invalid";
      case errc::bad_upstream_url:
        return "invalid upstream URL";
      case errc::bad_upgrade_request:
        return "invalid upgrade request";
      case errc::modify_response_failed:
        return "modify_response failed";
      case errc::upgrade_needs_http1:
        return "protocol upgrade needs HTTP/1.1 to the upstream (http2: always)";
      case errc::no_healthy_upstream:
        return "no healthy upstream";
      case errc::circuit_open:
        return "upstream circuit breaker open";
    }
    return "unknown trafficcop error";
  }
};

}  // namespace

const boost::system::error_category& error_category() noexcept {
  static const category c;
  return c;
}

int proxy_error::status() const noexcept {
  if (ec.category() == error_category()) {
    switch (static_cast<errc>(ec.value())) {
      case errc::uri_too_long:
        return 414;
      case errc::header_too_large:
        return 431;
      case errc::body_too_large:
        return 413;
      case errc::unsupported_transfer_encoding:
      case errc::upgrade_needs_http1:
        return 501;
      case errc::read_header_timeout:
      case errc::read_body_timeout:
        return 408;
      case errc::client_gone:
        return 499;
      case errc::no_healthy_upstream:
      case errc::circuit_open:
        return 503;
      case errc::upstream_timeout:
      case errc::upstream_connect_timeout:
        return 504;
      case errc::bad_upgrade_request:  // spec 24: Go's ErrorHandler answers 502
        return 502;
      case errc::bad_request:
      case errc::missing_host:
      case errc::obs_fold:
        return 400;
      default:
        break;
    }
  }
  if (source == error_source::downstream) return 400;
  return 502;
}

}  // namespace trafficcop
