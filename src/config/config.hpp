// SPDX-License-Identifier: MIT
// The YAML configuration as plain structs, and the loader that validates it.
//
// yaml-cpp throws; this module catches at its boundary and reports every problem with the YAML
// path it concerns (`routes[2].upstream: no upstream named "api"`). Unknown keys are errors.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
};

/// TLS on a listener: the first certificate is the default, others are chosen by SNI.
struct listener_tls {
  struct certificate {
    std::string cert_file;
    std::string key_file;
  };
  std::vector<certificate> certificates;  // empty = plain TCP
  std::string min_version = "1.2";        // "1.2" or "1.3"
  std::string ciphers;                    // TLS 1.2 cipher list; "" = ECDHE + AEAD only
  std::string client_ca_file;             // mTLS: accepted client CAs; "" = no client certs
  bool require_client_cert = true;        // client_auth: require (true) or optional
  /// Strict-Transport-Security (RFC 6797) on this listener's responses.
  struct hsts_policy {
    std::chrono::seconds max_age{365 * 24 * 3600};  // "365d"
    bool include_subdomains = false;
    bool preload = false;
  };
  std::optional<hsts_policy> hsts;  // null: the header is not added
};

/// HTTP/2 on a listener (docs/http2.md).
struct listener_http2 {
  bool enabled = true;  // TLS: offer h2 in ALPN
  bool h2c = false;     // plain: accept the h2 preface (prior knowledge)
  std::uint32_t max_concurrent_streams = 100;
  std::uint64_t initial_window_size = 256 * 1024;  // per stream
  std::uint64_t connection_window_size = 1024 * 1024;
  std::uint64_t max_header_list_size = 0;  // 0 = limits.max_header_bytes
};

struct listener {
  std::string address = "127.0.0.1:8080";  // host:port; [v6]:port
  listener_tls tls;
  listener_http2 http2;
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
};

struct upstream {
  std::string name;
  std::string url;          // http(s)://host[:port][/base/path][?query]
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
};

struct route {
  std::string host;  // exact Host match (port ignored, case-insensitive); "" = any
  std::string path_prefix = "/";
  std::string upstream;                          // name of an upstreams[] entry
  std::optional<host_policy> host_header;        // overrides the global setting
  std::optional<target_policy> upstream_target;  // overrides the global setting
  header_edits request_headers;
  header_edits response_headers;
  std::optional<duration> flush_interval;  // -1ms = flush every write
};

struct limits {
  std::uint64_t max_header_bytes = 16 * 1024;  // request line + fields; over → 431
  std::uint32_t max_headers = 100;             // field lines; over → 431
  std::uint64_t max_uri_bytes = 8 * 1024;      // request-target; over → 414
  std::uint64_t max_body_bytes = 0;            // 0 = unlimited; over → 413
  std::uint32_t max_connections = 10000;       // client connections per worker; then accept waits
};

struct timeouts {
  duration read_header{10000};  // first byte to end of head; slowloris guard → 408 / close
  duration idle{60000};         // keep-alive idle between client requests
  duration read_body{60000};    // max gap between client body bytes
  duration drain{10000};        // graceful shutdown: how long in-flight requests may finish
};

struct access_log {
  std::string path = "-";  // "-" = stdout, "off" = disabled, or a file path
  log_format format = log_format::json;
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
  host_policy host_header = host_policy::rewrite;
  forwarded_policy forwarded = forwarded_policy::append;
  target_policy upstream_target = target_policy::normalized;
  underscore_policy headers_with_underscores = underscore_policy::drop;
  std::optional<duration> flush_interval;  // default for routes
};

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
