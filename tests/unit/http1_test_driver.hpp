// SPDX-License-Identifier: MIT
// The byte-split driver of the HTTP/1.1 parser tests: feeds a stream of messages to one parser
// per message the way the server and the transport do, whole, split at every point, a byte at
// a time, into output buffers of 1, 7 and 4096 bytes, and records what each parse reported.
#pragma once

#include "http1/parser.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace trafficcop::http1::test {

using fields = std::vector<std::pair<std::string, std::string>>;

inline fields dump(const header_map& h) {
  fields out;
  for (const auto& f : h) out.emplace_back(f.name, f.value);
  return out;
}

/// Everything one parser reported about one message. Two feedings of the same bytes must give
/// equal events.
struct events {
  std::string method;  // requests
  std::string target;
  int status = 0;  // responses
  std::string reason;
  int version = 0;
  fields header;
  fields trailer;
  std::string body;
  std::optional<std::uint64_t> length;
  bool head_done = false;
  bool done = false;
  std::size_t consumed = 0;        // bytes of the stream this message used
  std::size_t consumed_early = 0;  // bytes put_head claimed before the head was complete
  bool failed = false;
  int error_status = 0;     // status_for(ec) on failure
  std::string error;        // "category:value message"; not compared: an early rejection may
                            // name another cause than a late one
  error_code ec;            // the same, as a code
  bool keep_alive = false;  // once done

  bool operator==(const events& o) const {
    auto key = [](const events& e) {
      return std::tie(e.method, e.target, e.status, e.reason, e.version, e.header, e.trailer,
                      e.body, e.length, e.head_done, e.done, e.consumed, e.consumed_early, e.failed,
                      e.error_status, e.keep_alive);
    };
    return key(*this) == key(o);
  }
};

inline void PrintTo(const events& e, std::ostream* os) {
  auto q = [](std::string_view s) { return testing::PrintToString(std::string(s)); };
  *os << "{method=" << q(e.method) << " target=" << q(e.target) << " status=" << e.status
      << " reason=" << q(e.reason) << " version=" << e.version << " header=[";
  for (const auto& [n, v] : e.header) *os << q(n) << ':' << q(v) << ' ';
  *os << "] trailer=[";
  for (const auto& [n, v] : e.trailer) *os << q(n) << ':' << q(v) << ' ';
  *os << "] body=" << q(e.body) << " length=" << (e.length ? std::to_string(*e.length) : "-")
      << " head_done=" << e.head_done << " done=" << e.done << " consumed=" << e.consumed
      << " consumed_early=" << e.consumed_early << " error=" << q(e.error)
      << " error_status=" << e.error_status << '}';
}

/// A connection's input arriving in pieces: the first `first` bytes, then the rest all at once
/// (`step` 0) or `step` bytes at a time.
class stream {
 public:
  stream(std::string_view all, std::size_t first, std::size_t step)
      : all_(all), avail_(std::min(first, all.size())), step_(step) {}
  std::string_view pending(std::size_t from) const { return all_.substr(from, avail_ - from); }
  /// Delivers more bytes; false at the end of the input.
  bool more() {
    if (avail_ == all_.size()) return false;
    avail_ = step_ == 0 ? all_.size() : std::min(all_.size(), avail_ + step_);
    return true;
  }

 private:
  std::string_view all_;
  std::size_t avail_;
  std::size_t step_;
};

inline void fail(events& e, error_code ec) {
  e.failed = true;
  e.ec = ec;
  e.error =
      std::string(ec.category().name()) + ":" + std::to_string(ec.value()) + " " + ec.message();
  e.error_status = status_for(ec);
}

inline void capture_start(events& e, request_parser& p) {
  e.method = p.method();
  e.target = p.target();
}
inline void capture_start(events& e, response_parser& p) {
  e.status = p.status();
  e.reason = p.reason();
}

