// SPDX-License-Identifier: MIT
// The reverse proxy handler: the per-request state machine described in reverse_proxy.hpp.
#include "trafficcop/reverse_proxy.hpp"

#include <array>
#include <vector>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>

#include "core/buffer_pool.hpp"
#include "core/log.hpp"
#include "core/recycler.hpp"
#include "core/splice.hpp"
#include "http/rules.hpp"

namespace trafficcop {
namespace {

using clock = std::chrono::steady_clock;

http::forwarded_mode to_rules(forwarded_mode m) {
  switch (m) {
    case forwarded_mode::append:
      return http::forwarded_mode::append;
    case forwarded_mode::replace:
      return http::forwarded_mode::replace;
    case forwarded_mode::off:
      return http::forwarded_mode::off;
  }
  return http::forwarded_mode::append;
}

std::string authority(const upstream_url& u) {
  std::string h = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
  if (u.port != (u.scheme == "https" ? 443 : 80)) h += ":" + std::to_string(u.port);
  return h;
}

asio::awaitable<void> default_error_handler(response_writer& w, const request& in,
                                            const proxy_error& e) {
  int status = e.status();
  if (status == 499) co_return;  // nobody to answer (spec 49); the access log says 499
  log::warn("proxy error: {} {} (id {}): {} -> {}", in.method, in.target, in.id, e.detail, status);
  // Fields an outer handler set (the request id middleware's X-Request-Id) stay, as in Go's
  // default ErrorHandler; nothing of the upstream's response is in the map yet.
  std::string body = std::string(reason_phrase(status)) + "\n";
  co_await write_text(w, status, body);
}

/// Copies one direction of a tunnel; EOF becomes a half-close on the other side (spec 30).
asio::awaitable<void> pump(byte_stream& from, byte_stream& to) {
  auto buf = buffer_pool::get();
  for (;;) {
    auto r = co_await from.read_some(asio::buffer(buf.data(), buf.size()));
    if (r.ec == asio::error::eof) {
      to.shutdown_send();
      co_return;
    }
    if (r.ec) break;
    if (auto ec = co_await to.write_all(asio::buffer(buf.data(), r.n))) break;
  }
  // An error on either side ends the tunnel both ways.
  from.close();
  to.close();
}

/// An outbound_request recycled per thread: its strings and header copy keep their storage
/// from one proxied request to the next (the steady state allocates nothing per request).
class outbound_lease {
 public:
  outbound_lease() : p_(recycler<outbound_request, 256>::take()) {
    auto& o = *p_;  // everything a previous request or its rewrite hook may have set
    o.method.clear();
    o.scheme.assign("http");
    o.host.clear();
    o.port = 80;
    o.target.clear();
    o.header.clear();
    o.content_length = 0;
    o.body = nullptr;
    o.trailer = nullptr;
    o.response_timeout = std::chrono::milliseconds(0);
    o.head_timeout = std::chrono::milliseconds(0);
    o.on_informational = nullptr;
    o.inbound = nullptr;
    o.host_follows_endpoint = false;
  }
  ~outbound_lease() { recycler<outbound_request, 256>::give(std::move(p_)); }
  outbound_lease(const outbound_lease&) = delete;
  outbound_lease& operator=(const outbound_lease&) = delete;
  outbound_request& get() noexcept { return *p_; }

 private:
  std::unique_ptr<outbound_request> p_;
};

/// A request body read whole before the upstream is connected (request_buffering): held in
/// the thread's 32 KiB copy buffers, so a buffered body costs no allocation once warm and
/// nothing stays with the request after it.
class buffered_body final : public body_reader {
 public:
  /// Reads `src` to its end; `length` is its declared size. An error is the client's (or
  /// client_gone), as if the transport had met it while streaming.
  asio::awaitable<std::optional<proxy_error>> fill(body_reader& src, std::uint64_t length,
                                                   const request& in) {
    constexpr std::size_t chunk = buffer_pool::buffer_size;
    while (size_ < length) {
      if (size_ == chunks_.size() * chunk) chunks_.push_back(buffer_pool::get());
      std::size_t at = size_ % chunk;
      auto room = static_cast<std::size_t>(std::min<std::uint64_t>(chunk - at, length - size_));
      auto r = co_await src.read(asio::buffer(chunks_.back().data() + at, room));
      if (r.ec) co_return failed(in, r.ec);
      if (r.n == 0)
        co_return proxy_error{make_error_code(errc::bad_request), error_source::downstream,
                              "request body shorter than Content-Length"};
      size_ += r.n;
    }
    // The declared length is in: one more read sees the end (an HTTP/2 END_STREAM, trailers).
    char probe;
    auto r = co_await src.read(asio::buffer(&probe, 1));
    if (r.ec) co_return failed(in, r.ec);
    if (r.n != 0)
      co_return proxy_error{make_error_code(errc::bad_request), error_source::downstream,
                            "request body longer than Content-Length"};
    co_return std::nullopt;
  }

