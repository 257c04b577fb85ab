// SPDX-License-Identifier: MIT
// Worker methods: request ids, the hang-up watch sweep, the end of a connection, the release
// of memory after a burst, and what the server asks of its connections (stop a listener, shut
// down, close requests that started before a reload).
#include "server/worker.hpp"

#include <malloc.h>

#include <vector>

#include "core/thread_caches.hpp"
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
    for (connection* c : conns)
      if (c->sweep_watch(watch_tick)) wanted = true;
    if (wanted)
      sweep_watches();
    else
      watch_sweeping = false;
  });
}

void worker::connection_done(connection* c) {
  conns.erase(c);
  if (capacity) capacity->cancel();  // wake an accept loop parked at max_connections
  if (draining && conns.empty()) {
    ioc.stop();
    return;
  }
  release_memory_after_burst();
}

void worker::stop_listener(std::size_t id) {
  for (auto& a : acceptors) {
    if (a.listener != id) continue;
    error_code ignored;
    a.acc.close(ignored);  // its accept loop ends with operation_aborted, then lets go
  }
  for (auto* c : std::vector<connection*>(conns.begin(), conns.end()))
    if (c->listener_id() == id) c->drain();
}

void worker::shut_down(std::chrono::milliseconds drain) {
  draining = true;
  if (capacity) capacity->cancel();
  for (auto& a : acceptors) {
    error_code ignored;
    a.acc.close(ignored);
  }
  for (auto* c : std::vector<connection*>(conns.begin(), conns.end())) c->drain();
  if (conns.empty()) {
    ioc.stop();
    return;
  }
  auto timer = std::make_shared<asio::steady_timer>(ioc, drain);
  timer->async_wait([this, timer](error_code) {
    for (auto* c : std::vector<connection*>(conns.begin(), conns.end())) c->force_close();
    // Give cancelled handlers a moment to unwind, then stop regardless.
    auto last = std::make_shared<asio::steady_timer>(ioc, std::chrono::seconds(1));
    last->async_wait([this, last](error_code) { ioc.stop(); });
  });
}

void worker::close_started_before(std::chrono::steady_clock::time_point started_before,
                                  std::chrono::steady_clock::time_point deadline) {
  auto timer = std::make_shared<asio::steady_timer>(ioc, deadline);
  timer->async_wait([this, timer, started_before](error_code) {
    for (auto* c : std::vector<connection*>(conns.begin(), conns.end()))
      c->close_started_before(started_before);
  });
}

void worker::release_memory_after_burst() {
  // #14.6: after a burst, memory stayed at its peak: the thread's caches kept what the busiest
  // moment needed, and glibc keeps freed pages of its arenas mapped. Once enough of the peak's
  // connections have closed, the caches are cut to a warm core and the free pages returned
  // (malloc_trim releases whole free pages anywhere in every arena, not only the heap's top).
  // A second's delay lets the rest of the burst close first, so one trim covers it; steady
  // traffic never comes here, so its caches stay warm.
  std::size_t open = conns.size();
  if (trim_pending || peak < open + trim_after_closed || open > peak / 2) return;
  trim_pending = true;
  if (!trim_timer) trim_timer = std::make_unique<asio::steady_timer>(ioc);
  trim_timer->expires_after(std::chrono::seconds(1));
  trim_timer->async_wait([this](error_code ec) {
    trim_pending = false;
    if (ec || draining) return;
    thread_caches::trim(trim_keep);
    ::malloc_trim(0);
    peak = conns.size();
  });
}

}  // namespace trafficcop::detail
