// SPDX-License-Identifier: MIT
// The YAML configuration as plain structs, and the loader that validates it.
//
// yaml-cpp throws; this module catches at its boundary and reports every problem with the YAML
// path it concerns (`routes[2].upstream: no upstream named "api"`). Unknown keys are errors.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace re2 {
class RE2;
}

namespace trafficcop::config {

using duration = std::chrono::milliseconds;

/// Parses "250ms", "3s", "1m", "1h", "1.5s", "0" (Go-like units: ms, s, m, h). Negative values
/// are allowed only where the caller says so ("-1" or "-1ms" for flush_interval). Returns
/// nullopt on a malformed value.
std::optional<duration> parse_duration(std::string_view text);

/// Parses a byte size: "16384", "16k", "16KiB", "1m", "1MiB", "1g" (k = 1024).
std::optional<std::uint64_t> parse_size(std::string_view text);

enum class host_policy { rewrite, keep };
enum class forwarded_policy { append, replace, off };
enum class log_format { json, combined };
/// What the upstream receives as the request-target's path.
enum class target_policy {
  normalized,  // dot segments resolved, escaped unreserved bytes decoded (what routes match)
  raw,         // the bytes the client sent
};
/// Request fields named with '_': see trafficcop::underscore_fields.
enum class underscore_policy { drop, keep, reject };

struct header_edits {
  /// Replace (or create) these fields: name → value, in file order.
  std::vector<std::pair<std::string, std::string>> set;
  /// Append these lines.
  std::vector<std::pair<std::string, std::string>> add;
  /// Remove these fields (case-insensitive names).
  std::vector<std::string> remove;

  bool operator==(const header_edits&) const = default;
};

/// Strict-Transport-Security on a TLS listener. At namespace level: clang cannot default-
/// construct a nested struct with member initialisers inside its enclosing class (std::optional).
struct hsts_policy {
  std::chrono::seconds max_age{365 * 24 * 3600};  // "365d"
  bool include_subdomains = false;
  bool preload = false;

  bool operator==(const hsts_policy&) const = default;
};

/// TLS on a listener: the first certificate is the default, others are chosen by SNI.
struct listener_tls {
  struct certificate {
    std::string cert_file;
    std::string key_file;
    bool operator==(const certificate&) const = default;
  };
  std::vector<certificate> certificates;  // empty = plain TCP
  std::string min_version = "1.2";        // "1.2" or "1.3"
  std::string ciphers;                    // TLS 1.2 cipher list; "" = ECDHE + AEAD only
  std::string client_ca_file;             // mTLS: accepted client CAs; "" = no client certs
  bool require_client_cert = true;        // client_auth: require (true) or optional
  /// Strict-Transport-Security (RFC 6797) on this listener's responses.
  using hsts_policy = config::hsts_policy;
  std::optional<hsts_policy> hsts;  // null: the header is not added

  bool operator==(const listener_tls&) const = default;
};

/// HTTP/2 on a listener (docs/http2.md).
struct listener_http2 {
  bool enabled = true;  // TLS: offer h2 in ALPN
  bool h2c = false;     // plain: accept the h2 preface (prior knowledge)
  std::uint32_t max_concurrent_streams = 100;
  std::uint64_t initial_window_size = 256 * 1024;  // per stream
  std::uint64_t connection_window_size = 1024 * 1024;
  std::uint64_t max_header_list_size = 0;  // 0 = limits.max_header_bytes

  bool operator==(const listener_http2&) const = default;
};

struct listener {
  std::string name;                        // optional; routes[].listeners refer to it
  std::string address = "127.0.0.1:8080";  // host:port; [v6]:port
  listener_tls tls;
  listener_http2 http2;
  /// Every connection starts with a PROXY protocol header (v1 or v2) naming the client;
  /// without a valid one it is closed (docs/config.md#listenersproxy_protocol).
  bool proxy_protocol = false;

  bool operator==(const listener&) const = default;
};

/// HTTP/2 towards an upstream: auto = ALPN on https (h2 if offered), HTTP/1.1 on http;
/// always = h2 (prior knowledge on http); never = HTTP/1.1.
enum class upstream_http2 { automatic, always, never };

/// TLS towards an https:// upstream. The certificate chain and the host name are verified
/// unless insecure_skip_verify (tests only; the binary warns at start).
struct upstream_tls {
  std::string ca_file;      // PEM bundle of trusted CAs; "" = the system store
  std::string server_name;  // SNI and the name verified; "" = the URL's host
  bool insecure_skip_verify = false;
  std::string cert_file;  // client certificate chain (mTLS), with key_file
  std::string key_file;

