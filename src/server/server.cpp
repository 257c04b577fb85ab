// SPDX-License-Identifier: MIT
// server: workers, listeners (SO_REUSEPORT per worker), accept loops, graceful drain.
#include "trafficcop/server.hpp"

#include <csignal>
#include <random>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/fd_budget.hpp"
#include "core/log.hpp"
#include "core/splice.hpp"
#include "server/client_limit.hpp"
#include "server/connection.hpp"
#include "server/tls.hpp"
#include "server/worker.hpp"

namespace trafficcop {

using asio::ip::tcp;
using detail::connection;
using detail::worker;

namespace {

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

/// "host:port" / "[v6]:port" → endpoint.
error_code parse_endpoint(const std::string& s, tcp::endpoint& ep) {
  auto colon = s.rfind(':');
  if (colon == std::string::npos) return asio::error::invalid_argument;
  std::string host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty() || host == "*") host = "0.0.0.0";
  if (host == "localhost") host = "127.0.0.1";
  unsigned long port = 0;
  try {
    port = std::stoul(s.substr(colon + 1));
  } catch (...) {
    return asio::error::invalid_argument;
  }
  if (port > 65535) return asio::error::invalid_argument;
  error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return ec;
  ep = tcp::endpoint(addr, static_cast<unsigned short>(port));
  return {};
}

asio::awaitable<void> accept_loop(worker& w, tcp::acceptor& acc, detail::tls_listener* tls,
                                  const listener_http2* http2, std::size_t index) {
  error_code lec;
  const tcp::endpoint local = acc.local_endpoint(lec);  // a wildcard one is asked per socket
  for (;;) {
    while (w.conns.size() >= w.opts.max_connections && !w.draining) {
      // At the limit: leave new connections in the backlog until one of ours closes.
      if (!w.capacity) w.capacity = std::make_unique<asio::steady_timer>(w.ioc);
      w.capacity->expires_at(asio::steady_timer::time_point::max());
      co_await w.capacity->async_wait(use_nothrow);
    }
    if (w.draining) co_return;
    tcp::endpoint peer;  // filled by accept(2) itself: no getpeername per connection
    auto [ec, sock] = co_await acc.async_accept(peer, use_nothrow);
    if (ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor || w.draining)
      co_return;
    if (ec == asio::error::no_descriptors ||
        ec == error_code(ENFILE, asio::error::get_system_category())) {
      // #14.5: out of descriptors despite the budget. The connection stays in the backlog and
      // the listener stays readable: take it with the spare descriptor and shed it, rather
      // than spin on accept or leave the client waiting.
      detail::note_out_of_descriptors("accept");
      if (w.spare.shed_one(acc.native_handle(), tls == nullptr)) continue;
    }
    if (ec) {
      // Out of descriptors with no spare, or similar: back off briefly instead of spinning.
      if (ec != asio::error::no_descriptors) log::warn("accept: {}", ec.message());
      asio::steady_timer t(w.ioc, std::chrono::milliseconds(50));
      co_await t.async_wait(use_nothrow);
      continue;
    }
    if (w.conns.size() >= w.fds.connections) {
      // #14.5: at the descriptor budget. Accepting would let the process hit EMFILE and fail
      // requests in flight (their upstream connections, their pipes); parking would leave the
      // client waiting in the dark for as long as the connections that fill the worker last
      // (slow readers: minutes). A 503 now tells it to come back.
      detail::note_shed(w.fds.connections);
      error_code rec;
      int fd = sock.release(rec);
      if (!rec) detail::shed_connection(fd, tls == nullptr);
      continue;
    }
    if (w.per_client && !w.per_client->admit(peer.address())) {
      error_code ignored;  // over limits.max_connections_per_client: closed before TLS
      sock.close(ignored);
      continue;
    }
    w.listeners[index].accepted.fetch_add(1, std::memory_order_relaxed);
    auto c = std::make_shared<connection>(std::move(sock), w, peer, local,
                                          tls ? tls->current() : nullptr, http2, index);
    w.conns.insert(c.get());
    w.peak = std::max(w.peak, w.conns.size());
    asio::co_spawn(
        w.ioc, c->run(),
        asio::bind_cancellation_slot(c->cancel_signal.slot(), [c, &w, peer](std::exception_ptr e) {
          if (w.per_client) w.per_client->release(peer.address());
          if (e) {
            try {
              std::rethrow_exception(e);
            } catch (const std::exception& x) {
              log::error("connection failed: {}", x.what());
            }
          }
          w.connection_done(c.get());
        }));
  }
}

}  // namespace