  asio::awaitable<read_result> read(asio::mutable_buffer buf) override {
    std::size_t n = 0;
    while (buf.size() > 0 && read_ < size_) {
      const auto& c = chunks_[read_ / buffer_pool::buffer_size];
      std::size_t at = read_ % buffer_pool::buffer_size;
      std::size_t k = asio::buffer_copy(
          buf, asio::buffer(c.data() + at,
                            std::min<std::uint64_t>(buffer_pool::buffer_size - at, size_ - read_)));
      buf += k;
      n += k;
      read_ += k;
    }
    co_return read_result{{}, n};
  }
  bool ready() const noexcept override { return true; }

 private:
  static proxy_error failed(const request& in, error_code ec) {
    if (in.client_gone() || ec == asio::error::operation_aborted)
      return {make_error_code(errc::client_gone), error_source::downstream, "client went away"};
    return {ec, error_source::downstream, "reading request body: " + ec.message()};
  }

  std::vector<buffer_pool::handle> chunks_;
  std::uint64_t size_ = 0;  // bytes buffered
  std::uint64_t read_ = 0;  // bytes handed on
};

class proxy {
 public:
  explicit proxy(reverse_proxy_options o) : o_(std::move(o)) {
    if (!o_.upstream.empty()) {
      url_ = parse_upstream_url(o_.upstream);
      if (!url_) log::error("reverse_proxy: invalid upstream URL \"{}\"", o_.upstream);
      if (url_) authority_ = authority(*url_);
    }
    if (!o_.transport) o_.transport = make_transport();
    if (!o_.error_handler) o_.error_handler = default_error_handler;
  }

  asio::awaitable<void> serve(response_writer& w, request& in) {
    outbound_lease lease;
    outbound_request& out = lease.get();
    std::optional<std::string> up_type;
    if (auto err = build(in, out, up_type)) co_return co_await fail(w, in, *err);
    if (o_.rewrite) {
      o_.rewrite(in, out);
      // A Host the hook chose (a route's host_rewrite) is kept whatever endpoint is chosen.
      if (out.host_follows_endpoint) {
        auto h = out.header.get("host");
        out.host_follows_endpoint = h && *h == authority_;
      }
    }
    out.on_informational = [&w](int status, const header_map& h) -> asio::awaitable<error_code> {
      // spec 38: the 1xx goes out with its own fields, then the header map is as before.
      header_map saved = w.header();
      for (const auto& f : h)
        if (!http::is_hop_by_hop(f.name)) w.header().add(f.name, f.value);
      auto ec = co_await w.write_header(status);
      w.header() = std::move(saved);
      co_return ec;
    };

    // #14.5: a small body is read before any upstream connection exists, so that clients
    // sending slowly hold nothing upstream (and the upstream latency below is the upstream's).
    buffered_body buffered;
    if (buffers(in, out)) {
      auto err =
          co_await buffered.fill(*in.body, static_cast<std::uint64_t>(in.content_length), in);
      if (err) co_return co_await fail(w, in, *err);
      out.body = &buffered;
    }

    auto t0 = clock::now();
    auto rt = co_await o_.transport->round_trip(out);
    auto& lf = w.log();
    lf.upstream_latency = std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - t0);
    lf.tries = rt.tries;
    if (!rt.tried.empty()) lf.upstream_addr = std::move(rt.tried);
    if (!rt.response) {
      if (in.client_gone())
        rt.error = {make_error_code(errc::client_gone), error_source::downstream,
                    "client went away"};
      co_return co_await fail(w, in, rt.error);
    }
    auto& res = *rt.response;
    if (lf.upstream_addr.empty()) lf.upstream_addr = res.peer;
    lf.endpoint = res.peer;
    lf.upstream_status = res.status;
    co_await respond(w, in, res, up_type);
    // HTTP/2 upstreams may still be reading the client's body (full duplex): stop that before
    // the body goes away with this request.
    if (res.request_pending()) co_await res.release();
  }