  bool operator==(const upstream_tls&) const = default;
};

/// One address of an upstream, from `url:` or an `endpoints:` entry.
struct endpoint {
  std::string url;
  std::string host;  // without brackets
  std::uint16_t port = 80;
  std::uint32_t weight = 1;

  bool operator==(const endpoint&) const = default;
};

enum class lb_policy { round_robin, least_request, peak_ewma, ring_hash, random };

/// ring_hash's key: client_ip | path | header:NAME | cookie:NAME.
struct hash_key {
  enum class kind { client_ip, path, header, cookie } what = kind::client_ip;
  std::string name;

  bool operator==(const hash_key&) const = default;
};

/// Passive health (on by default): see docs/config.md#upstreamsoutlier_detection.
struct outlier_detection {
  std::uint32_t consecutive_failures = 5;  // 0 = off
  duration ejection_time{30000};           // doubled on each repeat, capped at 5 min
  std::uint32_t max_ejection_percent = 50;

  bool operator==(const outlier_detection&) const = default;
};

struct retries {
  std::uint32_t attempts = 1;  // extra tries after the first; 0 = none
  /// connect_failure, refused_stream, reset_before_response, 502, 503, 504.
  std::vector<std::string> on = {"connect_failure", "refused_stream"};
  duration per_try_timeout{0};  // 0 = the upstream's response_timeout
  std::uint32_t budget_percent = 20;
  std::uint32_t budget_min_per_second = 3;
  duration backoff_base{25};
  duration backoff_max{250};

  bool operator==(const retries&) const = default;
};

/// Active health checks (off when absent): see docs/config.md#upstreamshealth_check.
struct health_check {
  std::string path = "/healthz";  // GET; or tcp: a connect alone
  bool tcp = false;
  duration interval{2000};
  duration timeout{1000};
  std::uint32_t healthy_threshold = 2;
  std::uint32_t unhealthy_threshold = 3;
  int expected_min = 200;  // expected_status: "200-399" or "200"
  int expected_max = 399;

  bool operator==(const health_check&) const = default;
};

struct circuit_breaker {
  std::uint32_t max_connections = 1024;  // 0 = no limit
  std::uint32_t max_pending = 256;
  std::uint32_t max_requests = 1024;

  bool operator==(const circuit_breaker&) const = default;
};

/// DNS service discovery (off when absent): see docs/config.md#upstreamsresolve.
struct resolve {
  duration refresh{30000};
  std::vector<std::string> servers;  // "ip" or "ip:port", "[v6]:port"; empty = the system's
  duration timeout{2000};

  bool operator==(const resolve&) const = default;
};

struct upstream {
  std::string name;
  std::string url;          // http(s)://host[:port][/base/path][?query] (the first endpoint's)
  std::string scheme;       // filled by the loader from url: "http" or "https"
  std::string host;         // from url, without brackets
  std::uint16_t port = 80;  // from url (default by scheme)
  std::string base_path;    // from url, raw (may be empty)
  std::string base_query;   // from url, raw, without '?'
  duration connect_timeout{5000};
  duration response_timeout{60000};  // response headers; expiry → 504
  duration idle_timeout{90000};      // pooled keep-alive connection
  std::uint32_t max_idle = 64;       // idle pooled connections per worker
  upstream_tls tls;                  // used when scheme is https
  upstream_http2 http2 = upstream_http2::automatic;
  std::uint32_t max_concurrent_streams = 100;  // per h2 connection (and the peer's limit)
  std::vector<endpoint> endpoints;             // from url or endpoints; never empty once loaded
  lb_policy load_balancing = lb_policy::round_robin;
  std::optional<hash_key> hash_on;  // ring_hash only (default client_ip)
  outlier_detection outlier;
  std::uint32_t panic_threshold = 0;  // percent; 0 = off
  struct retries retries;
  std::optional<struct health_check> health_check;
  circuit_breaker breaker;
  std::optional<struct resolve> resolve;
  /// PROXY protocol header on each new connection: 0 = none, 1 = v1 (text), 2 = v2 (binary).
  std::uint8_t send_proxy_protocol = 0;

