// SPDX-License-Identifier: MIT
// The sans-I/O HTTP/2 session (bytes in, bytes out), flow-control helpers and field conversion.
#include "http2/session.hpp"

#include <cstring>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/log.hpp"
#include "http/rules.hpp"

namespace trafficcop::h2 {
namespace {

/// True if the comma-separated `list` has `token` (case-insensitive, trimmed).
bool header_map_list_has(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    auto comma = list.find(',');
    auto item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

std::uint8_t* bytes(std::string_view s) {
  return reinterpret_cast<std::uint8_t*>(const_cast<char*>(s.data()));
}

}  // namespace

asio::awaitable<bool> event::wait(std::chrono::milliseconds timeout) {
  t_.expires_after(timeout.count() > 0 ? std::chrono::steady_clock::duration(timeout)
                                       : std::chrono::hours(24 * 365));
  auto [ec] = co_await t_.async_wait(asio::as_tuple(asio::use_awaitable));
  co_return ec == asio::error::operation_aborted;
}

void compact(std::string& buf, std::size_t& off) noexcept {
  if (off == buf.size()) {
    buf.clear();
    off = 0;
  } else if (off >= 32 * 1024 && off * 2 >= buf.size()) {
    buf.erase(0, off);  // moves at most what is left, less than what was consumed
    off = 0;
  }
}

std::size_t inbound::take(char* out, std::size_t n) noexcept {
  n = std::min(n, unread());
  std::memcpy(out, buf.data() + off, n);
  off += n;
  compact(buf, off);
  return n;
}

void nv_list::add(std::string_view name, std::string_view value) {
  nv_.push_back(
      nghttp2_nv{bytes(name), bytes(value), name.size(), value.size(), NGHTTP2_NV_FLAG_NONE});
}

namespace {

/// Connection-specific in HTTP/2 (RFC 9113 §8.2.2), TE aside.
bool connection_specific(std::string_view name) noexcept {
  return iequals(name, "connection") || iequals(name, "keep-alive") ||
         iequals(name, "proxy-connection") || iequals(name, "transfer-encoding") ||
         iequals(name, "upgrade") || iequals(name, "http2-settings");
}

}  // namespace

nv_list& nv_list::scratch() noexcept {
  thread_local nv_list l;
  l.clear();
  return l;
}

void nv_list::add_fields(const header_map& h, bool trailer) {
  // Connection-specific fields never cross into HTTP/2, nor do the fields the Connection
  // field names; TE only as "trailers".
  std::string_view listed;
  std::string joined;
  if (auto c = h.get("connection")) {
    joined = h.joined("connection");  // rare: only from handlers that set it
    listed = joined;
  }
  std::size_t need = names_.size();
  for (const auto& f : h) need += f.name.size();
  names_.reserve(need);  // the views below stay valid: no reallocation after this
  bool te_sent = false;
  for (const auto& f : h) {
    if (iequals(f.name, "te")) {
      if (!te_sent && !trailer && http::te_has_trailers(h)) add("te", "trailers");
      te_sent = true;
      continue;
    }
    if (connection_specific(f.name) || iequals(f.name, "host")) continue;  // :authority
    if (!listed.empty() && header_map_list_has(listed, f.name)) continue;
    if (trailer && http::is_forbidden_trailer(f.name)) continue;
    std::size_t at = names_.size();
    for (char c : f.name) names_ += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    add(std::string_view(names_).substr(at, f.name.size()), f.value);
  }
}

session::session(const asio::any_io_executor& ex) : ex_(ex), write_ev_(ex) {}

session::~session() {
  if (ng_) nghttp2_session_del(ng_);
}

void session::resume(std::int32_t stream_id, outbound& out) {
  if (!out.deferred || ng_ == nullptr) return;
  out.deferred = false;
  nghttp2_session_resume_data(ng_, stream_id);
  want_write();
}

void session::consume(std::int32_t stream_id, std::size_t n) {
  if (n == 0 || ng_ == nullptr) return;
  // The connection window first: the stream may be gone (reset) while its bytes still count.
  nghttp2_session_consume_connection(ng_, n);
  if (nghttp2_session_find_stream(ng_, stream_id))
    nghttp2_session_consume_stream(ng_, stream_id, n);
  want_write();
}

void session::terminate(std::uint32_t code) {
  if (ng_ && !closed_) nghttp2_session_terminate_session(ng_, code);
  if (code != NGHTTP2_NO_ERROR) failed_ = true;
  want_write();
}

void session::close() noexcept {
  if (closed_) return;
  closed_ = true;
  if (driver_) driver_->stop();  // the owner closes the socket: lingering first after a GOAWAY
  write_ev_.notify();
}

nghttp2_data_provider session::provider(outbound& out) {
  nghttp2_data_provider p{};
  p.source.ptr = &out;
  p.read_callback = read_data;
  return p;
}

ssize_t session::read_data(nghttp2_session* ng, std::int32_t stream_id, std::uint8_t* buf,
                           std::size_t length, std::uint32_t* flags, nghttp2_data_source* src,
                           void*) {
  auto& out = *static_cast<outbound*>(src->ptr);
  std::size_t n = std::min(length, out.queued());
  std::memcpy(buf, out.buf.data() + out.off, n);
  out.off += n;
  out.taken += n;
  compact(out.buf, out.off);
  if (n > 0 && out.room && out.queued() <= outbound_high) out.room->notify();
  if (out.queued() == 0 && out.ended) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (out.trailer && !out.trailer->empty()) {
      auto& nv = nv_list::scratch();
      nv.add_fields(*out.trailer, true);
      if (nv.size() > 0 && nghttp2_submit_trailer(ng, stream_id, nv.data(), nv.size()) == 0)
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
    return static_cast<ssize_t>(n);
  }
  if (n == 0) {
    out.deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

bool session::feed(std::string_view in) {
  ssize_t rv =
      nghttp2_session_mem_recv(ng_, reinterpret_cast<const std::uint8_t*>(in.data()), in.size());
  if (rv < 0) {
    log::debug("HTTP/2 session ended: {}", nghttp2_strerror(static_cast<int>(rv)));
    // A flood (too many queued acks) or a fatal error: say why if the peer still takes it.
    std::uint32_t code = NGHTTP2_INTERNAL_ERROR;
    if (rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS)
      code = NGHTTP2_ENHANCE_YOUR_CALM;
    else if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC)
      code = NGHTTP2_PROTOCOL_ERROR;
    nghttp2_session_terminate_session(ng_, code);
    failed_ = true;
    want_write();
    return false;
  }
  after_feed();
  want_write();
  return true;
}

bool session::pull(std::string& out, std::size_t batch) {
  if (closed_ || ng_ == nullptr) return true;
  while (out.size() < batch) {
    const std::uint8_t* data = nullptr;
    ssize_t n = nghttp2_session_mem_send(ng_, &data);
    if (n < 0) return false;
    if (n == 0) break;
    out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
  }
  return true;
}

bool session::finished() const noexcept {
  return closed_ || ng_ == nullptr ||
         (nghttp2_session_want_read(ng_) == 0 && nghttp2_session_want_write(ng_) == 0);
}

}  // namespace trafficcop::h2
