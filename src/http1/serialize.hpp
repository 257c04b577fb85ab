// SPDX-License-Identifier: MIT
// HTTP/1.1 head and chunk framing, appended to a byte buffer (the write side of the codec).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "trafficcop/http.hpp"

namespace trafficcop::http1 {

/// "METHOD target HTTP/1.1\r\n" + fields + "\r\n".
void append_request_head(std::string& out, std::string_view method, std::string_view target,
                         const header_map& fields);

/// "HTTP/1.1 status reason\r\n" + fields + extra + "\r\n". `version` 10 answers an HTTP/1.0
/// client. `extra`: field lines already serialised ("Name: value\r\n"...), such as a listener's
/// Strict-Transport-Security, so that a field added to every response costs one append.
void append_response_head(std::string& out, int status, const header_map& fields, int version = 11,
                          std::string_view extra = {});

/// "<hex size>\r\n"; the caller appends the data and then "\r\n".
void append_chunk_header(std::string& out, std::size_t size);

/// "0\r\n" + trailer fields + "\r\n".
void append_last_chunk(std::string& out, const header_map& trailer);

}  // namespace trafficcop::http1
