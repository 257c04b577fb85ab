// SPDX-License-Identifier: MIT
// What the server's connections set on a request that handlers may not: the flag that says
// the client left (request::client_gone()). Kept out of the public header.
#pragma once

#include "trafficcop/http.hpp"

namespace trafficcop {

struct request_access {
  /// `gone` is owned by the connection (or HTTP/2 stream) and outlives the request's handler.
  static void set_client_gone(request& r, const bool* gone) noexcept { r.client_gone_ = gone; }
};

}  // namespace trafficcop
