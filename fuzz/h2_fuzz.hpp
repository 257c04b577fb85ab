// SPDX-License-Identifier: MIT
// What the HTTP/2 fuzz targets share: cutting an input into frames, and a checker of the
// frames a session sent.
//
// The targets run the project's HTTP/2 glue without sockets (the server's h2_connection, the
// upstream h2_client, both over the sans-I/O h2::session): the input's frames are fed one at a
// time, the io_context's ready handlers run between feeds, and what the session sends is
// pulled as its socket_pump would. No timer needs to fire, so a run is bounded work, not
// wall-clock waits. nghttp2 itself is not instrumented: coverage is that of the project's
// glue around it.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>

#include "fuzz_check.hpp"
#include "http2/session.hpp"

namespace trafficcop::fuzz {

/// One HTTP/2 frame header (RFC 9113 §4.1).
struct frame {
  std::uint32_t length = 0;
  std::uint8_t type = 0;
  std::uint8_t flags = 0;
  std::uint32_t stream = 0;
};

/// The next frame of `in` (its 9-byte header and the payload it announces), taken off the
/// front; what is left when the header is cut short or announces more than there is.
inline std::string_view next_frame(std::string_view& in) {
  std::size_t n = in.size();
  if (n >= 9) {
    const auto* b = reinterpret_cast<const unsigned char*>(in.data());
    n = std::min(n, 9 + (std::size_t(b[0]) << 16 | std::size_t(b[1]) << 8 | b[2]));
  }
  auto f = in.substr(0, n);
  in.remove_prefix(n);
  return f;
}

/// What a socket_pump does while the peer is silent, in memory: runs the ready handlers of
/// `ioc` and pulls what `s` sends into `out`, until neither does anything. False if it is still
/// busy after `rounds` rounds (a livelock: a bug).
inline bool settle(asio::io_context& ioc, h2::session& s, std::string& out, int rounds = 10000) {
  for (int i = 0; i < rounds; ++i) {
    const std::size_t ran = ioc.poll();
    const std::size_t had = out.size();
    if (!s.pull(out, SIZE_MAX)) s.close();  // as the pump: nghttp2 failed, the session ends
    if (ran == 0 && out.size() == had) return true;
  }
  return false;
}

inline constexpr std::string_view client_preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: what a server's preface can be.
inline constexpr std::string_view empty_settings{"\0\0\0\x04\0\0\0\0\0", 9};

/// Checks that `bytes`, all a peer sent on a connection that ended cleanly, are a sequence of
/// whole, well-formed frames as RFC 9113 §4-6 constrains them (lengths, stream 0 or not, fixed
/// payload sizes), starting with a SETTINGS frame (§3.4). DATA and HEADERS must be on odd
/// streams (client-initiated: neither side of trafficcop pushes); RST_STREAM may also refuse an
/// even, pushed one. Returns the number of frames.
inline std::size_t check_frames(std::string_view bytes, std::uint32_t max_frame,
                                std::string_view input) {
  std::size_t n = 0;
  while (!bytes.empty()) {
    check(bytes.size() >= 9, "a whole frame header", input);
    const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
    frame f{static_cast<std::uint32_t>(b[0] << 16 | b[1] << 8 | b[2]), b[3], b[4],
            static_cast<std::uint32_t>((b[5] & 0x7f) << 24 | b[6] << 16 | b[7] << 8 | b[8])};
    check(bytes.size() >= 9 + f.length, "a whole frame payload", input);
    check(f.length <= max_frame, "frame length within SETTINGS_MAX_FRAME_SIZE", input);
    if (n == 0) check(f.type == 0x4 && !(f.flags & 1), "the preface is a SETTINGS frame", input);
    switch (f.type) {
      case 0x0:  // DATA
      case 0x1:  // HEADERS
      case 0x9:  // CONTINUATION
        check(f.stream != 0 && f.stream % 2 == 1, "DATA/HEADERS on a client stream", input);
        break;
      case 0x3:  // RST_STREAM: also refuses a server's pushed (even) stream
        check(f.stream != 0 && f.length == 4, "RST_STREAM: not stream 0, 4 bytes", input);
        break;
      case 0x4:  // SETTINGS
        check(f.stream == 0 && f.length % 6 == 0, "SETTINGS on stream 0, 6-byte entries", input);
        if (f.flags & 1) check(f.length == 0, "a SETTINGS ACK is empty", input);
        break;
      case 0x6:  // PING
        check(f.stream == 0 && f.length == 8, "PING on stream 0, 8 bytes", input);
        break;
      case 0x7:  // GOAWAY
        check(f.stream == 0 && f.length >= 8, "GOAWAY on stream 0", input);
        break;
      case 0x8:  // WINDOW_UPDATE
        check(f.length == 4, "WINDOW_UPDATE is 4 bytes", input);
        check((b[9] & 0x7f) | b[10] | b[11] | b[12], "a window increment is not 0", input);
        break;
      case 0x5:  // PUSH_PROMISE: neither side pushes
        check(false, "no PUSH_PROMISE", input);
        break;
      default:
        break;
    }
    bytes.remove_prefix(9 + f.length);
    ++n;
  }
  return n;
}

}  // namespace trafficcop::fuzz
