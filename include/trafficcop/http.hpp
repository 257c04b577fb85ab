// SPDX-License-Identifier: MIT
// The protocol-neutral HTTP model that handlers see: headers, requests, the response writer.
//
// A handler is a coroutine `(response_writer&, request&) -> awaitable<void>`, the C++ shape of
// Go's http.Handler. Handlers compose by wrapping each other (see examples/logging_middleware.cpp).
// Everything here lives on one worker thread; nothing is thread-safe, nothing needs to be.
#pragma once

#include <algorithm>
#include <any>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>

namespace trafficcop {

namespace asio = boost::asio;
using error_code = boost::system::error_code;

/// Case-insensitive ASCII comparison, as field names and tokens are compared (RFC 9110 §5.1).
/// Inline: most calls compare names of different lengths, settled before any byte is read.
inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const unsigned char x = static_cast<unsigned char>(a[i]);
    const unsigned char y = static_cast<unsigned char>(b[i]);
    if (x == y) continue;
    // Different bytes are equal only as the two cases of one letter: they differ in 0x20 alone.
    const unsigned char l = x | 0x20;
    if (l != (y | 0x20) || l < 'a' || l > 'z') return false;
  }
  return true;
}

/// An ordered multimap of header fields. Order and repeated lines are kept as received
/// (spec 18: Set-Cookie lines stay separate); names compare case-insensitively.
///
/// Storage is kept when lines are removed or the map is cleared: the strings of removed lines
/// wait past end() to be reused, so a map reused request after request stops allocating once
/// it has seen the largest head (the proxy's steady state allocates nothing per request).
class header_map {
 public:
  struct field {
    std::string name;
    std::string value;
  };
  using iterator = std::vector<field>::iterator;
  using const_iterator = std::vector<field>::const_iterator;

  header_map() = default;
  header_map(const header_map& o) { *this = o; }
  header_map(header_map&& o) noexcept
      : fields_(std::move(o.fields_)), size_(std::exchange(o.size_, 0)) {}
  /// Copies the lines, reusing this map's storage.
  header_map& operator=(const header_map& o);
  /// Takes the lines; the source is left empty, holding this map's old storage.
  header_map& operator=(header_map&& o) noexcept {
    fields_.swap(o.fields_);
    size_ = std::exchange(o.size_, 0);
    return *this;
  }

  /// Appends a line, keeping any existing ones.
  void add(std::string_view name, std::string_view value);
  /// Replaces every line named `name` with one line.
  void set(std::string_view name, std::string_view value);
  /// Removes every line named `name`; returns how many were removed.
  std::size_t erase(std::string_view name);
  /// Removes every line for which `pred(field)` is true, keeping the order of the rest.
  template <class Pred>
  std::size_t erase_if(Pred pred) {
    auto rest = std::remove_if(begin(), end(), pred);
    auto n = static_cast<std::size_t>(end() - rest);
    size_ -= n;
    return n;
  }
  /// The first value named `name`, if any.
  std::optional<std::string_view> get(std::string_view name) const;
  bool contains(std::string_view name) const { return get(name).has_value(); }
  /// Every value of `name` joined with ", " (RFC 9110 §5.3 list combination).
  std::string joined(std::string_view name) const;
  /// True if any line named `name` has `token` in its comma-separated list.
  bool has_token(std::string_view name, std::string_view token) const;

  void clear() noexcept { size_ = 0; }
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  const_iterator begin() const noexcept { return fields_.begin(); }
  const_iterator end() const noexcept {
    return fields_.begin() + static_cast<std::ptrdiff_t>(size_);
  }
  iterator begin() noexcept { return fields_.begin(); }
  iterator end() noexcept { return fields_.begin() + static_cast<std::ptrdiff_t>(size_); }

 private:
  std::vector<field> fields_;  // [0, size_) are the lines; the rest is spare storage
  std::size_t size_ = 0;
};

/// Result of a read: `n` bytes, or `n == 0` with no error at the end of the body.
struct read_result {
  error_code ec;
  std::size_t n = 0;
};

/// A body that arrives over time. Reads are pulled by the consumer, which is what gives
/// back-pressure: nothing is read from the socket until someone asks.
class body_reader {
 public:
  virtual ~body_reader() = default;
  /// Reads up to `buf.size()` bytes. `{ {}, 0 }` means the body ended cleanly; trailers, if any,
  /// are then available where the owner of the body keeps them.
  virtual asio::awaitable<read_result> read(asio::mutable_buffer buf) = 0;
  /// True if the next read() completes without waiting for the network: bytes are buffered,
  /// or the body has ended. A copier flushes what it wrote only when this is false, so that a
  /// small response leaves in one write while a stalled one is never held back. Conservative
  /// by default.
  virtual bool ready() const noexcept { return false; }
};

/// A raw, full-duplex byte stream: a hijacked client connection or an upgraded upstream one.
class byte_stream {
 public:
  virtual ~byte_stream() = default;
  virtual asio::awaitable<read_result> read_some(asio::mutable_buffer buf) = 0;
  virtual asio::awaitable<error_code> write_all(asio::const_buffer buf) = 0;
  /// Half-close: no more bytes will be written (TCP shutdown(SHUT_WR)); spec 30.
  virtual void shutdown_send() = 0;
  virtual void close() = 0;
};