  bool operator==(const upstream&) const = default;
};

/// A regular expression compiled at load (RE2: linear-time matching, so a hostile path or
/// header cannot make a route lookup backtrack; docs/config.md). Shared, never changed.
using regex_ptr = std::shared_ptr<const re2::RE2>;

/// What a request header or query parameter must hold: `value` exactly, or, when `regex` is
/// set, a full match of it.
struct value_match {
  std::string value;
  std::string regex_source;  // as written in the file, for messages and duplicate checks
  regex_ptr regex;
};

/// `redirect:`: answer with a redirect instead of proxying.
struct redirect {
  std::string to;  // template: {scheme}, {host} (no port), {path} (raw path and query)
  int status = 301;
};

/// `respond:`: answer with a fixed response instead of proxying.
struct respond {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // set on the response, in order
};

struct route {
  std::string name;  // optional, unique: the `route` label of metrics (else its index)
  /// Host (port ignored, case-insensitive): an exact name, "*.suffix" (a wildcard: any name
  /// ending in ".suffix"), or "" for any.
  std::string host;
  /// Exactly one path matcher is in use: `path` (exact), `path_regex` (full match), or
  /// `path_prefix` (whole segments; "/" unless another kind is given, then "").
  std::string path_prefix = "/";
  std::optional<std::string> path;
  std::optional<std::string> path_regex;
  regex_ptr path_re;                                         // compiled path_regex
  std::vector<std::string> methods;                          // any of these; empty = any
  std::vector<std::pair<std::string, value_match>> headers;  // all must hold
  std::vector<std::pair<std::string, value_match>> query;    // all must hold
  std::vector<std::string> listeners;                        // listener names; empty = all
  std::string upstream;  // name of an upstreams[] entry; "" for redirect/respond routes
  std::optional<struct redirect> redirect;
  std::optional<struct respond> respond;
  bool strip_prefix = false;   // drop the matched path_prefix from the path sent upstream
  std::string prefix_rewrite;  // replace the matched path_prefix with this; "" = none
  std::string host_rewrite;    // Host sent upstream; "" = per host_header
  std::optional<host_policy> host_header;        // overrides the global setting
  std::optional<target_policy> upstream_target;  // overrides the global setting
  header_edits request_headers;
  header_edits response_headers;
  std::optional<duration> flush_interval;          // -1ms = flush every write
  std::optional<std::uint64_t> request_buffering;  // overrides the global setting
  std::vector<std::string> rate_limits;            // names of rate_limits[] entries, all apply
};

struct limits {
  std::uint64_t max_header_bytes = 16 * 1024;    // request line + fields; over → 431
  std::uint32_t max_headers = 100;               // field lines; over → 431
  std::uint64_t max_uri_bytes = 8 * 1024;        // request-target; over → 414
  std::uint64_t max_body_bytes = 0;              // 0 = unlimited; over → 413
  std::uint32_t max_connections = 10000;         // client connections per worker; then accept waits
  std::uint32_t max_connections_per_client = 0;  // per client address, all workers; 0 = no limit

  bool operator==(const limits&) const = default;
};

struct timeouts {
  duration read_header{10000};  // first byte to end of head; slowloris guard → 408 / close
  duration idle{60000};         // keep-alive idle between client requests
  duration read_body{60000};    // max gap between client body bytes
  duration drain{10000};        // graceful shutdown: how long in-flight requests may finish
  /// After a live reload, how long requests started before it may go on (then they are closed:
  /// HTTP/1 connection closed, HTTP/2 stream reset); none = until they end.
  std::optional<duration> drain_on_reload;

  bool operator==(const timeouts&) const = default;
};

/// An access-log field (docs/config.md, "access_log"). `proto` and `protocol` are one value
/// under two names: `proto` is the JSON key of the default line, `protocol` the name.
enum class log_field {
  time,
  id,
  trace_id,
  span_id,
  remote,
  host,
  method,
  target,
  proto,
  protocol,
  status,
  bytes_in,
  bytes_out,
  duration_ms,
  upstream,
  endpoint,
  upstream_status,
  upstream_ms,
  tries,
  error,
  user_agent,
  referer,
  tls_version,
  tls_client,
  rate_limit
};
/// The field's name in `fields:` and its JSON key.
std::string_view name(log_field f) noexcept;

struct access_log {
  std::string path = "-";  // "-" = stdout, "off" = disabled, or a file path
  log_format format = log_format::json;
  /// json: the keys of a line, in order; combined: `name=value` pairs added after the fixed
  /// part. Empty: json writes its default line, combined nothing more.
  std::vector<log_field> fields;

