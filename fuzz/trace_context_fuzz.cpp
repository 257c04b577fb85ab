// SPDX-License-Identifier: MIT
// libFuzzer target: the W3C traceparent parser and the request id rule (src/http/
// trace_context.hpp) on arbitrary bytes. Besides "no crash, no UB", what is accepted must be
// what the spec allows, and what the proxy writes back from it must parse to the same ids.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http/trace_context.hpp"

namespace {

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "trace_context invariant violated: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace trafficcop::http;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (auto tp = parse_traceparent(in)) {
    check(tp->trace_id.size() == 32 && is_nonzero_lower_hex(tp->trace_id), "trace-id");
    check(tp->parent_id.size() == 16 && is_nonzero_lower_hex(tp->parent_id), "parent-id");
    check(in.size() >= 55 && in.substr(0, 2) != "ff", "version");
    check(in.substr(0, 2) != "00" || in.size() == 55, "version 00 is 55 bytes");
    std::string out;
    append_traceparent(out, tp->trace_id, tp->parent_id, tp->flags);
    check(out.size() == 55, "written size");
    auto again = parse_traceparent(out);
    check(again && again->trace_id == tp->trace_id && again->parent_id == tp->parent_id &&
              again->flags == tp->flags,
          "round trip");
    if (in.substr(0, 2) == "00") check(out == in, "version 00 written back byte for byte");
  }
  if (is_sane_request_id(in)) {
    check(!in.empty() && in.size() <= max_request_id_bytes, "id size");
    for (unsigned char c : in) check(c > 0x20 && c < 0x7f && c != '"' && c != '\\', "id byte");
  }
  return 0;
}
