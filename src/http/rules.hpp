// SPDX-License-Identifier: MIT
// Header and URL rules of a proxy hop, as pure functions over header_map and strings.
// Each function cites the item of shared/spec/reverse-proxy-behaviour.md it implements.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "trafficcop/http.hpp"

namespace trafficcop::http {

/// True for the fixed hop-by-hop names of spec 10 (Connection, Proxy-Connection, Keep-Alive,
/// Proxy-Authenticate, Proxy-Authorization, Te, Trailer, Transfer-Encoding, Upgrade,
/// HTTP2-Settings), case-insensitive.
bool is_hop_by_hop(std::string_view name) noexcept;

/// Spec 9, 10, 33: removes every field named in any Connection line (tokens split on commas,
/// trimmed, empty ones ignored, case-insensitive), then the fixed list.
void remove_hop_by_hop(header_map& h);

/// RFC 9110 §6.5.1: removes from a trailer section the hop-by-hop fields and those that must
/// not be sent as trailers (framing, routing, authentication, content metadata, controls).
void remove_forbidden_trailers(header_map& trailer);
/// A Content-Length value (RFC 9110 §8.6: 1*DIGIT), at most 19 digits so it fits; nullopt if
/// it is anything else.
std::optional<std::uint64_t> parse_content_length(std::string_view v) noexcept;

/// What a proxy can do with a Transfer-Encoding value (RFC 9112 §6.1, spec 53, 60).
enum class te_kind {
  chunked,      // exactly one "chunked", and it is the only coding: re-framable
  unsupported,  // codings other than chunked, none of them misplaced: 501
  malformed,    // chunked not last, or applied more than once ("chunked, chunked"): 400
};
te_kind classify_transfer_encoding(std::string_view value) noexcept;

/// True for a field name remove_forbidden_trailers removes (Connection's list aside).
bool is_forbidden_trailer(std::string_view name) noexcept;

/// Spec 11: true if any TE line of `in` lists the token "trailers".
bool te_has_trailers(const header_map& in);

/// Spec 1, 2: joins the upstream base path and the inbound path with exactly one '/' at the
/// join, on raw (still percent-encoded) strings: ("/base","/dir") → "/base/dir",
/// ("/base/","/dir") → "/base/dir", ("/base","/") → "/base/", ("","x") → "/x", ("","") → "/".
std::string join_path(std::string_view base, std::string_view in);

/// Spec 3: target query + "&" + inbound query, or whichever is non-empty; raw bytes.
std::string merge_query(std::string_view target, std::string_view in);

/// Spec 4: if the raw query holds a ';', a bad %-escape, or more than 10000 parameters, returns
/// it re-encoded the way Go's url.ParseQuery + Values.Encode does (bad pairs dropped, keys
/// sorted, QueryEscape encoding); otherwise nullopt (keep the raw bytes, spec 3).
std::optional<std::string> sanitize_query(std::string_view raw);

/// The IP part of "ip:port" / "[v6]:port" (no brackets), spec 13.
std::string_view host_of(std::string_view addr) noexcept;

enum class forwarded_mode {
  append,   // XFF = inbound XFF lines joined + ", " + client ip; XFH/XFP replaced (spec 13, 56)
  replace,  // trust nothing: inbound Forwarded/X-Forwarded-* dropped, fresh values set (spec 15)
  off,      // forward inbound values untouched, add nothing (spec 14)
};

/// Spec 13, 15, 16, 56: edits the outbound `out` headers for a request from `client_addr`
/// ("ip:port") that arrived with Host `in_host` over TLS or not. `out` is the outbound copy of
/// the inbound headers (hop-by-hop already removed). In append/replace mode X-Forwarded-Host is
/// set to `in_host` and X-Forwarded-Proto to "https"/"http". XFF ends as one line.
///
/// Trusted proxies (request::peer_addr, request::forwarded_trusted): `peer_addr` is the hop
/// the request came from ("" = `client_addr`), and `peer_trusted` says whether what it says
/// about earlier hops may be passed on. append keeps the inbound X-Forwarded-For and Forwarded
/// only from a trusted peer and adds the peer's address; from another peer they are dropped
/// and X-Forwarded-For is the peer alone. replace sends the client (`client_addr`, which the
/// server may have taken from a trusted X-Forwarded-For) alone. off changes nothing.
void apply_forwarded(header_map& out, std::string_view client_addr, std::string_view in_host,
                     bool tls, forwarded_mode mode, std::string_view peer_addr = {},
                     bool peer_trusted = true);

/// Normalises the path of an origin-form request-target in place (RFC 3986 §6.2.2): percent-
/// encoded unreserved bytes are decoded ("%2e" → ".", "%41" → "A"), then dot segments are
/// removed (§5.2.4: "/a/./b/../c" → "/a/c"). Other escapes stay as received, so "%2F" is never
/// a separator. The query is untouched. Returns false, leaving `target` unspecified, for a
/// path that is not a path (a bad escape) or that backends would read another way: a segment
/// which, split at an encoded slash or at a backslash, holds a dot segment ("..%2F", "..\").
/// A target that does not start with '/' ("*") is left alone.
bool normalize_target(std::string& target);

/// RFC 9112 §3.2.2: turns an absolute-form request-target ("http://h:8080/p?q") into
/// origin-form ("/p?q") and returns its authority ("h:8080"), which replaces any Host field.
/// "http://h" and "http://h?q" get the path "/". Nullopt, leaving `target` as it was, for a
/// scheme other than http or https (case-insensitive) or an authority that is_valid_host
/// rejects. Only for a target that is neither origin-form ('/'...) nor "*".
std::optional<std::string> split_absolute_form(std::string& target);

/// RFC 9112 §3.2, RFC 3986 §3.2.2: a Host value or an absolute-form authority, uri-host
/// [":" port]: a reg-name (unreserved, pct-encoded, sub-delims), an IPv4 address or a bracketed
/// IPv6 literal, then an optional port of at most 5 digits up to 65535. Empty is invalid.
bool is_valid_host(std::string_view host) noexcept;

/// RFC 9110 §5.1 token (field names, methods, upgrade protocol names).
bool is_token(std::string_view s) noexcept;
/// RFC 9110 §5.5: no NUL, CR, LF or other CTL except HTAB (spec 50).
bool is_valid_field_value(std::string_view s) noexcept;

/// Spec 24, 26: the upgrade type of a request: nullopt if Connection has no "upgrade" token or
/// there is no Upgrade field, or the first Upgrade value is h2c (spec 26: proxied as plain).
/// Otherwise the first Upgrade value (the first comma-separated element of the first line),
/// which the caller must check with is_printable_ascii (spec 24: otherwise 502).
std::optional<std::string> upgrade_type(const header_map& in);

/// Printable ASCII (0x21..0x7e, plus space inside) and not empty; spec 24, 27.
bool is_printable_ascii(std::string_view s) noexcept;

}  // namespace trafficcop::http
