// SPDX-License-Identifier: MIT
// HTTP/1.1 serialisation: plain appends, no allocation beyond the output buffer's growth.
#include "http1/serialize.hpp"

#include <charconv>

namespace trafficcop::http1 {
namespace {

void append_fields(std::string& out, const header_map& fields, std::string_view extra = {}) {
  for (const auto& f : fields) {
    out += f.name;
    out += ": ";
    out += f.value;
    out += "\r\n";
  }
  out += extra;
  out += "\r\n";
}

void append_number(std::string& out, unsigned long long v, int base) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v, base);
  out.append(buf, r.ptr);
}

}  // namespace

void append_request_head(std::string& out, std::string_view method, std::string_view target,
                         const header_map& fields) {
  out += method;
  out += ' ';
  out += target;
  out += " HTTP/1.1\r\n";
  append_fields(out, fields);
}

void append_response_head(std::string& out, int status, const header_map& fields, int version,
                          std::string_view extra) {
  out += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  append_number(out, static_cast<unsigned>(status), 10);
  out += ' ';
  out += reason_phrase(status);
  out += "\r\n";
  append_fields(out, fields, extra);
}

void append_chunk_header(std::string& out, std::size_t size) {
  append_number(out, size, 16);
  out += "\r\n";
}

void append_last_chunk(std::string& out, const header_map& trailer) {
  out += "0\r\n";
  append_fields(out, trailer);
}

}  // namespace trafficcop::http1
