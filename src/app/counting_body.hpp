// SPDX-License-Identifier: MIT
// A body_reader that counts the bytes its reader takes from the one it wraps.
#pragma once

#include <cstdint>

#include "trafficcop/http.hpp"

namespace trafficcop::app {

class counting_body final : public body_reader {
 public:
  explicit counting_body(body_reader* inner) : inner_(inner) {}
  asio::awaitable<read_result> read(asio::mutable_buffer buf) override {
    auto r = co_await inner_->read(buf);
    bytes += r.n;
    co_return r;
  }
  bool ready() const noexcept override { return inner_->ready(); }
  body_reader* inner() const noexcept { return inner_; }
  std::uint64_t bytes = 0;

 private:
  body_reader* inner_;
};

}  // namespace trafficcop::app
