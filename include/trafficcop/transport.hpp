// SPDX-License-Identifier: MIT
// The transport: sends one outbound request and returns the upstream's response (Go's
// http.RoundTripper). The reverse proxy talks to upstreams only through this interface, so a
// test or an embedder can replace it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "trafficcop/error.hpp"
#include "trafficcop/http.hpp"

namespace trafficcop {

struct upstream_url {
  std::string scheme;
  std::string host;  // without brackets
  std::uint16_t port = 80;
  std::string path;   // raw
  std::string query;  // raw, without '?'
};

/// Parses "http(s)://host[:port][/path][?query]" (port 80 or 443 by default); nullopt if
/// malformed or another scheme.
std::optional<upstream_url> parse_upstream_url(std::string_view url);

/// The request as it goes upstream. The proxy fills it from the inbound request; `rewrite`
/// may change any of it.
struct outbound_request {
  std::string method;
  std::string scheme = "http";
  /// Where to connect: host name or IP literal (no brackets), and port.
  std::string host;
  std::uint16_t port = 80;
  /// An IP literal to connect to instead of resolving `host` (an endpoint that service
  /// discovery resolved); `host` still names the server for SNI and certificate checks.
  std::string address;
  /// origin-form request-target: "/base/dir?x=1".
  std::string target;
  /// Fields to send, Host included (the proxy sets it, spec 8). Framing fields
  /// (Content-Length, Transfer-Encoding) are written by the transport from `content_length`.
  header_map header;
  /// -1 unknown (sent chunked), 0 no body (spec 19), > 0 exact length.
  std::int64_t content_length = 0;
  /// Read to its end while sending; null when there is no body.
  body_reader* body = nullptr;
  /// Trailer fields to send after a chunked body; read once `body` ended. May be null.
  const header_map* trailer = nullptr;
  /// Bound on the response head, on each stall of a body write or read; 0 = forever.
  std::chrono::milliseconds response_timeout{0};
  /// A shorter bound on the response head alone (a retry policy's per-try timeout); 0 =
  /// response_timeout. Body stalls keep response_timeout.
  std::chrono::milliseconds head_timeout{0};
  /// The bound the response head is waited for with.
  std::chrono::milliseconds head_deadline() const noexcept {
    if (head_timeout.count() > 0 &&
        (response_timeout.count() == 0 || head_timeout < response_timeout))
      return head_timeout;
    return response_timeout;
  }
  /// Called for every 1xx but 101 before the final response (spec 38). An error stops the
  /// exchange.
  std::function<asio::awaitable<error_code>(int status, const header_map& fields)> on_informational;
  /// The inbound request this one was made from, if any: what a load balancer may hash on.
  const request* inbound = nullptr;
  /// True when `Host` names the upstream's own authority (the proxy's default, spec 8): a
  /// transport that sends the request to another address (a load-balanced endpoint) sets
  /// Host to that address's authority.
  bool host_follows_endpoint = false;

  // The URL as parts (Go's ProxyRequest.Out.URL), for a rewrite hook: `target` stays the one
  // place the path and query live, so a rewrite never splits or rebuilds a query by hand.

  /// The path of `target`, still percent-encoded ("/base/dir").
  std::string_view path() const noexcept;
  /// The raw query of `target`, without '?' ("" when there is none).
  std::string_view raw_query() const noexcept;
  /// Replaces the path (raw, must start with '/'), keeping the query.
  void set_path(std::string_view raw_path);
  /// Replaces the query (raw, without '?'; "" removes it), keeping the path.
  void set_raw_query(std::string_view raw_query);
  /// Go's ProxyRequest.SetURL: sends the request to `base` (scheme, host, port; `address`
  /// cleared), with base's path joined to the inbound path by one '/' ("/api" + "/x" →
  /// "/api/x", spec 1-2), base's query then the inbound one (spec 3), and Host set to base's
  /// authority. The inbound path and query are those of `inbound` (request::target), or of
  /// this request's `target` when there is no inbound request.
  void set_url(const upstream_url& base);
  /// Go's ProxyRequest.SetXForwarded: X-Forwarded-For is the inbound request's (when its peer
  /// is trusted, request::forwarded_trusted) plus the client's address, X-Forwarded-Host the
  /// inbound Host, X-Forwarded-Proto "http" or "https", whatever the proxy's `forwarded` mode
  /// did before. Does nothing without `inbound`.
  void set_xforwarded();
};

/// A response head from upstream, with its body still on the wire. Destroying it releases the
/// upstream connection: back to the pool if the body was read to its end and the connection
/// may be reused, closed otherwise (a client that left never returns a half-read connection).
class upstream_response {
 public:
  virtual ~upstream_response() = default;
  int status = 0;
  std::string reason;
  header_map header;
  /// Declared length, or -1 when chunked or close-delimited.
  std::int64_t content_length = -1;
  /// Filled when body() reached its end on a chunked response.
  header_map trailer;
  /// "ip:port" of the upstream that answered.
  std::string peer;
  /// Reads the body; ends at once for HEAD, 204, 304.
  virtual body_reader& body() = 0;
  /// After a 101, the upstream connection as a raw stream; null otherwise.
  virtual byte_stream* upgraded() = 0;

