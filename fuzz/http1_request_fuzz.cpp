// SPDX-License-Identifier: MIT
// libFuzzer target: the HTTP/1.1 request parser on arbitrary bytes, whole and in pieces, and
// against the Beast-based parser it replaced.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "http1_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace trafficcop;
  // Small limits, so that inputs the fuzzer can grow reach them; bit 5 of the first byte
  // switches the body limit on.
  http1::parser_limits limits{.max_header_bytes = 2048,
                              .max_headers = 32,
                              .max_uri_bytes = 512,
                              .max_body_bytes = size > 0 && (data[0] & 0x20) ? 1000u : 0u};
  fuzz::run(
      data, size, [&](std::size_t) { return std::make_unique<http1::request_parser>(limits); },
      [&](std::size_t) { return std::make_unique<http1::beast_oracle::request_parser>(limits); },
      /*eof=*/false);
  return 0;
}