/// What the server does with a request header field whose name holds '_' ("Transfer_Encoding"):
/// backends that fold '_' into '-' (CGI, many frameworks) would read it as another field.
enum class underscore_fields {
  drop,    // remove the field before any handler sees it (nginx's default)
  keep,    // pass it on (nginx's underscores_in_headers on)
  reject,  // answer 400
};

/// The key of a per-request value of type T (Go's context.WithValue key): its address is the
/// identity, so define one per value as a namespace-scope constant:
///   inline constexpr trafficcop::request_key<std::string> user_key;
template <class T>
struct request_key {};

/// Values that the handlers, middleware and hooks of one request share (Go's context values):
/// an auth middleware sets the user, the proxy's rewrite hook and a logging middleware read
/// it. Cleared by the server before each request; empty costs nothing, and a value costs an
/// allocation only when it is larger than a pointer (std::any's small buffer).
class request_values {
 public:
  template <class T>
  void set(const request_key<T>& key, T value) {
    for (auto& [k, v] : items_)
      if (k == &key) {
        v = std::move(value);
        return;
      }
    items_.emplace_back(&key, std::move(value));
  }
  /// The value set under `key` in this request, or null.
  template <class T>
  const T* get(const request_key<T>& key) const noexcept {
    for (const auto& [k, v] : items_)
      if (k == &key) return std::any_cast<T>(&v);
    return nullptr;
  }
  void clear() noexcept { items_.clear(); }
  bool empty() const noexcept { return items_.empty(); }

 private:
  std::vector<std::pair<const void*, std::any>> items_;
};

/// An inbound request, as parsed and validated by the server. Handlers must treat it as
/// read-only (spec 5): the proxy copies what it sends upstream.
struct request {
  std::string method;
  /// The request-target in origin-form ("/a%2Fb?x=1"), its path normalised by the server
  /// (RFC 3986: dot segments removed, escaped unreserved bytes decoded, "%2F" kept as it is):
  /// what routers match and what the proxy sends upstream. An absolute-form target arrives
  /// here in origin-form, its authority in `host`.
  std::string target;
  /// The origin-form target before its path was normalised: the bytes the client sent
  /// (reverse_proxy_options::raw_target forwards these instead).
  std::string raw_target;
  /// 10 or 11 for HTTP/1.x.
  int version = 11;
  header_map header;
  /// Value of Host (RFC 9112 §3.2), or the authority of an absolute-form target.
  std::string host;
  /// "ip:port" of the client: the TCP peer, or the source a PROXY protocol header named
  /// (listeners with proxy_protocol), or, when that peer is a trusted proxy
  /// (server_options::trusted_proxies), the first untrusted X-Forwarded-For hop, with port 0
  /// when the element had none. What access logs, client_ip hashing and X-Forwarded-For
  /// (replace) see.
  std::string remote_addr;
  /// "ip:port" of the hop the request came from: the TCP peer, or the PROXY header's source.
  /// Empty when the server did not say (requests made by hand): remote_addr then stands for it.
  std::string peer_addr;
  /// Whether the peer's X-Forwarded-For and Forwarded may be passed on (forwarded: append):
  /// true without trusted_proxies (every peer is believed, Go's default) or when the peer is
  /// in it; false otherwise.
  bool forwarded_trusted = true;
  /// "ip:port" the request arrived on (with PROXY protocol: the destination it names).
  std::string local_addr;
  /// The listener it arrived on: its index in server_options::listen, or the id
  /// server::update_listeners gave it once a reload changed the listeners.
  std::size_t listener = 0;
  bool tls = false;
  /// mTLS: the subject of the client certificate the listener verified (RFC 2253, e.g.
  /// "CN=billing,O=Example"); empty when there is none.
  std::string tls_client;
  /// Declared length: -1 when unknown (chunked), 0 when there is no body.
  std::int64_t content_length = 0;
  /// Never null; reads end at once when there is no body.
  body_reader* body = nullptr;
  /// Filled once `body` has been read to its end (chunked trailer section).
  header_map trailer;
  /// Generated or taken from X-Request-Id; unique per request for logs. The binary's request
  /// identity middleware (src/app/request_identity.hpp) may replace it per its config.
  std::string id;
  /// W3C Trace Context, set by the request identity middleware (empty without it): the trace
  /// id (32 lowercase hex digits) and this hop's span id (16), which the traceparent sent
  /// upstream carries as its parent-id.
  std::string trace_id;
  std::string span_id;
  /// The TLS version of the connection as OpenSSL names it ("TLSv1.3"); empty on plain ones.
  std::string_view tls_version;
  std::chrono::steady_clock::time_point received_at{};
  /// Per-request values shared by middleware and hooks (see request_values). Unlike the rest
  /// of the request, handlers may write these.
  mutable request_values values;

