// SPDX-License-Identifier: MIT
// pool_service: per-io_context idle connection lists with lazy expiry and a sweep.
#include "upstream/pool.hpp"

#include <sys/socket.h>

#include <cerrno>

#include <boost/asio/io_context.hpp>

namespace trafficcop::upstream {

asio::execution_context::id pool_service::id;

pool_service::pool_service(asio::execution_context& ctx) : service(ctx) {}

bool is_idle_and_open(asio::ip::tcp::socket& s) noexcept {
  if (!s.is_open()) return false;
  char c;
  ssize_t n = ::recv(s.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
  // 0 = the upstream closed; > 0 = bytes nobody asked for (a stray response): either way the
  // connection cannot carry another request.
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

conn_ptr pool_service::take(std::string_view key, bool check) {
  auto it = idle_.find(key);
  if (it == idle_.end()) return nullptr;
  auto& list = it->second;
  auto now = std::chrono::steady_clock::now();
  while (!list.empty()) {
    conn_ptr c = std::move(list.back());
    list.pop_back();
    bool peek = check || now - c->idle_since >= recent;
    if (c->expires > now && c->pending().empty() && !c->drained() &&
        (!peek || is_idle_and_open(c->io.socket()))) {
      c->set_idle(false);
      return c;
    }
  }
  return nullptr;
}

void pool_service::put(conn_ptr c, std::chrono::milliseconds idle_timeout, std::size_t max_idle) {
  if (max_idle == 0 || idle_timeout.count() <= 0 || !c->io.is_open() || c->drained()) return;
  c->idle_since = std::chrono::steady_clock::now();
  c->expires = c->idle_since + idle_timeout;
  auto it = idle_.find(std::string_view(c->key));
  if (it == idle_.end()) it = idle_.emplace(c->key, std::vector<conn_ptr>{}).first;
  auto& list = it->second;
  if (list.size() >= max_idle) list.erase(list.begin());  // the coldest goes
  c->set_idle(true);
  list.push_back(std::move(c));
  arm_sweep();
}

std::size_t pool_service::idle_count() const {
  std::size_t n = 0;
  for (auto& [k, v] : idle_) n += v.size();
  return n;
}

void pool_service::arm_sweep() {
  if (sweeping_) return;
  if (!timer_)
    timer_ = std::make_unique<asio::steady_timer>(static_cast<asio::io_context&>(context()));
  sweeping_ = true;
  timer_->expires_after(std::chrono::seconds(1));
  timer_->async_wait([this](boost::system::error_code ec) {
    sweeping_ = false;
    if (ec) return;
    sweep();
  });
}

void pool_service::sweep() {
  auto now = std::chrono::steady_clock::now();
  bool any = false;
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& list = it->second;
    std::erase_if(list, [&](const conn_ptr& c) {
      return c->expires <= now || c->drained() || !is_idle_and_open(c->io.socket());
    });
    any = any || !list.empty();
    it = list.empty() ? idle_.erase(it) : std::next(it);
  }
  if (any) arm_sweep();
}

void pool_service::shutdown() {
  idle_.clear();
  timer_.reset();
}

}  // namespace trafficcop::upstream
