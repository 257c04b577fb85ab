// SPDX-License-Identifier: MIT
// Request identity on the wire: the W3C Trace Context `traceparent` field
// (https://www.w3.org/TR/trace-context/, Level 1) and what makes a client's request id usable.
// Pure functions over strings: no I/O, no state (fuzz/trace_context_fuzz.cpp feeds them).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace trafficcop::http {

/// A parsed traceparent. The views point into the parsed value.
struct traceparent {
  std::string_view trace_id;   // 32 lowercase hex digits, not all zero
  std::string_view parent_id;  // 16 lowercase hex digits, not all zero
  std::uint8_t flags = 0;      // trace-flags; bit 0 is "sampled"
};

/// Parses a traceparent value (Trace Context §3.2). Version 00 is exactly
/// "00-<trace-id>-<parent-id>-<flags>" (55 characters, lowercase hex only). A later version
/// (01 to fe) is read as §3.2.4 asks: the same first 55 characters, then the end or '-' and
/// whatever that version adds. Version ff, uppercase hex, all-zero ids, wrong lengths or
/// separators, anything else: nullopt (the caller then starts a new trace).
std::optional<traceparent> parse_traceparent(std::string_view v) noexcept;

/// Appends "00-<trace_id>-<span_id>-<flags as 2 hex digits>" to `out` (the version this
/// implementation speaks, whatever version it received, §3.2.4).
void append_traceparent(std::string& out, std::string_view trace_id, std::string_view span_id,
                        std::uint8_t flags);

/// True for lowercase hex digits only (at least one), not all of them '0'.
bool is_nonzero_lower_hex(std::string_view s) noexcept;

/// A request id from a client that the proxy is willing to keep, log and pass on: 1 to 128
/// bytes, each a visible ASCII character (0x21-0x7e) other than '"' and '\'. So it needs no
/// escaping in a JSON string, a quoted or space-separated log field or a header value, and
/// it cannot split a log line. UUIDs, hex, base64 (with '+', '/', '='), ULIDs and
/// "service-1234:abc" forms are all sane.
bool is_sane_request_id(std::string_view v) noexcept;

inline constexpr std::size_t max_request_id_bytes = 128;

}  // namespace trafficcop::http
