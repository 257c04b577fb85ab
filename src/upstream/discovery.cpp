// SPDX-License-Identifier: MIT
// DNS service discovery (discovery.hpp).
#include "upstream/discovery.hpp"

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <random>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/ip_port.hpp"
#include "core/log.hpp"
#include "core/watchdog.hpp"
#include "upstream/dns.hpp"

namespace trafficcop::upstream {
namespace {

namespace asio = boost::asio;
using asio::ip::udp;
constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

bool is_ip_literal(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

/// A DNS server's address (port 53 by default); nullopt if it is not one.
std::optional<udp::endpoint> server_endpoint(const std::string& s) {
  auto p = parse_ip_port(s, 53);
  if (!p) return std::nullopt;
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(p->ip, ec);
  if (ec) return std::nullopt;
  return udp::endpoint(addr, p->port);
}

std::uint16_t random_id() {
  thread_local std::mt19937 gen{std::random_device{}()};
  return static_cast<std::uint16_t>(gen());
}

/// One question to one server over UDP, bounded by `timeout`.
asio::awaitable<dns::response> ask(const udp::endpoint& server, const std::string& name,
                                   dns::record_type type, std::chrono::milliseconds timeout) {
  auto ex = co_await asio::this_coro::executor;
  udp::socket sock(ex);
  boost::system::error_code ec;
  sock.open(server.protocol(), ec);
  if (!ec) sock.connect(server, ec);  // replies from elsewhere are not ours
  dns::response r;
  if (ec) {
    r.error = ec.message();
    co_return r;
  }
  auto id = random_id();
  auto query = dns::make_query(name, type, id);
  if (query.empty()) {
    r.error = "not a valid DNS name";
    co_return r;
  }
  watchdog wd(ex, [&sock] {
    boost::system::error_code ignored;
    sock.cancel(ignored);
  });
  wd.arm(timeout);
  auto [sec, sent] = co_await sock.async_send(asio::buffer(query), use_nothrow);
  std::array<char, 4096> buf;
  while (!sec) {
    auto [rec, n] = co_await sock.async_receive(asio::buffer(buf), use_nothrow);
    if (rec) {
      r.error = wd.expired() ? "timed out" : rec.message();
      co_return r;
    }
    r = dns::parse_response({buf.data(), n}, name, type, id);
    if (r.ok || r.error != "DNS answer to another query") co_return r;  // else a stale reply
  }
  r.error = sec.message();
  co_return r;
}

asio::awaitable<resolved> ask_servers(const std::string& name, const resolve_options& o) {
  resolved out;
  std::string last_error = "no DNS server";
  for (const auto& s : o.servers) {
    auto server = server_endpoint(s);
    if (!server) {
      last_error = "bad DNS server address " + s;
      continue;
    }
    bool answered = true;
    std::vector<std::string> found;
    for (auto type : {dns::record_type::a, dns::record_type::aaaa}) {
      auto r = co_await ask(*server, name, type, o.timeout);
      if (!r.ok) {
        last_error = s + ": " + r.error;
        answered = false;
        break;
      }
      if (r.rcode == 3) {  // NXDOMAIN: the name does not exist (authoritative)
        out.error = "no such name (" + s + ")";
        co_return out;
      }
      if (r.rcode != 0) {
        last_error = s + ": DNS error code " + std::to_string(r.rcode);
        answered = false;
        break;
      }
      found.insert(found.end(), r.addresses.begin(), r.addresses.end());
    }
    if (!answered) continue;  // the next server
    if (found.empty()) out.error = "no A or AAAA record (" + s + ")";
    out.addresses = std::move(found);
    co_return out;
  }
  out.error = last_error;
  co_return out;
}

asio::awaitable<resolved> ask_system(const std::string& name) {
  asio::ip::tcp::resolver resolver(co_await asio::this_coro::executor);
  auto [ec, results] = co_await resolver.async_resolve(name, "", use_nothrow);
  resolved out;
  if (ec) {
    out.error = ec.message();
    co_return out;
  }
  for (const auto& r : results) out.addresses.push_back(r.endpoint().address().to_string());
  if (out.addresses.empty()) out.error = "no address";
  co_return out;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& a : v) s += (s.empty() ? "" : ", ") + a;
  return s.empty() ? "none" : s;
}

}  // namespace

asio::awaitable<resolved> resolve_name(const std::string& name, const resolve_options& o) {
  // Not `?:` with a co_await in each arm: g++ 12 freed the result twice that way.
  resolved r;
  if (o.servers.empty())
    r = co_await ask_system(name);
  else
    r = co_await ask_servers(name, o);
  std::sort(r.addresses.begin(), r.addresses.end());
  r.addresses.erase(std::unique(r.addresses.begin(), r.addresses.end()), r.addresses.end());
  co_return r;
}

asio::awaitable<void> discovery_loop(std::shared_ptr<lb::cluster> c,
                                     std::vector<lb::endpoint_options> configured,
                                     resolve_options o,
                                     std::function<void(const lb::cluster::change&)> on_change,
                                     std::function<bool()> alive,
                                     std::function<void()> first_round) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  std::map<std::string, std::vector<std::string>> known;  // the last good answer per name
  std::map<std::string, std::string> failing;             // names failing now, and why
  std::minstd_rand jitter{std::random_device{}()};
  const std::string& upstream = c->options().name;
  while (alive()) {
    auto started = lb::clock::now();
    std::map<std::string, bool> asked;  // a name is asked once per round
    for (const auto& e : configured) {
      if (is_ip_literal(e.host) || asked[e.host]) continue;
      asked[e.host] = true;
      auto r = co_await resolve_name(e.host, o);
      if (!r.error.empty() && r.addresses.empty()) {
        if (failing[e.host] != r.error)
          log::warn("resolve {} of {}: {}; keeping its addresses ({})", e.host, upstream, r.error,
                    joined(known[e.host]));
        failing[e.host] = r.error;
        continue;
      }
      failing.erase(e.host);
      if (known[e.host] != r.addresses)
        log::info("{} of {} resolves to {}", e.host, upstream, joined(r.addresses));
      known[e.host] = std::move(r.addresses);
    }
    std::vector<lb::endpoint_options> list;
    for (const auto& e : configured) {
      auto it = known.find(e.host);
      if (is_ip_literal(e.host) || it == known.end() || it->second.empty()) {
        list.push_back(e);  // an address, or a name never resolved: resolved per connection
        continue;
      }
      for (const auto& a : it->second) {
        auto r = e;
        r.address = a;
        list.push_back(std::move(r));
      }
    }
    auto ch = c->update(list);
    if (!ch.added.empty() || !ch.removed.empty()) {
      std::vector<std::string> in, out;
      for (const auto& e : ch.added) in.push_back(e->authority());
      for (const auto& e : ch.removed) out.push_back(e->authority());
      log::info("endpoints of {}: joined {}; left {}", upstream, joined(in), joined(out));
      on_change(ch);
    }
    if (first_round) std::exchange(first_round, nullptr)();
    auto span = o.refresh / 5;
    auto wait = o.refresh - o.refresh / 10 +
                std::chrono::milliseconds(jitter() % static_cast<unsigned>(span.count() + 1));
    timer.expires_at(started + wait);
    co_await timer.async_wait(use_nothrow);
  }
}

}  // namespace trafficcop::upstream