 private:
  asio::awaitable<void> respond(response_writer& w, request& in, upstream_response& res,
                                const std::optional<std::string>& up_type) {
    if (res.status == 101) co_return co_await tunnel(w, in, res, up_type);

    // spec 36: the Trailer announcement is hop-by-hop; remember the names to re-announce.
    std::string announced = res.header.joined("trailer");
    http::remove_hop_by_hop(res.header);
    if (o_.modify_response) {
      if (auto ec = o_.modify_response(res, in)) {
        auto err = modify_failed(ec);  // named: g++ 12 double-frees temporaries in co_await
        co_return co_await fail(w, in, err);
      }
    }
    response_body body{&res.body()};
    if (o_.modify_response_async) {
      error_code ec = co_await o_.modify_response_async(res, in, body);
      if (ec) {
        auto err = modify_failed(ec);
        co_return co_await fail(w, in, err);
      }
      if (body.replaced()) {  // the upstream's length says nothing about the filtered body
        res.header.erase("content-length");
        if (body.content_length >= 0)
          res.header.set("Content-Length", std::to_string(body.content_length));
      }
    }
    for (const auto& f : res.header) w.header().add(f.name, f.value);
    if (!announced.empty()) w.header().add("Trailer", announced);
    co_await stream_body(w, in, res, body);
  }

  /// Whether the request's body is read whole first (request_buffering): a declared length
  /// within the bound, and a body the rewrite hook left as it was.
  bool buffers(const request& in, const outbound_request& out) const noexcept {
    return o_.request_buffering > 0 && in.content_length > 0 &&
           static_cast<std::uint64_t>(in.content_length) <= o_.request_buffering &&
           out.body == in.body && out.body != nullptr && out.content_length == in.content_length;
  }

  /// Fills the outbound request from the inbound one (steps 1 of the header comment).
  std::optional<proxy_error> build(const request& in, outbound_request& out,
                                   std::optional<std::string>& up_type) {
    out.method = in.method;
    if (url_) {
      out.scheme = url_->scheme;
      out.host = url_->host;
      out.port = url_->port;
    } else if (!o_.upstream.empty()) {
      return proxy_error{make_error_code(errc::bad_upstream_url), error_source::internal,
                         "invalid upstream URL"};
    }
    std::string_view target = o_.raw_target && !in.raw_target.empty() ? in.raw_target : in.target;
    std::string_view in_path = target.substr(0, target.find('?'));
    std::string_view in_query = target.substr(std::min(target.size(), in_path.size() + 1));
    out.target = http::join_path(url_ ? url_->path : std::string_view{}, in_path);
    std::string query = http::merge_query(url_ ? url_->query : std::string_view{}, in_query);
    if (auto clean = http::sanitize_query(query)) query = std::move(*clean);  // spec 4
    if (!query.empty()) out.target += "?" + query;

    out.header = in.header;
    http::remove_hop_by_hop(out.header);
    out.header.erase("content-length");
    if (http::te_has_trailers(in.header)) out.header.add("Te", "trailers");  // spec 11
    http::apply_forwarded(out.header, in.remote_addr, in.host, in.tls, to_rules(o_.forwarded),
                          in.peer_addr, in.forwarded_trusted);
    out.inbound = &in;
    out.host_follows_endpoint = !o_.keep_host && url_;
    if (!o_.keep_host && url_)
      out.header.set("Host", authority_);
    else if (!in.host.empty())
      out.header.set("Host", in.host);

    up_type = http::upgrade_type(in.header);
    if (up_type) {
      if (!http::is_printable_ascii(*up_type) || in.version != 11)
        return proxy_error{make_error_code(errc::bad_upgrade_request), error_source::downstream,
                           "client tried to switch to invalid protocol"};
      out.header.add("Connection", "Upgrade");  // spec 25
      out.header.add("Upgrade", *up_type);
    }
    out.content_length = in.content_length;
    out.body = in.content_length != 0 ? in.body : nullptr;  // spec 19
    out.trailer = &in.trailer;
    out.response_timeout = o_.response_timeout;
    return std::nullopt;
  }

