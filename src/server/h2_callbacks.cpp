// SPDX-License-Identifier: MIT
// The downstream HTTP/2 session's nghttp2 callbacks (h2_session.hpp): streams open, fields,
// DATA and closes, and the abuse limits of docs/http2.md (rapid reset, empty frames, HPACK
// bombs, stream ids going back).
#include <algorithm>

#include "server/h2_session.hpp"
#include "trafficcop/error.hpp"

namespace trafficcop::detail {
namespace {

using clock = std::chrono::steady_clock;
using stream = h2s::stream;

constexpr std::size_t max_empty_frames = 100;     // DATA without payload nor END_STREAM, per window
constexpr std::size_t max_resets = 200;           // client-reset streams per reset_window
constexpr std::chrono::seconds reset_window{10};  // also the empty-frame window

}  // namespace

bool h2_connection::count_empty_frame() {
  // Per window, not per connection: a long-lived connection (gRPC) may send a few over hours.
  auto now = clock::now();
  if (now - empty_since_ > reset_window) {
    empty_since_ = now;
    empty_frames_ = 0;
  }
  return ++empty_frames_ > max_empty_frames;
}

int h2_connection::on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user) {
  // RFC 9113 §5.1.1: a new stream's id must exceed every id the client used before; nghttp2
  // ignores such a HEADERS instead of ending the connection.
  auto* self = static_cast<h2_connection*>(user);
  if (hd->type != NGHTTP2_HEADERS || hd->stream_id <= 0) return 0;
  // A HEADERS below the highest id is either late (trailers on a stream closed meanwhile,
  // which is ignored) or a stream that was never opened: only the latter ends the connection.
  // The last 256 opened ids tell them apart; for older ids nothing is known, nghttp2 ignores.
  auto& ring = self->opened_;
  std::int32_t id = hd->stream_id;
  if (id > self->max_stream_id_) {
    self->max_stream_id_ = id;
    ring[self->opened_count_++ % ring.size()] = id;
    return 0;
  }
  if ((id & 1) == 0 || nghttp2_session_find_stream(self->ng_, id) != nullptr) return 0;
  std::size_t n = std::min(self->opened_count_, ring.size());
  std::int32_t oldest = ring[(self->opened_count_ - n) % ring.size()];
  bool forgotten = self->opened_count_ > ring.size() && id < oldest;  // the ring wrapped
  if (forgotten || std::find(ring.begin(), ring.begin() + n, id) != ring.begin() + n) return 0;
  self->terminate(NGHTTP2_PROTOCOL_ERROR);
  return 0;
}

bool h2_connection::count_reset() {
  auto now = clock::now();
  if (now - reset_since_ > reset_window) {
    reset_since_ = now;
    resets_ = 0;
  }
  return ++resets_ > max_resets;
}

int h2_connection::on_begin_headers(nghttp2_session* ng, const nghttp2_frame* f, void* user) {
  auto* self = static_cast<h2_connection*>(user);
  if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  std::unique_ptr<stream> st;
  if (!self->spare_.empty()) {
    st = std::move(self->spare_.back());
    self->spare_.pop_back();
    st->reset(f->hd.stream_id);
  } else {
    st = std::make_unique<stream>(*self, f->hd.stream_id, self->executor());
  }
  nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, st.get());
  self->streams_.push_back(std::move(st));
  if (self->streams_.size() == 1) self->idle_changed();
  return 0;
}

