// SPDX-License-Identifier: MIT
// bench/relay/asio_close_inflight.cpp — does a read that is in flight when its socket is
// closed complete exactly once, with operation_aborted, and does the next socket's read get
// its own bytes? Built for Asio's epoll reactor (asio_close_inflight_epoll) and for its
// io_uring backend (asio_close_inflight_uring); see README.md, "Correctness".
//
//   asio_close_inflight_uring [ROUNDS]      exit status 0: every read behaved
//
// Each round: a connected pair (a, b), a read on b that cannot complete yet, one poll (the
// read is submitted), b closed; then a new pair (c, d), a read on d, one byte written on c,
// and the loop runs until both reads have completed (at most 100 ms).
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

int main(int argc, char** argv) {
  int rounds = argc > 1 ? std::atoi(argv[1]) : 1000;
  asio::io_context ioc{1};
  auto guard = asio::make_work_guard(ioc);
  tcp::acceptor acc(ioc, tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), 0));
  long started = 0, completed = 0, aborted = 0, closed_other = 0, new_wrong = 0;
  char closed_buf[64], new_buf[64];
  for (int i = 0; i < rounds; ++i) {
    tcp::socket a(ioc), b(ioc);
    a.connect(acc.local_endpoint());
    acc.accept(b);
    ++started;
    b.async_read_some(asio::buffer(closed_buf), [&](error_code ec, std::size_t n) {
      ++completed;
      if (ec == asio::error::operation_aborted) {
        ++aborted;
      } else if (++closed_other <= 3) {
        std::printf("read on the closed socket completed with: %s, %zu bytes\n",
                    ec.message().c_str(), n);
      }
    });
    ioc.poll();  // the read goes to the kernel (epoll: registered; io_uring: an SQE)
    b.close();   // with the read in flight

    tcp::socket c(ioc), d(ioc);
    c.connect(acc.local_endpoint());
    acc.accept(d);
    ++started;
    d.async_read_some(asio::buffer(new_buf), [&](error_code ec, std::size_t n) {
      ++completed;
      if (ec || n != 1) {
        if (++new_wrong <= 3)
          std::printf("read on the new socket completed with: %s, %zu bytes\n",
                      ec.message().c_str(), n);
      }
    });
    ioc.poll();
    c.write_some(asio::buffer("x", 1));
    for (int k = 0; k < 50 && completed < started; ++k) ioc.run_for(std::chrono::milliseconds(2));
  }
  ioc.run_for(std::chrono::milliseconds(200));
  std::printf(
      "reads started %ld, handlers run %ld: %ld closed-socket reads aborted, %ld completed "
      "otherwise; %ld new-socket reads without their byte; %ld handlers never ran\n",
      started, completed, aborted, closed_other, new_wrong, started - completed);
  return started == completed && closed_other == 0 && new_wrong == 0 ? 0 : 1;
}
