// SPDX-License-Identifier: MIT
// Shared driver of the HTTP/1.1 parser fuzz targets: parses an input whole and in pieces, and
// against Beast.
//
// Each input is parsed as a stream of back-to-back messages, each with a new parser, the way
// the server and the transport use them: once all at once with a large output buffer, once
// split at a point chosen by the first byte, the rest fed in small steps into a small output
// buffer. Beyond "no crash, no UB, no hang" the two parses must agree: same messages, same
// bodies, and a failure in one is a failure in the other. Then the whole parse must agree with
// the one of the Beast-based parsers the proxy used before (beast_oracle.hpp): same accept or
// reject, fields, bodies, trailers, framing, keep-alive, but for the differences listed in
// `differs_as_documented` (each an RFC 9112 rule Beast does not apply).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "beast_oracle.hpp"
#include "http/rules.hpp"
#include "http1/parser.hpp"

namespace trafficcop::fuzz {

inline constexpr std::size_t max_input = 16 * 1024;  // keeps each input's work bounded
inline constexpr std::size_t max_messages = 16;

inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "parser invariant violated: %s\n", what);
    std::abort();
  }
}

using field_list = std::vector<std::pair<std::string, std::string>>;

inline field_list dump(const header_map& h) {
  field_list out;
  for (const auto& f : h) out.emplace_back(f.name, f.value);
  return out;
}

/// What one parser reported for one message.
struct message {
  bool head_done = false;
  bool done = false;
  bool failed = false;
  std::string start;  // "METHOD target" or "status reason"
  int version = 0;
  field_list header;
  field_list trailer;
  std::string body;
  std::size_t consumed = 0;
  std::optional<std::uint64_t> length;
  bool chunked = false;
  bool keep_alive = false;
  error_code ec;  // why it failed

  /// Failures compare equal whatever was parsed before them: an early rejection and a late one
  /// have seen different amounts of the message. A malformed head may also be waiting for its
  /// end in one parse and rejected in the other: once Beast had to wait for more of a head, it
  /// parses again only when the blank line arrives (the limit and the timeout bound the wait).
  bool same_as(const message& o) const {
    if (failed != o.failed && !head_done && !o.head_done) return true;
    if (failed || o.failed) return failed == o.failed;
    return head_done == o.head_done && done == o.done && start == o.start && version == o.version &&
           header == o.header && trailer == o.trailer && body == o.body && consumed == o.consumed;
  }
};

/// How the input arrives: the first `first` bytes, then `step` more at a time (0: all).
struct feed {
  std::size_t first = 0;
  std::size_t step = 0;
  std::size_t out_size = 4096;
};

template <class Parser>
void start_of(message& m, Parser& p) {
  if constexpr (requires { p.method(); })
    m.start = p.method() + " " + p.target();
  else
    m.start = std::to_string(p.status()) + " " + p.reason();
}

/// An oracle independent of the parse: the framing Beast will split the bytes by must be the
/// one the accepted fields say. A Transfer-Encoding that passed the proxy's check means chunked
/// (nothing else is accepted), and a Content-Length that passed is the length ("chunked,
/// chunked" once passed the check and was framed as no body at all: issue 14.1).
template <class Parser>
void check_framing(Parser& p) {
  bool te = false;
  std::optional<std::uint64_t> cl;
  for (const auto& f : p.fields()) {
    if (iequals(f.name, "transfer-encoding")) te = true;
    if (iequals(f.name, "content-length")) cl = http::parse_content_length(f.value);
  }
  check(p.chunked() == te, "Transfer-Encoding accepted but not framed as chunked");
  // A message with no body to read (HEAD, 204, 304, "Content-Length: 0") is done already.
  if (!te && cl && !p.is_done()) check(p.length() == cl, "Content-Length not the framing");
}

