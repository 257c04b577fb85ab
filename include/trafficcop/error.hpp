// SPDX-License-Identifier: MIT
// trafficcop's error codes and the proxy_error that every failure is funnelled into.
//
// Codes are a boost::system error category, so they travel and compare with Asio's and Beast's.
// proxy_error adds what a code alone does not say: which side failed, and a static detail.
#pragma once

#include <string>
#include <string_view>

#include <boost/system/error_code.hpp>

namespace trafficcop {

enum class errc {
  // Downstream (the client's fault): answered with a 4xx/5xx status, connection then closed.
  bad_request = 1,
  uri_too_long,
  header_too_large,
  body_too_large,
  unsupported_transfer_encoding,
  missing_host,
  obs_fold,
  read_header_timeout,
  read_body_timeout,
  client_gone,
  // Upstream.
  upstream_connect_failed,
  upstream_connect_timeout,
  upstream_timeout,
  upstream_closed,
  upstream_protocol_error,
  upstream_bad_upgrade,
  // Internal / policy.
  bad_upstream_url,  // reverse_proxy_options::upstream does not parse → 502
  bad_upgrade_request,
  modify_response_failed,
  upgrade_needs_http1,  // an Upgrade request to an upstream reached only over HTTP/2 → 501
  no_healthy_upstream,  // every endpoint is ejected or unhealthy → 503
  circuit_open,         // a circuit breaker limit of the upstream is reached → 503
};

const boost::system::error_category& error_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

/// Which side of the proxy a failure came from.
enum class error_source { downstream, upstream, internal };

/// What a failed upstream exchange says about whether the request reached the upstream's
/// application, which is what decides a retry. Set by the transport where the failure is seen;
/// the transport's dispatcher alone decides what is replayed (upstream/dispatch.hpp).
enum class retry_class : unsigned char {
  none,             // it may have been processed, or the failure is not the upstream's
  connect_failure,  // no connection was made: nothing was sent
  refused,          // HTTP/2: refused or beyond a GOAWAY before any body byte (RFC 9113 §8.7)
  reset_before_response,  // HTTP/1.1: closed or reset before any response byte (a pooled
                          // connection the upstream had closed, often); the request may have
                          // been seen, so only an idempotent one is replayed
};

/// A failure of one proxied request, as handed to the error handler (spec 44).
struct proxy_error {
  proxy_error() = default;
  proxy_error(boost::system::error_code code, error_source src, std::string why = {},
              retry_class r = retry_class::none)
      : ec(code), source(src), detail(std::move(why)), retry(r) {}

  boost::system::error_code ec;
  error_source source = error_source::internal;
  /// A short human reason for logs: "connect: Connection refused", "response header timeout".
  std::string detail;
  retry_class retry = retry_class::none;

  /// The status the default error handler answers with: 502 bad gateway for upstream failures,
  /// 504 for upstream timeouts (spec 57), 499 (logged only) when the client left, 4xx for bad
  /// client input.
  int status() const noexcept;
};

}  // namespace trafficcop

template <>
struct boost::system::is_error_code_enum<trafficcop::errc> : std::true_type {};
