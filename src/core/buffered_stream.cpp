// SPDX-License-Identifier: MIT
// The buffered byte stream of both sides (buffered_stream.hpp).
#include "core/buffered_stream.hpp"

#include <cstring>

#include <boost/asio/this_coro.hpp>

#include "trafficcop/error.hpp"

namespace trafficcop::io {

buffered_stream::buffered_stream(asio::ip::tcp::socket sock, std::size_t initial)
    : sock_(std::move(sock)),
      wd_(sock_.get_executor(),
          [this] {
            error_code ignored;
            sock_.cancel(ignored);
          }),
      buf_(nullptr),
      size_(initial),
      lent_(false) {}

buffered_stream::buffered_stream(asio::ip::tcp::socket sock, char* buf, std::size_t size)
    : sock_(std::move(sock)),
      wd_(sock_.get_executor(),
          [this] {
            error_code ignored;
            sock_.cancel(ignored);
          }),
      buf_(buf),
      size_(size),
      lent_(true) {}

tls_stream& buffered_stream::start_tls(asio::ssl::context& ctx) {
  tls_ = std::make_unique<tls_stream>(sock_, ctx);
  return *tls_;
}

void buffered_stream::close() noexcept {
  error_code ignored;
  sock_.close(ignored);  // close(2) alone sends the FIN (or the RST for unread input)
}

void buffered_stream::shutdown_send() noexcept {
  error_code ignored;
  sock_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
}

asio::mutable_buffer buffered_stream::buffer() {
  if (!buf_) {
    own_.resize(size_);
    buf_ = own_.data();
  }
  return {buf_, size_};
}

asio::awaitable<error_code> buffered_stream::fill(std::chrono::milliseconds timeout,
                                                  bool unless_cancelled) {
  if (unless_cancelled && cancelled(co_await asio::this_coro::cancellation_state))
    co_return asio::error::operation_aborted;
  if (!buf_) buffer();
  if (end_ == size_) {
    if (begin_ > 0) {  // compact; a head must be contiguous for the parsers
      std::memmove(buf_, buf_ + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    } else if (lent_) {
      co_return make_error_code(errc::header_too_large);
    } else {  // an owned buffer full of one head: grow
      size_ *= 2;
      own_.resize(size_);
      buf_ = own_.data();
    }
  }
  wd_.arm(timeout);
  auto room = asio::buffer(buf_ + end_, size_ - end_);
  auto [rec, n] = co_await io::read_some(sock_, tls_.get(), room);
  error_code ec = eof_if_truncated(rec);
  wd_.disarm();
  if (ec == asio::error::operation_aborted && wd_.expired()) ec = asio::error::timed_out;
  end_ += n;
  co_return ec;
}

}  // namespace trafficcop::io