struct server::impl {
  server_options opts;
  handler h;
  // TLS per listener (null: plain); declared before the workers, whose connections use them.
  std::vector<std::unique_ptr<detail::tls_listener>> tls;
  std::vector<listener_http2> http2;                 // per listener, defaults filled in
  std::unique_ptr<detail::listener_stats[]> stats;   // per listener
  std::unique_ptr<detail::client_limit> per_client;  // limits.max_connections_per_client
  std::vector<std::unique_ptr<worker>> workers;
  std::vector<tcp::endpoint> endpoints;
  std::atomic<bool> shutting_down{false};
  detail::fd_plan fds;
};

server::server(server_options opts, handler h) : impl_(std::make_unique<impl>()) {
  impl_->opts = std::move(opts);
  impl_->h = std::move(h);
}

server::~server() {
  if (!impl_->workers.empty()) {
    shutdown(std::chrono::milliseconds(0));
    wait();
  }
}

error_code server::start(std::string& what) {
  auto& o = impl_->opts;
  unsigned n = o.workers ? o.workers : std::max(1u, std::thread::hardware_concurrency());
  // #14.5: the connection and pipe budgets follow from the descriptors the process may open.
  auto nofile = detail::raise_nofile_limit();
  auto plan = detail::plan_descriptors(nofile.now, n, o.listen.size());
  impl_->fds = plan;
  impl_->tls.clear();
  impl_->http2.assign(o.listen.size(), listener_http2{});
  for (std::size_t i = 0; i < o.listen.size() && i < o.http2.size(); ++i)
    impl_->http2[i] = o.http2[i];
  for (std::size_t i = 0; i < o.listen.size(); ++i) {
    if (i >= o.tls.size() || o.tls[i].certificates.empty()) {
      impl_->tls.push_back(nullptr);
      continue;
    }
    std::string err;
    auto t = detail::tls_server::make(o.tls[i], impl_->http2[i].enabled, err);
    if (!t) {
      what = "listen " + o.listen[i] + ": TLS: " + err;
      impl_->tls.clear();
      return asio::error::invalid_argument;
    }
    impl_->tls.push_back(std::make_unique<detail::tls_listener>(std::move(t)));
  }
  std::random_device rd;
  impl_->stats = std::make_unique<detail::listener_stats[]>(o.listen.size());
  if (o.max_connections_per_client > 0)
    impl_->per_client = std::make_unique<detail::client_limit>(o.max_connections_per_client);
  for (unsigned i = 0; i < n; ++i) {
    impl_->workers.push_back(std::make_unique<worker>(impl_->opts, impl_->h, i));
    impl_->workers.back()->listeners = impl_->stats.get();
    impl_->workers.back()->per_client = impl_->per_client.get();
    impl_->workers.back()->id_seed = (std::uint64_t{rd()} << 32) | rd();
    impl_->workers.back()->fds = plan;
  }
  if (nofile.now != 0) {
    std::string raised =
        nofile.before != nofile.now ? " (raised from " + std::to_string(nofile.before) + ")" : "";
    if (o.max_connections <= plan.connections)
      log::info(
          "descriptors: RLIMIT_NOFILE {}{}; per worker {} connections (max_connections, "
          "then accept waits) and {} splice pipes",
          nofile.now, raised, o.max_connections, plan.splice_pipes);
    else
      log::info(
          "descriptors: RLIMIT_NOFILE {}{}; per worker at most {} connections (then new "
          "ones are shed) and {} splice pipes",
          nofile.now, raised, plan.connections, plan.splice_pipes);
  }
  // Bind every listener on every worker; the first bind of a port-0 address picks the port
  // the other workers then share.
  for (const auto& addr : o.listen) {
    tcp::endpoint ep;
    if (auto ec = parse_endpoint(addr, ep)) {
      what = "listen " + addr + ": invalid address";
      impl_->workers.clear();
      return ec;
    }
    for (auto& w : impl_->workers) {
      tcp::acceptor acc(w->ioc);
      error_code ec;
      acc.open(ep.protocol(), ec);
      if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
      if (!ec) acc.set_option(reuse_port(true), ec);
      if (!ec) acc.bind(ep, ec);
      if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
      if (ec) {
        what = "listen " + addr + ": " + ec.message();
        impl_->workers.clear();
        return ec;
      }
      ep = acc.local_endpoint();
      w->acceptors.push_back(std::move(acc));
    }
    impl_->endpoints.push_back(ep);
  }
  for (auto& w : impl_->workers) {
    for (std::size_t i = 0; i < w->acceptors.size(); ++i) {
      auto* tls = impl_->tls[i].get();
      const listener_http2* h2 = &impl_->http2[i];
      if (tls ? !h2->enabled : !h2->h2c) h2 = nullptr;
      asio::co_spawn(w->ioc, accept_loop(*w, w->acceptors[i], tls, h2, i),
                     [](std::exception_ptr e) {
                       if (e) log::error("accept loop ended by an exception");
                     });
    }
    w->thread = std::thread([wp = w.get()] {
      // splice(2) to a socket the client reset raises SIGPIPE (it takes no MSG_NOSIGNAL): the
      // worker blocks it, so the write fails with EPIPE instead of killing an embedding
      // process that did not ignore the signal.
      sigset_t pipe;
      sigemptyset(&pipe);
      sigaddset(&pipe, SIGPIPE);
      pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
      detail::set_splice_pipe_limit(wp->fds.splice_pipes);
      auto guard = asio::make_work_guard(wp->ioc);  // stays up until shutdown stops it
      wp->ioc.run();
    });
  }
  return {};
}

