// SPDX-License-Identifier: MIT
// libFuzzer target: the PROXY protocol parser (src/http/proxy_protocol.hpp) on arbitrary
// bytes. Besides "no crash, no UB": the answer on a prefix agrees with the answer on the
// whole (a prefix of a header needs more, never fails; a failure stays a failure as bytes
// arrive; a header's length and addresses do not depend on what follows it), the header
// claims no more bytes than it was given and no more than its bound, and a header that names
// addresses survives being written back with make_v1/make_v2 and parsed again.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "http/proxy_protocol.hpp"

namespace {

namespace pp = trafficcop::proxy_protocol;

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "proxy_protocol invariant violated: %s\n", what);
  std::abort();
}

bool same(const pp::result& a, const pp::result& b) {
  if (a.st != b.st) return false;
  if (a.st != pp::status::done) return true;
  return a.h.version == b.h.version && a.h.size == b.h.size &&
         a.h.has_addresses == b.h.has_addresses && a.h.source == b.h.source &&
         a.h.destination == b.h.destination;
}

void round_trip(const pp::header& h) {
  for (int v = 1; v <= 2; ++v) {
    auto bytes =
        v == 1 ? pp::make_v1(h.source, h.destination) : pp::make_v2(h.source, h.destination);
    auto r = pp::parse(bytes);
    check(r.st == pp::status::done && r.h.size == bytes.size(), "a written header parses");
    check(r.h.has_addresses, "a written header names its addresses");
    // Mixed families come back as v4-mapped IPv6; the ports always survive.
    check(r.h.source.port() == h.source.port() && r.h.destination.port() == h.destination.port(),
          "ports survive a round trip");
    if (h.source.address().is_v4() == h.destination.address().is_v4())
      check(r.h.source == h.source && r.h.destination == h.destination,
            "addresses survive a round trip");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 8192) return 0;  // twice the bound: enough to cover "too large"
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto whole = pp::parse(in);
  if (whole.st == pp::status::invalid) check(!whole.error.empty(), "a rejection says why");
  if (whole.st == pp::status::done) {
    check(whole.h.size > 0 && whole.h.size <= size, "the header is inside the input");
    check(whole.h.size <= (whole.h.version == 1 ? pp::max_v1_bytes : pp::max_header_bytes),
          "the header is within its bound");
    if (whole.h.has_addresses) round_trip(whole.h);
  }
  // Every prefix for small inputs, a sample of them for larger ones.
  const std::size_t step = size <= 512 ? 1 : size / 64 + 1;
  bool failed_before = false;
  for (std::size_t n = 0; n <= size; n += step) {
    auto r = pp::parse(in.substr(0, n));
    check(!failed_before || r.st == pp::status::invalid, "a failure stays a failure");
    failed_before = r.st == pp::status::invalid;
    switch (whole.st) {
      case pp::status::need_more:
        check(r.st == pp::status::need_more, "a prefix of an incomplete header needs more");
        break;
      case pp::status::done:
        if (n < whole.h.size)
          check(r.st == pp::status::need_more, "a prefix of a header needs more");
        else
          check(same(r, whole), "a header does not depend on what follows it");
        break;
      case pp::status::invalid:
        check(r.st != pp::status::done, "a prefix of garbage is not a header");
        break;
    }
  }
  return 0;
}
