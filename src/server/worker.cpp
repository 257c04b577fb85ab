// SPDX-License-Identifier: MIT
// Worker helpers: request ids, the hang-up watch sweep, the end of a connection.
#include "server/worker.hpp"

#include "server/connection.hpp"

namespace trafficcop::detail {

void worker::make_request_id(std::string& out) {
  // 8 hex digits of seed, 2 of worker index, 10 of sequence: unique across workers and
  // restarts. Written by hand: snprintf costs more than the rest of the id handling together.
  static constexpr char hex[] = "0123456789abcdef";
  char buf[20];
  auto put = [&](std::size_t at, std::size_t digits, std::uint64_t v) {
    for (std::size_t i = 0; i < digits; ++i) buf[at + digits - 1 - i] = hex[(v >> (4 * i)) & 15];
  };
  put(0, 8, id_seed & 0xffffffffu);
  put(8, 2, index & 0xffu);
  put(10, 10, ++next_request);
  out.assign(buf, sizeof buf);
}

std::uint64_t worker::want_watch() {
  if (!watch_sweeping) {
    watch_sweeping = true;
    if (!watch_timer) watch_timer = std::make_unique<asio::steady_timer>(ioc);
    sweep_watches();
  }
  return watch_tick;
}

void worker::sweep_watches() {
  watch_timer->expires_after(watch_period);
  watch_timer->async_wait([this](error_code ec) {
    if (ec) {
      watch_sweeping = false;
      return;
    }
    ++watch_tick;
    bool wanted = false;
    for (connection* c : conns) {
      if (c->wants_watch(watch_tick))
        c->begin_watch();
      else if (c->want_watch_)
        wanted = true;
    }
    if (wanted)
      sweep_watches();
    else
      watch_sweeping = false;
  });
}

void worker::connection_done(connection* c) {
  conns.erase(c);
  if (capacity) capacity->cancel();  // wake an accept loop parked at max_connections
  if (draining && conns.empty()) ioc.stop();
}

}  // namespace trafficcop::detail