int h2_connection::on_header(nghttp2_session*, const nghttp2_frame* f, const std::uint8_t* name,
                             std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                             std::uint8_t, void* user) {
  auto* self = static_cast<h2_connection*>(user);
  stream* st = self->find(f->hd.stream_id);
  if (!st) return 0;
  std::string_view n(reinterpret_cast<const char*>(name), namelen);
  std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  // The decoded size is what an HPACK bomb inflates: bound it (RFC 9113 §10.5.1).
  st->header_bytes += namelen + valuelen + 32;
  if (st->header_bytes > 4 * self->header_limit()) {
    self->terminate(NGHTTP2_ENHANCE_YOUR_CALM);
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  if (st->header_bytes > self->header_limit()) st->too_large = true;
  if (st->too_large) return 0;
  request& req = st->req;
  if (!st->headers_done && !n.empty() && n.front() == ':') {
    if (n == ":method")
      req.method.assign(v);
    else if (n == ":path")
      req.target.assign(v);
    else if (n == ":authority" && v.empty())
      st->bad = "empty :authority";
    else if (n == ":authority")
      req.host.assign(v);
    return 0;
  }
  // As on HTTP/1.1 (http1::parser_limits::underscores), trailers included.
  auto underscores = self->opts_.headers_with_underscores;
  if (underscores != underscore_fields::keep && n.find('_') != std::string_view::npos) {
    if (underscores == underscore_fields::reject) st->bad = "field name with '_'";
    return 0;
  }
  if (st->headers_done) {
    req.trailer.add(n, v);
  } else {
    if (req.header.size() >= self->opts_.max_headers) {
      st->too_large = true;
      return 0;
    }
    req.header.add(n, v);
  }
  return 0;
}

int h2_connection::on_frame_recv(nghttp2_session*, const nghttp2_frame* f, void* user) {
  auto* self = static_cast<h2_connection*>(user);
  switch (f->hd.type) {
    case NGHTTP2_RST_STREAM:
      if (self->count_reset()) self->terminate(NGHTTP2_ENHANCE_YOUR_CALM);  // rapid reset
      return 0;
    case NGHTTP2_PING:
      if ((f->hd.flags & NGHTTP2_FLAG_ACK) && self->draining_ && !self->goaway_sent_) {
        self->goaway_sent_ = true;  // the round trip after the shutdown notice is over
        nghttp2_submit_goaway(self->ng_, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(self->ng_), NGHTTP2_NO_ERROR,
                              nullptr, 0);
      }
      return 0;
    case NGHTTP2_DATA:
    case NGHTTP2_HEADERS:
      break;
    default:
      return 0;
  }
  stream* st = self->find(f->hd.stream_id);
  if (!st) return 0;
  bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (f->hd.type == NGHTTP2_DATA && f->hd.length == 0 && !end && self->count_empty_frame()) {
    self->terminate(NGHTTP2_ENHANCE_YOUR_CALM);
    return 0;
  }
  if (end) {
    st->in.ended = true;
    st->ev.notify();
  }
  if (f->hd.type == NGHTTP2_HEADERS && !st->headers_done) {
    st->headers_done = true;
    self->to_start_.push_back(st->id);  // after the final GOAWAY nghttp2 refuses new ones
  }
  return 0;
}

int h2_connection::on_data_chunk(nghttp2_session*, std::uint8_t, std::int32_t id,
                                 const std::uint8_t* data, std::size_t len, void* user) {
  auto* self = static_cast<h2_connection*>(user);
  stream* st = self->find(id);
  if (!st || st->gone || st->finished) {
    self->consume(id, len);  // nobody will read it: give the window back
    return 0;
  }
  st->received += len;
  auto limit = self->opts_.max_body_bytes;
  if (limit > 0 && st->received > limit) {
    st->in.failed = make_error_code(errc::body_too_large);
    self->consume(id, len);
    st->ev.notify();
    return 0;
  }
  st->in.buf.append(reinterpret_cast<const char*>(data), len);
  st->ev.notify();
  return 0;
}

int h2_connection::on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t code,
                                   void* user) {
  auto* self = static_cast<h2_connection*>(user);
  stream* st = self->find(id);
  if (!st) return 0;
  st->closed = true;
  st->ev.notify();
  st->room.notify();
  if (st->running) {
    // Reset (by the client, or by us after an error) while the handler runs: cancel what it
    // awaits, this stream only.
    if (!st->gone && (code != NGHTTP2_NO_ERROR || !st->out.ended)) {
      st->gone = true;
      if (!st->in.ended && !st->in.failed) st->in.failed = make_error_code(errc::client_gone);
      st->cancel.emit(asio::cancellation_type::terminal);
    }
    return 0;
  }
  self->release(*st);
  return 0;
}

int h2_connection::on_frame_send(nghttp2_session* ng, const nghttp2_frame* f, void* user) {
  auto* self = static_cast<h2_connection*>(user);
  if ((f->hd.type != NGHTTP2_DATA && f->hd.type != NGHTTP2_HEADERS) ||
      (f->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0)
    return 0;
  // The response is complete but the request body is not: the client need not send the rest
  // (RFC 9113 §8.1, RST_STREAM with NO_ERROR after the response).
  stream* st = self->find(f->hd.stream_id);
  if (st && st->finished && !st->in.ended)
    nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
  return 0;
}

}  // namespace trafficcop::detail