/// Parses up to max_messages messages of `all`; `make(i)` makes the i-th parser. With `eof`,
/// the end of the input is the end of the connection (put_eof).
template <class Make>
std::vector<message> parse(std::string_view all, feed f, Make make, bool eof) {
  std::vector<message> out;
  std::size_t avail = std::min(f.first, all.size());
  std::size_t off = 0;
  auto more = [&] {
    if (avail == all.size()) return false;
    avail = f.step == 0 ? all.size() : std::min(all.size(), avail + f.step);
    return true;
  };
  std::string buf(f.out_size, '\0');
  for (std::size_t i = 0; i < max_messages && (i == 0 || off < all.size()); ++i) {
    auto p = make(i);
    message m;
    error_code ec;
    std::size_t n = 0;
    for (;;) {
      auto in = all.substr(off, avail - off);
      n = p->put_head(in, ec);
      if (ec) {
        m.failed = true;
        m.ec = ec;
        (void)http1::status_for(ec);
        break;
      }
      if (p->is_header_done()) {
        check(n > 0 && n <= in.size(), "put_head consumed more than it was given");
        break;
      }
      check(n == 0, "put_head consumed bytes of an incomplete head");
      if (!more()) break;
    }
    if (!m.failed && p->is_header_done()) {
      off += n;
      m.consumed = n;
      m.head_done = true;
      start_of(m, *p);
      m.version = p->version();
      m.header = dump(p->fields());
      m.length = p->length();
      m.chunked = p->chunked();
      check_framing(*p);
      // Each round consumes a byte, or delivers one, or ends: 2 * size rounds at most.
      for (std::size_t rounds = 0; !p->is_done(); ++rounds) {
        check(rounds <= 2 * all.size() + 2, "put_body makes no progress");
        auto in = all.substr(off, avail - off);
        auto step = p->put_body(in, asio::buffer(buf), ec);
        check(step.consumed <= in.size(), "put_body consumed more than it was given");
        check(step.written <= buf.size(), "put_body wrote past the output buffer");
        check(step.written <= step.consumed, "put_body wrote more than it consumed");
        off += step.consumed;
        m.consumed += step.consumed;
        m.body.append(buf.data(), step.written);
        if (ec) {
          m.failed = true;
          m.ec = ec;
          (void)http1::status_for(ec);
          break;
        }
        if (step.consumed == 0 && step.written == 0 && !more()) {
          if (eof) {
            p->put_eof(ec);
            m.failed = static_cast<bool>(ec);
            m.ec = ec;
          }
          break;
        }
      }
      m.done = p->is_done();
      if (m.done && !m.failed) m.keep_alive = p->keep_alive();
      if (m.done) {
        // Input after the end is left alone.
        auto after = p->put_body(all.substr(off, avail - off), asio::buffer(buf), ec);
        check(!ec && after.consumed == 0 && after.written == 0, "put_body after the end");
      }
      m.trailer = dump(p->trailer());
    }
    out.push_back(std::move(m));
    if (out.back().failed || !out.back().done) break;
  }
  return out;
}

/// A readable account of a parse, printed when the two parses disagree.
inline std::string describe(const std::vector<message>& ms) {
  std::string s;
  for (const auto& m : ms) {
    s += "  [" + m.start + "] version=" + std::to_string(m.version) +
         " head_done=" + std::to_string(m.head_done) + " done=" + std::to_string(m.done) +
         " failed=" + std::to_string(m.failed) + " consumed=" + std::to_string(m.consumed) +
         " body=" + std::to_string(m.body.size()) + "B fields=" + std::to_string(m.header.size()) +
         " trailers=" + std::to_string(m.trailer.size()) + "\n";
  }
  return s;
}

/// Parses `data` whole, then split and stepped as its first byte says; both must agree.
template <class Make>
void run(const std::uint8_t* data, std::size_t size, Make make, bool eof) {
  if (size == 0 || size > max_input) return;
  std::string_view all(reinterpret_cast<const char*>(data), size);
  const unsigned b = data[0];
  feed pieces;
  pieces.first = size * b / 256;
  static constexpr std::size_t steps[] = {0, 1, 3, 16};
  static constexpr std::size_t outs[] = {1, 7, 64, 4096};
  pieces.step = steps[b & 3];
  pieces.out_size = outs[(b >> 2) & 3];
  auto whole = parse(all, feed{size, 0, 4096}, make, eof);
  auto split = parse(all, pieces, make, eof);
  bool same = whole.size() == split.size();
  for (std::size_t i = 0; same && i < whole.size(); ++i) same = whole[i].same_as(split[i]);
  if (!same) {
    std::fprintf(stderr, "whole:\n%ssplit (first %zu, step %zu, output %zu):\n%s",
                 describe(whole).c_str(), pieces.first, pieces.step, pieces.out_size,
                 describe(split).c_str());
  }
  check(same, "whole and split parses disagree");
}

/// A Content-Length element of 20 digits or more: Beast reads up to 2^64 - 1, the proxy as
/// http::parse_content_length does (19 digits; larger values are no length it could serve).
/// A Content-Length value of 20 digits or more, or above INT64_MAX (callers keep int64).
inline bool long_content_length(const field_list& fields) {
  for (const auto& [name, value] : fields) {
    if (!iequals(name, "content-length")) continue;
    std::size_t digits = 0;
    std::uint64_t n = 0;
    for (char c : value) {
      if (c < '0' || c > '9') {
        digits = n = 0;
        continue;
      }
      if (++digits >= 20) return true;
      n = n * 10 + static_cast<std::uint64_t>(c - '0');
      if (n > static_cast<std::uint64_t>(INT64_MAX)) return true;
    }
  }
  return false;
}

/// A response's status outside 100-599 (RFC 9110 §15), which Beast takes as any 3 digits.
inline bool status_out_of_range(const message& m) {
  // Beast's status is an integer, printed without leading zeros: "051" is "51 ...".
  std::size_t i = 0;
  int s = 0;
  for (; i < m.start.size() && i < 4 && m.start[i] >= '0' && m.start[i] <= '9'; ++i)
    s = s * 10 + (m.start[i] - '0');
  return i > 0 && (s < 100 || s > 599);
}

