// SPDX-License-Identifier: MIT
// trafficcop::server: runs a handler for every HTTP/1.1 and HTTP/2 request on its listeners.
//
// Thread per core, shared nothing (DESIGN.md §2): each worker thread has its own io_context and
// its own accepting socket on every listen address (SO_REUSEPORT, the kernel spreads the
// connections). A connection lives on one worker for its whole life, so handlers never need
// locks for per-connection or per-worker state.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "trafficcop/http.hpp"
#include "trafficcop/ip_network.hpp"

namespace trafficcop {

/// A certificate chain and its private key, PEM files.
struct tls_certificate {
  std::string cert_file;
  std::string key_file;
};

/// Strict-Transport-Security (RFC 6797) on a TLS listener's responses:
/// `max-age=N[; includeSubDomains][; preload]`.
struct listener_hsts {
  /// How long browsers remember to use HTTPS only; 0 tells them to forget (RFC 6797 §6.1.1).
  std::chrono::seconds max_age{365 * 24 * 3600};
  bool include_subdomains = false;
  bool preload = false;  // asks to be in the browsers' built-in lists (hstspreload.org)
};

/// TLS on a listener. The first certificate is the default; another is chosen when the
/// client's SNI name is one it is valid for. ALPN selects h2 (see listener_http2) or http/1.1.
struct listener_tls {
  std::vector<tls_certificate> certificates;  // empty = plain TCP
  std::string min_version = "1.2";            // "1.2" or "1.3"
  /// OpenSSL cipher list for TLS 1.2, in the server's order of preference. "" = ECDHE with
  /// AES-GCM or ChaCha20-Poly1305 only (Mozilla's "intermediate" profile without DHE). TLS 1.3
  /// suites are OpenSSL's either way.
  std::string ciphers;
  /// mTLS: PEM bundle of the CAs whose client certificates are accepted; "" = none asked.
  std::string client_ca_file;
  /// With client_ca_file: refuse clients without a certificate (else they may go without).
  bool require_client_cert = true;
  /// Set: every final response on this listener, HTTP/1.1 and HTTP/2, carries
  /// Strict-Transport-Security, unless the handler set that field itself (its value wins, so
  /// one service may send its own, e.g. max-age=0). Empty: the server adds none.
  std::optional<listener_hsts> hsts;
};

/// HTTP/2 on a listener (docs/http2.md).
struct listener_http2 {
  /// TLS listeners: offer "h2" in ALPN (preferred over http/1.1).
  bool enabled = true;
  /// Plain listeners: serve HTTP/2 to clients that start with its preface (prior knowledge).
  bool h2c = false;
  std::uint32_t max_concurrent_streams = 100;
  std::uint32_t initial_window_size = 256 * 1024;  // per stream, what a client may send ahead
  std::uint32_t connection_window_size = 1024 * 1024;
  /// Decoded request header list bound (SETTINGS_MAX_HEADER_LIST_SIZE); 0 = max_header_bytes.
  std::uint32_t max_header_list_size = 0;
};

/// "" if `t` loads: files readable, each key matches its certificate, no certificate expired
/// or not yet valid; else what is wrong, naming the file.
std::string check_listener_tls(const listener_tls& t);

struct server_options {
  /// "host:port" or "[v6]:port"; port 0 picks a free port (see local_endpoints()).
  std::vector<std::string> listen = {"127.0.0.1:8080"};
  /// TLS per listen address, by index in `listen`; a missing or empty entry is plain TCP.
  std::vector<listener_tls> tls;
  /// HTTP/2 per listen address, by index in `listen`; a missing entry takes the defaults.
  std::vector<listener_http2> http2;
  /// Worker threads; 0 = one per core.
  unsigned workers = 0;
  /// PROXY protocol (v1 or v2, HAProxy's proxy-protocol.txt) per listen address, by index in
  /// `listen`; a missing entry is off. On: every connection must start with a header, read
  /// within read_header_timeout and at most 4 KiB, else it is closed; the client it names is
  /// request::remote_addr/peer_addr. The header comes before TLS.
  std::vector<bool> proxy_protocol;
  /// Peers whose X-Forwarded-For is believed: for a request from one of them, remote_addr is
  /// the first X-Forwarded-For hop from the right that is not in this list (nginx's
  /// real_ip_recursive) and request::forwarded_trusted is true; from any other peer it is
  /// false. Empty: every peer's X-Forwarded-For is passed on but none sets remote_addr.
  /// The peer is the PROXY header's source on a proxy_protocol listener.
  std::vector<ip_network> trusted_proxies;

  std::size_t max_header_bytes = 16 * 1024;  // → 431
  std::size_t max_headers = 100;             // → 431
  std::size_t max_uri_bytes = 8 * 1024;      // → 414
  std::uint64_t max_body_bytes = 0;          // 0 = unlimited; → 413
  /// Request fields named with '_' (request trailers too): dropped unless told otherwise.
  underscore_fields headers_with_underscores = underscore_fields::drop;
  /// Open client connections per worker; at the limit the worker stops accepting until one
  /// closes (the kernel's backlog holds the rest), so descriptors and memory stay bounded.
  /// Independently, start() raises RLIMIT_NOFILE's soft limit to the hard one and derives a
  /// descriptor budget per worker (connection_budget()): at that many connections new ones
  /// are shed at once (503 on plain listeners, closed on TLS ones) so that requests in flight
  /// never fail for want of a descriptor.
  std::size_t max_connections = 10'000;
  /// Open client connections from one address (the TCP peer), across all workers; 0 = no
  /// limit. One more is closed right after accept, before TLS (issue 11).
  std::uint32_t max_connections_per_client = 0;

