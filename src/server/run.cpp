// SPDX-License-Identifier: MIT
// server::run(): start, serve until SIGINT/SIGTERM, drain, return (the five-line program).
#include <csignal>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "trafficcop/server.hpp"

namespace trafficcop {

error_code server::run(std::string& what, std::chrono::milliseconds drain) {
  // The signals are registered before start(): one that arrives as soon as the server answers
  // is not lost (nor does it kill the process with the default action).
  asio::io_context main_loop;
  asio::signal_set signals(main_loop, SIGINT, SIGTERM);
  if (auto ec = start(what)) return ec;
  signals.async_wait([&](error_code ec, int) {
    if (!ec) shutdown(drain);
  });
  main_loop.run();
  wait();
  return {};
}

}  // namespace trafficcop