/// Parses one message from `s` at `off` the way the server and transport do: put_head() on all
/// the buffered bytes until the head is complete, then put_body() into an `out_size` buffer,
/// then (with `eof`) put_eof() once the input ends.
template <class Parser>
events drive(Parser& p, stream& s, std::size_t& off, std::size_t out_size, bool eof) {
  events e;
  error_code ec;
  std::size_t n = 0;
  for (;;) {
    n = p.put_head(s.pending(off), ec);
    if (ec) {
      fail(e, ec);
      return e;
    }
    if (p.is_header_done()) break;
    e.consumed_early += n;  // must stay 0: the caller keeps the bytes and calls again
    if (!s.more()) return e;
  }
  off += n;
  e.consumed = n;
  e.head_done = true;
  capture_start(e, p);
  e.version = p.version();
  e.header = dump(p.fields());
  e.length = p.length();

  std::string out(out_size, '\0');
  for (int guard = 0; !p.is_done(); ++guard) {
    if (guard > 1'000'000) {
      ADD_FAILURE() << "put_body makes no progress";
      break;
    }
    auto step = p.put_body(s.pending(off), asio::buffer(out), ec);
    EXPECT_LE(step.written, out_size);
    off += step.consumed;
    e.consumed += step.consumed;
    e.body.append(out.data(), step.written);
    if (ec) {
      fail(e, ec);
      return e;
    }
    if (step.consumed == 0 && step.written == 0 && !s.more()) {
      if (eof) {
        p.put_eof(ec);
        if (ec) fail(e, ec);
      }
      break;
    }
  }
  e.done = p.is_done();
  if (e.done && !e.failed) e.keep_alive = p.keep_alive();
  e.trailer = dump(p.trailer());
  return e;
}

/// Makes the parser of the i-th message of a stream.
template <class Parser>
using factory = std::function<std::unique_ptr<Parser>(std::size_t i)>;

struct run {
  std::vector<events> messages;
  std::size_t consumed = 0;
  bool operator==(const run&) const = default;
};

inline void PrintTo(const run& r, std::ostream* os) {
  *os << "consumed=" << r.consumed << " messages:";
  for (const auto& m : r.messages) {
    *os << "\n  ";
    PrintTo(m, os);
  }
}

/// Parses up to `count` messages back to back, each with a new parser (Beast's rule), stopping
/// at the first that fails or does not complete.
template <class Parser>
run parse_stream(std::string_view input, std::size_t first, std::size_t step, std::size_t out_size,
                 const factory<Parser>& make, std::size_t count, bool eof) {
  stream s(input, first, step);
  run r;
  for (std::size_t i = 0; i < count; ++i) {
    auto p = make(i);
    r.messages.push_back(drive(*p, s, r.consumed, out_size, eof));
    if (!r.messages.back().done || r.messages.back().failed) break;
  }
  return r;
}

/// Parses `input` at once, then split at every point with several output buffer sizes, then
/// one byte at a time; every result must equal the first. Returns it.
template <class Parser>
run parse_every_split(std::string_view input, const factory<Parser>& make, std::size_t count = 1,
                      bool eof = false) {
  const run want = parse_stream(input, input.size(), 0, 4096, make, count, eof);
  for (std::size_t out_size : {1, 7, 4096}) {
    for (std::size_t k = 0; k <= input.size(); ++k) {
      run got = parse_stream(input, k, 0, out_size, make, count, eof);
      EXPECT_EQ(got, want) << "first " << k << " bytes, then the rest; output buffer " << out_size;
      if (got != want) return want;  // one report per input is enough
    }
    run got = parse_stream(input, 0, 1, out_size, make, count, eof);
    EXPECT_EQ(got, want) << "one byte at a time; output buffer " << out_size;
  }
  return want;
}

inline factory<request_parser> requests(parser_limits limits = {}) {
  return [limits](std::size_t) { return std::make_unique<request_parser>(limits); };
}

/// Response parsers; the messages whose index is in `head` answer a HEAD request.
inline factory<response_parser> responses(std::vector<std::size_t> head = {}) {
  return [head](std::size_t i) {
    bool is_head = std::find(head.begin(), head.end(), i) != head.end();
    return std::make_unique<response_parser>(is_head);
  };
}

}  // namespace trafficcop::http1::test
