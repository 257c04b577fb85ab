// SPDX-License-Identifier: MIT
// A JSON string literal: the access log's lines and the admin API's documents.
#pragma once

#include <iterator>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace trafficcop::app {

/// Appends `s` quoted, with `"`, `\` and control bytes escaped; bytes from 0x80 up pass as
/// they are (UTF-8 stays readable; invalid UTF-8 is not repaired).
inline void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f)
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
        else
          out += static_cast<char>(c);
    }
  }
  out += '"';
}

}  // namespace trafficcop::app