/// A "close" token in a Connection field.
inline bool connection_close(const field_list& fields) {
  for (const auto& [name, value] : fields) {
    if (!iequals(name, "connection")) continue;
    std::string_view rest = value;
    while (!rest.empty()) {
      auto comma = rest.find(',');
      auto t = rest.substr(0, comma);
      while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
      while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
      if (iequals(t, "close")) return true;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return false;
}

/// Where the hand-written parser (`mine`) may differ from Beast (`beast`) on one message, each
/// by a rule of RFC 9112 that Beast does not apply; anything else is a bug in one of them.
inline bool differs_as_documented(const message& mine, const message& beast) {
  if (!mine.failed) return false;
  // Refused at the first byte that cannot be valid, where Beast waits for the end of a line or
  // of the head before it looks (or waits for ever: an unclosed quote in a chunk extension).
  if (!beast.failed && !beast.done)
    return !(mine.head_done && beast.head_done) ||
           (mine.start == beast.start && mine.header == beast.header);
  if (beast.failed) return true;  // both refuse, perhaps at different bytes
  // Beast accepted the message:
  // - RFC 9110 §5.6.4: a quoted-string in a chunk extension holds qdtext and quoted-pairs only
  //   (Beast takes any byte but DQUOTE);
  if (mine.ec == http1::parse_error::bad_quoted_string) return true;
  // - a chunk-size line, or the trailer section, longer than max_header_bytes is a 431
  //   however it arrives (Beast's wrapper saw the bound only when the line came in pieces);
  if (mine.head_done && mine.ec == errc::header_too_large) return true;
  // - Content-Length as http::parse_content_length reads it.
  if (mine.ec == http1::parse_error::bad_content_length && long_content_length(beast.header))
    return true;
  // - a status code outside 100-599 (RFC 9110 §15);
  if (mine.ec == http1::parse_error::bad_status && status_out_of_range(beast)) return true;
  // - '#' in a request-target (RFC 9112 §3.2: a fragment is never sent).
  if (mine.ec == http1::parse_error::bad_target && beast.start.find('#') != std::string::npos)
    return true;
  return false;
}

/// Keep-alive may differ only where RFC 9112 closes and Beast keeps: "close" beside
/// "keep-alive" on HTTP/1.0 (§9.3: close wins), or an HTTP/1.0 message that was chunked (§6.1).
inline bool keep_alive_as_documented(const message& mine, const message& beast) {
  if (mine.keep_alive == beast.keep_alive) return true;
  return !mine.keep_alive && beast.keep_alive && mine.version == 10 &&
         (mine.chunked || connection_close(mine.header) || connection_close(mine.trailer));
}

inline bool same_as_beast(const message& mine, const message& beast) {
  if (mine.failed || beast.failed) return mine.failed == beast.failed;
  if (mine.head_done != beast.head_done || mine.done != beast.done) return false;
  if (!mine.head_done) return true;
  // While a trailer section is incomplete the trailers read so far and the bytes consumed
  // differ: the hand-written parser takes each complete trailer line, Beast the whole section.
  return mine.start == beast.start && mine.version == beast.version &&
         mine.header == beast.header && mine.body == beast.body && mine.length == beast.length &&
         mine.chunked == beast.chunked && keep_alive_as_documented(mine, beast) &&
         (!mine.done || (mine.trailer == beast.trailer && mine.consumed == beast.consumed));
}

/// Parses `data` whole, then split and stepped as its first byte says; both must agree. Then
/// parses it whole with Beast (`make_oracle`): the two must agree as differs_as_documented says.
template <class Make, class MakeOracle>
void run(const std::uint8_t* data, std::size_t size, Make make, MakeOracle make_oracle, bool eof) {
  run(data, size, make, eof);
  std::string_view all(reinterpret_cast<const char*>(data), size);
  auto mine = parse(all, feed{size, 0, 4096}, make, eof);
  auto beast = parse(all, feed{size, 0, 4096}, make_oracle, eof);
  bool same = mine.size() == beast.size();
  for (std::size_t i = 0; i < mine.size() && i < beast.size(); ++i) {
    if (same_as_beast(mine[i], beast[i])) continue;
    // What follows a difference is not compared: the streams are no longer aligned.
    same = differs_as_documented(mine[i], beast[i]);
    break;
  }
  if (!same) {
    std::fprintf(stderr, "hand-written:\n%sbeast:\n%s", describe(mine).c_str(),
                 describe(beast).c_str());
    for (const auto* ms : {&mine, &beast})
      if (!ms->empty() && ms->back().failed)
        std::fprintf(stderr, "error: %s\n", ms->back().ec.message().c_str());
  }
  check(same, "the hand-written parser and Beast disagree");
}

}  // namespace trafficcop::fuzz