  /// True once the client has gone away; awaited operations in the handler are cancelled
  /// at that moment (spec 49).
  bool client_gone() const noexcept { return client_gone_ != nullptr && *client_gone_; }
  /// The request path (target without query), and the raw query without '?'.
  std::string_view path() const noexcept;
  std::string_view raw_query() const noexcept;

 private:
  friend struct request_access;        // the server's connections (src/server/request_access.hpp)
  const bool* client_gone_ = nullptr;  // owned by the connection
};

/// What a handler writes the response through. Headers go out with the first body write or
/// flush, so a handler may change `header()` until then. After the head is sent, an error can
/// only be signalled by `abort()` (spec 47).
class response_writer {
 public:
  virtual ~response_writer() = default;

  /// Header fields of the response not yet sent (and of the next 1xx).
  virtual header_map& header() = 0;
  /// Trailer fields, sent after a chunked body (spec 36/37). Ignored on length-delimited bodies.
  virtual header_map& trailer() = 0;

  /// Sends a 1xx at once with the current `header()` (which is then restored, spec 38), or
  /// records the final status. A final status may be sent only once.
  virtual asio::awaitable<error_code> write_header(int status) = 0;
  /// Writes body bytes (buffered); writes the head first with status 200 if none was given.
  virtual asio::awaitable<error_code> write(asio::const_buffer data) = 0;
  /// Sends everything buffered so far.
  virtual asio::awaitable<error_code> flush() = 0;

  /// Takes the raw connection for a protocol switch after a 101 has been written with
  /// write_header(101) + flush(). Bytes the client sent after the request are delivered first.
  /// The server never touches the connection again. Null if the connection cannot be hijacked.
  virtual byte_stream* hijack() = 0;

  /// Ends the response abnormally: the client connection is closed without completing the body
  /// (no terminating chunk), so the client can tell it from success.
  virtual void abort() = 0;

  /// The final status sent (or 0 while none).
  virtual int status() const noexcept = 0;
  virtual bool head_sent() const noexcept = 0;
  /// Body bytes written so far, not counting framing.
  virtual std::uint64_t bytes_written() const noexcept = 0;

  /// Set by handlers that can tell the log more (the proxy does): upstream address, status and
  /// latency, error reason. Read by access logging middleware.
  struct log_fields {
    std::string upstream_addr;
    int upstream_status = 0;
    std::chrono::microseconds upstream_latency{-1};
    std::string error;
    /// Upstream attempts (0: none was made; more than 1 after retries, `upstream_addr` then
    /// lists every endpoint tried).
    std::uint32_t tries = 0;
    /// "ip:port" of the endpoint whose response was relayed; empty when none answered.
    std::string endpoint;
    /// The rate limit (rate_limits[].name) that refused the request; empty when none did.
    std::string rate_limit;
    /// Back to a new request's values, keeping the strings' storage (servers reuse one per
    /// connection or stream).
    void clear() noexcept {
      upstream_addr.clear();
      upstream_status = 0;
      upstream_latency = std::chrono::microseconds(-1);
      error.clear();
      tries = 0;
      endpoint.clear();
      rate_limit.clear();
    }
  };
  virtual log_fields& log() = 0;
};

using handler = std::function<asio::awaitable<void>(response_writer&, request&)>;

namespace middleware_impl {
template <class State>
asio::awaitable<void> call(std::shared_ptr<const State> s, response_writer& w, request& r) {
  co_await s->fn(s->next, w, r);  // `s`, a parameter, lives in this frame: so do next and fn
}
}  // namespace middleware_impl

/// A handler that runs `fn(next, w, r)`: middleware in a few lines, without the dangling
/// captures of a coroutine lambda (a lambda's captures live in the lambda object, which a
/// std::function may copy or destroy while the coroutine is suspended). `fn` is any callable
/// `(const handler& next, response_writer&, request&) -> awaitable<void>`, a capturing
/// coroutine lambda included: it and `next` are kept in one shared state that each request's
/// coroutine holds (a reference count; the frame comes from Asio's per-thread recycling, like
/// every handler's). More in examples/middleware_chain.cpp.
///
///   handler with_auth(handler next, std::string token) {
///     return middleware(std::move(next), [token](const handler& next, response_writer& w,
///                                                request& r) -> asio::awaitable<void> {
///       if (r.header.get("authorization") == "Bearer " + token)
///         co_await next(w, r);
///       else
///         co_await write_text(w, 401, "unauthorized\n");
///     });
///   }
template <class Fn>
handler middleware(handler next, Fn fn) {
  struct state {
    handler next;
    Fn fn;
  };
  auto s = std::make_shared<const state>(state{std::move(next), std::move(fn)});
  return [s](response_writer& w, request& r) { return middleware_impl::call(s, w, r); };
}

/// Writes a complete small response: status, Content-Type text/plain, body.
asio::awaitable<error_code> write_text(response_writer& w, int status, std::string_view body);

/// The standard reason phrase of `status` ("Bad Gateway"), or "" for an unknown code.
std::string_view reason_phrase(int status) noexcept;

}  // namespace trafficcop