  /// From the first byte of a request to the end of its head; expiry → 408 and close.
  std::chrono::milliseconds read_header_timeout{10'000};
  /// Keep-alive idle time between requests, and the longest a write to a client may stall.
  std::chrono::milliseconds idle_timeout{60'000};
  /// The longest gap between two reads of a request body.
  std::chrono::milliseconds read_body_timeout{60'000};

  /// Listening sockets to serve instead of binding new ones (systemd socket activation, the
  /// binary upgrade: LISTEN_FDS). One whose local address equals a listen entry's serves that
  /// entry: the inherited sockets of an entry are spread over the workers (a worker left
  /// without one accepts on a duplicate of one, so no socket is added to or taken from the
  /// port's SO_REUSEPORT group and no queued connection is lost). start() owns those it uses;
  /// inherited_unused() gives back the others.
  std::vector<int> inherited_fds;
};

/// A socket a server accepts on (server::listening_sockets()).
struct listening_socket {
  std::size_t listener = 0;  // index in server_options::listen
  int fd = -1;               // owned by the server
};

/// Connection counts of one listener, summed over workers (metrics).
struct listener_counters {
  std::uint64_t accepted = 0;
  std::uint64_t open_http1 = 0;  // open now, HTTP/1.x (TLS handshake done, if any)
  std::uint64_t open_http2 = 0;
  std::uint64_t tls_handshakes_ok = 0;
  std::uint64_t tls_handshakes_failed = 0;
};

/// Graceful-shutdown and listener state of a running server; all members are thread-safe.
class server {
 public:
  server(server_options opts, handler h);
  ~server();
  server(const server&) = delete;
  server& operator=(const server&) = delete;

  /// Binds every listener and starts the workers. On failure nothing keeps running and the
  /// error names the address ("listen 127.0.0.1:80: Permission denied").
  [[nodiscard]] error_code start(std::string& what);

  /// Re-reads the certificate files of every TLS listener (SIGHUP in the binary). New
  /// connections get the new certificates; open ones keep theirs. If any file fails to load,
  /// nothing changes and `what` names it.
  [[nodiscard]] error_code reload_tls(std::string& what);

  /// Reload of the listeners (keyed by address) to those of `next.listen`, with their `tls`,
  /// `http2` and `proxy_protocol` (the rest of `next` is ignored). A listener whose address
  /// is kept is untouched (its settings must be the same, else nothing changes); a new one is
  /// bound (all or nothing: on a failure nothing changes and `what` names the address); a
  /// removed one stops accepting and its connections close after their request in flight.
  /// `activate` runs once the new sockets listen and before they accept, with the id of each
  /// `next.listen` entry: request::listener of the connections it will take. A kept listener
  /// keeps its id; a new one gets a number never used before. Start-up ids are the indexes in
  /// server_options::listen. If `activate` returns false nothing changes.
  [[nodiscard]] error_code update_listeners(
      const server_options& next, std::string& what,
      const std::function<bool(const std::vector<std::size_t>& ids)>& activate);

  /// The bound addresses, one per listen entry (useful with port 0), the current ones after a
  /// reload changed the listeners.
  std::vector<asio::ip::tcp::endpoint> local_endpoints() const;

  /// Stops accepting, lets in-flight requests finish for up to `drain`, then closes every
  /// connection. Idle keep-alive connections close at once. Returns immediately.
  void shutdown(std::chrono::milliseconds drain);

  /// At `deadline`, closes what still runs of the requests received before `started_before`
  /// (a live reload's drain_on_reload): an HTTP/1.1 connection serving one (an upgraded
  /// tunnel included) is closed as shutdown()'s deadline closes it; an HTTP/2 stream is reset
  /// (RST_STREAM CANCEL), its connection and other streams go on. Later requests are
  /// untouched. Returns immediately; each call arms its own timer on every worker.
  void close_started_before(std::chrono::steady_clock::time_point started_before,
                            std::chrono::steady_clock::time_point deadline);

  /// Blocks until every worker has stopped (after shutdown()).
  void wait();

  /// The whole life of a program's server in one call: start(), then serve until SIGINT or
  /// SIGTERM arrives, then shutdown(drain) and wait(). Returns start()'s error (with `what`)
  /// without serving, else {} once every worker stopped. The signals are caught only while
  /// run() runs (an Asio signal_set on the calling thread; its own handlers are restored
  /// after), so call it from the main thread of a program that handles no signals itself.
  [[nodiscard]] error_code run(std::string& what,
                               std::chrono::milliseconds drain = std::chrono::seconds(10));

  /// Client connections per worker that the descriptor limit allows (after start()): at this
  /// many, new connections are shed. Each counts two descriptors (its upstream connection),
  /// beside a reserve and the splice pipes (src/core/fd_budget.hpp).
  std::size_t connection_budget() const noexcept;

  /// Connections open now, summed over workers (for tests and metrics).
  std::size_t open_connections() const;
  /// Per listener id (see update_listeners: the index in server_options::listen unless a
  /// reload changed the listeners; a removed listener's counters stay), after start().
  std::vector<listener_counters> listener_stats() const;
  /// Connections closed at accept for max_connections_per_client.
  std::uint64_t rejected_per_client() const noexcept;

  /// Every accepting socket of every worker, after start() (to pass to a new process).
  std::vector<listening_socket> listening_sockets() const;
  /// The server_options::inherited_fds that start() did not use (the caller closes them).
  std::vector<int> inherited_unused() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace trafficcop