  /// HTTP/2 is full duplex: the request body may still be streaming upstream while the
  /// response is read (gRPC). True while the transport still reads the request's body_reader.
  virtual bool request_pending() const noexcept { return false; }
  /// Stops sending the request body and waits until the transport no longer touches it. Await
  /// it (when request_pending()) before the request's body_reader goes away; the proxy does.
  virtual asio::awaitable<void> release() { co_return; }
};

struct round_trip_result {
  round_trip_result() = default;
  round_trip_result(std::unique_ptr<upstream_response> r, proxy_error e = {})
      : response(std::move(r)), error(std::move(e)) {}

  std::unique_ptr<upstream_response> response;  // set on success
  proxy_error error;                            // set on failure
  /// Attempts made: 1, more after retries to other endpoints.
  std::uint32_t tries = 1;
  /// With more than one try: every endpoint tried, in order, ", "-separated (nginx's
  /// $upstream_addr); empty otherwise.
  std::string tried;
};

class transport {
 public:
  virtual ~transport() = default;
  /// Sends `req` (its body too) and reads the response head. Cancellation (the client left)
  /// aborts the exchange and closes the connection.
  virtual asio::awaitable<round_trip_result> round_trip(outbound_request& req) = 0;
};

/// TLS towards https:// upstreams. The certificate chain is verified against `ca_file` (or
/// the system store) and the certificate must name `server_name` (or the URL's host).
struct upstream_tls_options {
  /// PEM bundle of trusted CAs; empty = the system store (OpenSSL's default paths).
  std::string ca_file;
  /// Name sent as SNI and verified in the certificate; empty = the URL's host.
  std::string server_name;
  /// Tests only: accept any certificate. make_transport logs a warning.
  bool insecure_skip_verify = false;
  /// Client certificate chain and key (PEM) for upstreams that ask for one (mTLS).
  std::string cert_file;
  std::string key_file;
};

/// "" if `o` can be loaded (files readable, key matches certificate), else what is wrong,
/// naming the file: for start-up checks.
std::string check_upstream_tls(const upstream_tls_options& o);

/// HTTP/2 towards upstreams (docs/http2.md).
enum class http2_mode {
  never,      // HTTP/1.1 only
  automatic,  // https: ALPN offers h2 and http/1.1, the upstream chooses; http: HTTP/1.1
  always,     // h2 only: ALPN h2 on https, prior knowledge (h2c) on http
};

struct http1_transport_options {
  /// Resolving, connecting and the TLS handshake; expiry → 504 (a refused connect → 502).
  std::chrono::milliseconds connect_timeout{5'000};
  /// Go's Transport.ResponseHeaderTimeout: from the request sent to the whole response head
  /// received; expiry → 504. 0 = the request's own bound only (reverse_proxy_options::
  /// response_timeout). The shorter of the two applies; body stalls are not bounded by this.
  std::chrono::milliseconds response_header_timeout{0};
  /// How long an idle pooled connection is kept.
  std::chrono::milliseconds idle_timeout{90'000};
  /// Idle connections kept per upstream address, per worker.
  std::size_t max_idle_per_host = 64;
  std::size_t max_response_header_bytes = 64 * 1024;
  /// For https:// requests (outbound_request::scheme).
  upstream_tls_options tls;
  /// HTTP/2: requests share one connection, up to `max_concurrent_streams` at a time (or the
  /// upstream's lower limit), a new connection when full. Requests that ask for a protocol
  /// upgrade always use HTTP/1.1 (with `always`: refused, 501).
  /// The binary's default too (docs/config.md, upstreams[].http2: auto).
  http2_mode http2 = http2_mode::automatic;
  std::uint32_t max_concurrent_streams = 100;
  /// PROXY protocol version (1 or 2) written on every new connection before anything else (TLS
  /// included), naming the inbound request's client (request::remote_addr) and the address it
  /// reached (local_addr); 0 = off. A connection made without an inbound request (a health
  /// check) says v1 UNKNOWN / v2 LOCAL. Since a connection then speaks for one client, pooled
  /// connections (HTTP/1.1 and HTTP/2) are reused only for requests of that same client
  /// address pair: the pool key includes it.
  std::uint8_t send_proxy_protocol = 0;
};

/// The name the options go by now that the transport speaks HTTP/2 as well.
using transport_options = http1_transport_options;

/// The default transport: HTTP/1.1 over TCP with keep-alive pooling, and HTTP/2 as
/// `http2` says. Each worker thread has its own pools (no locks): connections are never shared
/// across threads.
std::shared_ptr<transport> make_transport(transport_options opts = {});
/// The former name of make_transport (it made HTTP/2 connections too); kept for embedders.
std::shared_ptr<transport> make_http1_transport(http1_transport_options opts = {});

}  // namespace trafficcop
