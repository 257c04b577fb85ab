// SPDX-License-Identifier: MIT
// watchdog: one steady_timer per owner, rescheduled lazily.
#include "core/watchdog.hpp"

#include <boost/asio/steady_timer.hpp>

namespace trafficcop {

struct watchdog::state {
  explicit state(boost::asio::any_io_executor ex, std::function<void()> cb)
      : timer(std::move(ex)), on_expire(std::move(cb)) {}
  boost::asio::steady_timer timer;
  std::function<void()> on_expire;
  clock::time_point deadline = clock::time_point::max();
  bool waiting = false;
  bool expired = false;
  bool dead = false;

  static void start(const std::shared_ptr<state>& s) {
    s->waiting = true;
    s->timer.expires_at(s->deadline);
    s->timer.async_wait([s](boost::system::error_code) {
      s->waiting = false;
      if (s->dead || s->deadline == clock::time_point::max()) return;
      if (clock::now() < s->deadline) return start(s);
      s->deadline = clock::time_point::max();
      s->expired = true;
      s->on_expire();
    });
  }
};

watchdog::watchdog(boost::asio::any_io_executor ex, std::function<void()> on_expire)
    : s_(std::make_shared<state>(std::move(ex), std::move(on_expire))) {}

watchdog::~watchdog() {
  s_->dead = true;
  s_->timer.cancel();
}

void watchdog::arm(clock::duration d) {
  s_->expired = false;
  if (d <= clock::duration::zero()) {
    s_->deadline = clock::time_point::max();
    return;
  }
  s_->deadline = clock::now() + d;
  if (!s_->waiting)
    state::start(s_);
  else if (s_->deadline < s_->timer.expiry())
    s_->timer.cancel();  // the handler restarts the wait with the earlier deadline
}

void watchdog::disarm() noexcept { s_->deadline = clock::time_point::max(); }

bool watchdog::expired() const noexcept { return s_->expired; }

}  // namespace trafficcop