std::vector<tcp::endpoint> server::local_endpoints() const { return impl_->endpoints; }

error_code server::reload_tls(std::string& what) {
  auto& o = impl_->opts;
  std::vector<std::shared_ptr<detail::tls_server>> fresh(impl_->tls.size());
  for (std::size_t i = 0; i < impl_->tls.size(); ++i) {
    if (!impl_->tls[i]) continue;
    std::string err;
    fresh[i] = detail::tls_server::make(o.tls[i], impl_->http2[i].enabled, err);
    if (!fresh[i]) {
      what = "listen " + o.listen[i] + ": TLS: " + err;
      return asio::error::invalid_argument;  // nothing replaced: all or none
    }
  }
  for (std::size_t i = 0; i < impl_->tls.size(); ++i)
    if (impl_->tls[i]) impl_->tls[i]->replace(std::move(fresh[i]));
  return {};
}

void server::shutdown(std::chrono::milliseconds drain) {
  if (impl_->shutting_down.exchange(true)) return;
  for (auto& wp : impl_->workers) {
    worker* w = wp.get();
    asio::post(w->ioc, [w, drain] {
      w->draining = true;
      if (w->capacity) w->capacity->cancel();
      for (auto& acc : w->acceptors) {
        error_code ignored;
        acc.close(ignored);
      }
      for (auto* c : std::vector<connection*>(w->conns.begin(), w->conns.end())) c->drain();
      if (w->conns.empty()) {
        w->ioc.stop();
        return;
      }
      auto timer = std::make_shared<asio::steady_timer>(w->ioc, drain);
      timer->async_wait([w, timer](error_code) {
        for (auto* c : std::vector<connection*>(w->conns.begin(), w->conns.end())) c->force_close();
        // Give cancelled handlers a moment to unwind, then stop regardless.
        auto last = std::make_shared<asio::steady_timer>(w->ioc, std::chrono::seconds(1));
        last->async_wait([w, last](error_code) { w->ioc.stop(); });
      });
    });
  }
}

void server::wait() {
  for (auto& w : impl_->workers)
    if (w->thread.joinable()) w->thread.join();
  impl_->workers.clear();
}

std::vector<listener_counters> server::listener_stats() const {
  std::vector<listener_counters> out;
  if (!impl_->stats) return out;
  for (std::size_t i = 0; i < impl_->endpoints.size(); ++i) {
    const auto& s = impl_->stats[i];
    auto get = [](const std::atomic<std::uint64_t>& a) {
      return a.load(std::memory_order_relaxed);
    };
    out.push_back(
        {get(s.accepted), get(s.open_http1), get(s.open_http2), get(s.tls_ok), get(s.tls_failed)});
  }
  return out;
}
std::uint64_t server::rejected_per_client() const noexcept {
  return impl_->per_client ? impl_->per_client->rejected() : 0;
}

std::size_t server::connection_budget() const noexcept { return impl_->fds.connections; }

std::size_t server::open_connections() const {
  std::size_t n = 0;
  for (auto& w : impl_->workers) n += w->open.load(std::memory_order_relaxed);
  return n;
}

}  // namespace trafficcop
