// SPDX-License-Identifier: MIT
// The live generation and its per-worker pins (live.hpp).
#include "app/live.hpp"

#include <algorithm>

namespace trafficcop::app {

handler live_config::entry() {
  return [this](response_writer& w, request& in) -> asio::awaitable<void> {
    struct pin {
      std::shared_ptr<const generation> g;
    };
    struct worker_cache {
      const live_config* owner = nullptr;
      std::uint64_t version = 0;
      std::shared_ptr<pin> p;
    };
    thread_local worker_cache c;
    if (c.owner != this || c.version != version_.load(std::memory_order_acquire)) {
      std::lock_guard l(mu_);
      c.p = std::make_shared<pin>(pin{current_});
      c.version = version_.load(std::memory_order_relaxed);
      c.owner = this;
    }
    auto keep = c.p;  // this worker's own count: the generation lives while the request does
    co_await keep->g->h(w, in);
  };
}

void live_config::swap(std::shared_ptr<const generation> g) {
  std::lock_guard l(mu_);
  current_ = std::move(g);
  version_.fetch_add(1, std::memory_order_release);
}

std::shared_ptr<const generation> live_config::current() const {
  std::lock_guard l(mu_);
  return current_;
}

std::string needs_restart(const config::config& a, const config::config& b) {
  std::string out;
  auto check = [&](bool same, const char* key) {
    if (same) return;
    if (!out.empty()) out += ", ";
    out += key;
  };
  // Listeners may come and go; one kept (same address) keeps its socket, so its settings stay.
  for (std::size_t i = 0; i < b.listeners.size(); ++i) {
    const auto& n = b.listeners[i];
    auto o = std::find_if(a.listeners.begin(), a.listeners.end(),
                          [&](const config::listener& l) { return l.address == n.address; });
    if (o == a.listeners.end()) continue;
    std::string at = "listeners[" + std::to_string(i) + "].";
    check(o->tls == n.tls, (at + "tls").c_str());
    check(o->http2 == n.http2, (at + "http2").c_str());
    check(o->proxy_protocol == n.proxy_protocol, (at + "proxy_protocol").c_str());
  }
  check(a.workers == b.workers, "workers");
  check(a.limits == b.limits, "limits");
  // timeouts.drain_on_reload is read by the reload itself (the new config's value applies).
  auto ta = a.timeouts, tb = b.timeouts;
  ta.drain_on_reload = tb.drain_on_reload;
  check(ta == tb, "timeouts");
  check(a.headers_with_underscores == b.headers_with_underscores, "headers_with_underscores");
  check(a.trusted_proxies == b.trusted_proxies, "trusted_proxies");
  bool admin_same =
      a.admin.has_value() == b.admin.has_value() &&
      (!a.admin || (a.admin->address == b.admin->address && a.admin->allow == b.admin->allow));
  check(admin_same, "admin");
  return out;
}

}  // namespace trafficcop::app