  asio::awaitable<void> stream_body(response_writer& w, request& in, upstream_response& res,
                                    response_body& rb) {
    body_reader& body = *rb.reader;
    const std::int64_t length = rb.replaced() ? rb.content_length : res.content_length;
    auto interval = o_.flush_interval;
    auto ct = res.header.get("content-type");
    if (length < 0 || (ct && ct->size() >= 17 && iequals(ct->substr(0, 17), "text/event-stream")))
      interval = std::chrono::milliseconds(-1);  // spec 41
    if (auto ec = co_await w.write_header(res.status)) co_return;
    // spec 42: the head does not wait for a late body. A body already here goes out with it
    // in one write (the head and a small body are one packet, as nginx sends them).
    if (interval.count() != 0 && !body.ready()) co_await w.flush();

    auto buf = buffer_pool::get();
    auto last_flush = clock::now();
    for (;;) {
      if (!body.ready()) {
        // Nothing buffered: the rest of a large body may go socket to socket in the kernel.
        // (Not through a filter: it must see every byte.)
        read_result relayed;
        if (!rb.replaced()) relayed = co_await try_splice(w, res);
        if (relayed.ec) {
          w.log().error =
              in.client_gone() ? "client went away" : "relaying body: " + relayed.ec.message();
          if (!in.client_gone())
            log::warn("proxy error: {} {} (id {}): {}", in.method, in.target, in.id, w.log().error);
          w.abort();
          co_return;
        }
        if (relayed.n > 0) continue;  // the next read reports the end
      }
      auto r = co_await body.read(asio::buffer(buf.data(), buf.size()));
      if (r.ec) {
        // spec 47: after the head, a failure can only be shown by cutting the connection.
        w.log().error = in.client_gone() ? "client went away" : "upstream body: " + r.ec.message();
        if (!in.client_gone())
          log::warn("proxy error: {} {} (id {}): {}", in.method, in.target, in.id, w.log().error);
        w.abort();
        co_return;
      }
      if (r.n == 0) break;
      if (auto ec = co_await w.write(asio::buffer(buf.data(), r.n))) {
        w.log().error = "write to client: " + ec.message();
        w.abort();
        co_return;
      }
      // Flush when the upstream has nothing more ready: the next read would wait. Bytes that
      // are already here are not held back by skipping the flush: they follow at once, and
      // the writer sends whenever its buffer fills.
      bool flush = interval.count() < 0;
      if (interval.count() > 0) {
        auto now = clock::now();
        flush = r.n < buf.size() || now - last_flush >= interval;
        if (flush) last_flush = now;
      }
      if (flush && body.ready()) flush = false;
      if (flush && co_await w.flush()) {
        w.abort();
        co_return;
      }
    }
    // spec 36, 37: declared or not, trailers reach the client's trailer section.
    http::remove_forbidden_trailers(res.trailer);
    for (const auto& f : res.trailer) w.trailer().add(f.name, f.value);
  }

  /// The zero-copy path (src/core/splice.hpp): when the upstream body's rest is raw bytes on a
  /// plain socket and the client's writer takes exactly as many raw bytes, splice them.
  /// Returns the bytes moved (0: not applicable, copy as usual).
  /// The server's writer and the HTTP/1 transport's body are splice_endpoints (private to the
  /// library); anything else, a middleware's writer for one, copies.
  static asio::awaitable<read_result> try_splice(response_writer& w, upstream_response& res) {
    // Before the casts: small and chunked bodies (never spliced) do not pay for them.
    if (res.content_length < static_cast<std::int64_t>(detail::min_splice_bytes))
      co_return read_result{};
    auto* src = dynamic_cast<detail::splice_endpoint*>(&res.body());
    auto* dst = src ? dynamic_cast<detail::splice_endpoint*>(&w) : nullptr;
    if (!dst) co_return read_result{};
    std::uint64_t n = src->splice_room();
    if (n < detail::min_splice_bytes || n != dst->splice_room()) co_return read_result{};
    if (auto ec = co_await dst->splice_prepare()) co_return read_result{ec, 0};
    auto ec = co_await detail::splice_body(*src, *dst, n);
    if (ec == asio::error::no_descriptors) co_return read_result{};  // out of fds: copy
    co_return read_result{ec, static_cast<std::size_t>(n)};
  }