  bool operator==(const access_log&) const = default;
};

/// The request id: read from the client, sent upstream, returned to the client.
struct request_id {
  std::string header = "X-Request-Id";
  bool trust_incoming = true;  // keep a sane client value (http::is_sane_request_id)
  bool upstream = true;        // set `header` on the request sent upstream
  bool response = true;        // set `header` on the response to the client
};

/// W3C Trace Context: continue a valid traceparent, start a trace otherwise.
struct trace_context {
  bool enabled = true;
  bool sampled = true;  // the sampled flag of traces started here
};

/// The admin listener (off when absent): see docs/config.md#admin.
struct admin {
  std::string address;             // host:port
  std::vector<std::string> allow;  // CIDRs of the clients it answers; required off loopback
};

/// One part of a rate limit's key (issue 11): the values are joined into the bucket's name.
struct rate_key_part {
  enum class kind { client_ip, header, route, upstream } what = kind::client_ip;
  std::string header;  // kind::header: the field name, lower case

  bool operator==(const rate_key_part&) const = default;
};

/// A named rate limit: `count` requests per `per`, up to `burst` at once (GCRA).
struct rate_limit {
  std::string name;
  std::vector<rate_key_part> key = {rate_key_part{}};
  std::uint64_t count = 0;  // rate: count / per ("100/s" → 100, 1s)
  duration per{1000};       // 1s, 1m or 1h
  std::uint32_t burst = 0;  // ≥ 1 once loaded; not in the file: count (one period's worth)
  bool global = false;      // scope: local (this instance) or global (through redis)

  bool operator==(const rate_limit&) const = default;
};

/// The store of global rate limits.
struct redis {
  std::string address = "127.0.0.1:6379";  // host:port, [v6]:port, or unix:/path
  std::string username;                    // ACL user; "" = default
  std::string password_file;               // first line is the password; or:
  std::string password_env;                // the name of an environment variable holding it
  duration timeout{50};                    // slower counts as a failure
  bool fail_open = true;                   // failure_mode: open (allow, count) | closed (503)

  bool operator==(const redis&) const = default;
};

struct config {
  std::uint32_t workers = 0;  // 0 = one per core
  std::vector<listener> listeners;
  std::vector<upstream> upstreams;
  std::vector<route> routes;
  // `struct` keeps the type name usable: g++ rejects a member that changes its type's meaning.
  struct limits limits;
  struct timeouts timeouts;
  struct access_log access_log;
  struct request_id request_id;
  struct trace_context trace_context;
  host_policy host_header = host_policy::rewrite;
  forwarded_policy forwarded = forwarded_policy::append;
  target_policy upstream_target = target_policy::normalized;
  underscore_policy headers_with_underscores = underscore_policy::drop;
  std::optional<duration> flush_interval;  // default for routes
  std::optional<struct admin> admin;
  /// Request bodies of declared length up to this are read whole before the upstream is
  /// connected (issue 14.5); 0 = stream every body. At most max_request_buffering.
  std::uint64_t request_buffering = 64 * 1024;
  /// Peers (CIDRs, or addresses) whose X-Forwarded-For is believed (nginx's set_real_ip_from
  /// with real_ip_recursive on); as written in the file, each checked by the loader.
  std::vector<std::string> trusted_proxies;
  std::vector<rate_limit> rate_limits;
  std::optional<struct redis> redis;  // required when a rate limit is global
};

/// Buffered bodies are held in memory, per request: larger ones are streamed.
inline constexpr std::uint64_t max_request_buffering = 1024 * 1024;

struct load_result {
  std::optional<config> cfg;        // set when errors is empty
  std::vector<std::string> errors;  // "routes[2].upstream: no upstream named \"api\""
};

/// Loads and validates a YAML file. Never throws.
load_result load_file(const std::string& path);
/// Same, from text (the path in messages is `name`).
load_result load_string(std::string_view yaml, std::string_view name = "<config>");

/// One line for `trafficcop check`: "ok: 1 listener, 2 upstreams, 3 routes".
std::string summary(const config& cfg);

}  // namespace trafficcop::config
