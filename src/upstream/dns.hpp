// SPDX-License-Identifier: MIT
// The DNS messages service discovery needs (RFC 1035, RFC 3596), without I/O: a query for
// the A or AAAA records of a name, and the addresses in its response. Used when an upstream
// names its own DNS servers (`resolve: {servers: [...]}`); otherwise the system resolver
// (getaddrinfo) answers. fuzz/dns_fuzz.cpp feeds parse_response arbitrary bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace trafficcop::upstream::dns {

enum class record_type : std::uint16_t { a = 1, aaaa = 28 };

/// A standard recursive query for `name`'s records of `type` with `id`; empty if `name` is
/// not a valid DNS name (a label over 63 bytes, a name over 253, an empty label).
std::string make_query(std::string_view name, record_type type, std::uint16_t id);

struct response {
  bool ok = false;  // a well-formed answer to our question (any rcode)
  int rcode = 0;    // 0 NOERROR, 3 NXDOMAIN...
  bool truncated = false;
  std::vector<std::string> addresses;  // the answer section's records of the asked type, as text
  std::string error;                   // why not ok
};

/// The response to the query made with (name, type, id): the id and the question must match,
/// else !ok. Records of another type or class (a CNAME chain) are skipped; names are skipped
/// without following compression pointers, so every input ends in one pass.
response parse_response(std::string_view msg, std::string_view name, record_type type,
                        std::uint16_t id);

}  // namespace trafficcop::upstream::dns
