// SPDX-License-Identifier: MIT
// libFuzzer target: the HTTP/1.1 response parser on arbitrary bytes, whole and in pieces, and
// against the Beast-based parser it replaced.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "http1_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace trafficcop;
  // As the transport does: a new parser per response (1xx, then the final one), the end of
  // the input is the upstream closing. Bit 4 of the first byte makes it the answer to a HEAD.
  http1::parser_limits limits{.max_header_bytes = 2048, .max_headers = 32};
  const bool head = size > 0 && (data[0] & 0x10);
  fuzz::run(
      data, size,
      [&](std::size_t) { return std::make_unique<http1::response_parser>(head, limits); },
      [&](std::size_t) {
        return std::make_unique<http1::beast_oracle::response_parser>(head, limits);
      },
      /*eof=*/true);
  return 0;
}