  /// spec 27-31: check the 101, relay it, then copy bytes both ways until both sides end.
  asio::awaitable<void> tunnel(response_writer& w, request& in, upstream_response& res,
                               const std::optional<std::string>& up_type) {
    auto res_type = res.header.get("upgrade");
    if (!up_type || !res_type || !http::is_printable_ascii(*res_type) ||
        !iequals(*res_type, *up_type)) {
      proxy_error err{make_error_code(errc::upstream_bad_upgrade), error_source::upstream,
                      "backend switched to protocol \"" + std::string(res_type.value_or("")) +
                          "\" when \"" + up_type.value_or("") + "\" was requested"};
      co_return co_await fail(w, in, err);
    }
    std::string type(*res_type);
    http::remove_hop_by_hop(res.header);  // #80875: no other hop-by-hop field in the 101
    if (o_.modify_response) {
      if (auto ec = o_.modify_response(res, in)) {
        auto err = modify_failed(ec);
        co_return co_await fail(w, in, err);
      }
    }
    for (const auto& f : res.header) w.header().add(f.name, f.value);
    w.header().set("Connection", "Upgrade");
    w.header().set("Upgrade", type);
    if (co_await w.write_header(101) || co_await w.flush()) co_return;
    byte_stream* client = w.hijack();
    byte_stream* backend = res.upgraded();
    if (!client || !backend) {
      w.abort();
      co_return;
    }
    using namespace asio::experimental::awaitable_operators;
    co_await (pump(*client, *backend) && pump(*backend, *client));
    client->close();
    backend->close();
  }

  static proxy_error modify_failed(error_code ec) {
    return {make_error_code(errc::modify_response_failed), error_source::internal,
            "modify_response: " + ec.message()};
  }

  asio::awaitable<void> fail(response_writer& w, const request& in, const proxy_error& e) {
    w.log().error = e.detail;
    if (w.head_sent()) {
      w.abort();
      co_return;
    }
    co_await o_.error_handler(w, in, e);
  }

  reverse_proxy_options o_;
  std::optional<upstream_url> url_;
  std::string authority_;  // Host for the upstream, computed once
};

}  // namespace

handler make_reverse_proxy(reverse_proxy_options opts) {
  auto p = std::make_shared<proxy>(std::move(opts));
  return [p](response_writer& w, request& in) { return p->serve(w, in); };
}

std::optional<upstream_url> parse_upstream_url(std::string_view url) {
  upstream_url u;
  auto sep = url.find("://");
  if (sep == std::string_view::npos) return std::nullopt;
  u.scheme.assign(url.substr(0, sep));
  for (auto& c : u.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (u.scheme != "http" && u.scheme != "https") return std::nullopt;
  u.port = u.scheme == "https" ? 443 : 80;
  std::string_view rest = url.substr(sep + 3);
  auto path_start = rest.find_first_of("/?");
  std::string_view hostport = rest.substr(0, path_start);
  std::string_view tail =
      path_start == std::string_view::npos ? std::string_view{} : rest.substr(path_start);
  if (hostport.empty() || hostport.find('@') != std::string_view::npos) return std::nullopt;
  std::string_view host = hostport, port;
  std::string_view uri_host = hostport;  // with its brackets, without the port
  if (hostport.front() == '[') {
    auto close = hostport.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    host = hostport.substr(1, close - 1);
    uri_host = hostport.substr(0, close + 1);
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':') return std::nullopt;
      port = hostport.substr(close + 2);
    }
  } else if (auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
    uri_host = host;
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // IPv6 needs brackets
  }
  // RFC 3986 §3.2.2: "http://a b/", "http://x[]" or a NUL in the host are malformed, not a
  // name to resolve at the first request.
  if (host.empty() || !http::is_valid_host(uri_host)) return std::nullopt;
  u.host.assign(host);
  if (!port.empty()) {
    unsigned v = 0;
    for (char c : port) {
      if (c < '0' || c > '9' || v > 65535) return std::nullopt;
      v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v == 0 || v > 65535) return std::nullopt;
    u.port = static_cast<std::uint16_t>(v);
  }
  auto q = tail.find('?');
  u.path.assign(tail.substr(0, q));
  if (q != std::string_view::npos) u.query.assign(tail.substr(q + 1));
  return u;
}

}  // namespace trafficcop
