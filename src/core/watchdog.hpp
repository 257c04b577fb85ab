// SPDX-License-Identifier: MIT
// A cheap resettable deadline for one connection.
//
// Re-arming only stores a time point; the single timer wait catches up lazily, so a deadline
// per socket operation costs no syscall. On expiry the owner's callback runs (typically
// socket.cancel()), and the pending operation completes with operation_aborted; the owner then
// asks expired() to tell a timeout from other aborts.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include <boost/asio/any_io_executor.hpp>

namespace trafficcop {

class watchdog {
 public:
  using clock = std::chrono::steady_clock;

  watchdog(boost::asio::any_io_executor ex, std::function<void()> on_expire);
  ~watchdog();
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

  /// Expires `d` from now; a zero or negative `d` disarms. Clears expired().
  void arm(clock::duration d);
  void disarm() noexcept;
  bool expired() const noexcept;

 private:
  struct state;
  std::shared_ptr<state> s_;
};

}  // namespace trafficcop
