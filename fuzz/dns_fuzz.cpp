// SPDX-License-Identifier: MIT
// libFuzzer target: the DNS response parser of service discovery (src/upstream/dns.hpp) on
// arbitrary bytes, read as the answer to "api.example.com" (A, or AAAA when the third byte is
// odd). The id is taken from the input itself, so that inputs get past the id check.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "upstream/dns.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace trafficcop::upstream::dns;
  if (size < 3 || size > 4096) return 0;
  std::string_view msg(reinterpret_cast<const char*>(data), size);
  auto id = static_cast<std::uint16_t>(data[0] << 8 | data[1]);
  auto type = (data[2] & 1) ? record_type::aaaa : record_type::a;
  auto r = parse_response(msg, "api.example.com", type, id);
  using trafficcop::fuzz::check;
  check(r.ok || r.addresses.empty(), "a rejected answer carries no address", msg);
  check(r.ok || !r.error.empty(), "a rejected answer says why", msg);
  for (const auto& a : r.addresses) {
    unsigned char buf[16];
    int family = type == record_type::a ? AF_INET : AF_INET6;
    check(inet_pton(family, a.c_str(), buf) == 1, "an address of the asked family", msg);
  }
  // The same bytes as the answer to another id are never accepted.
  auto other = parse_response(msg, "api.example.com", type, static_cast<std::uint16_t>(id + 1));
  check(!other.ok, "an answer to another id is refused", msg);
  // Our own query is not an answer.
  auto q = make_query("api.example.com", type, id);
  check(!parse_response(q, "api.example.com", type, id).ok, "a query is not a response", msg);
  return 0;
}
