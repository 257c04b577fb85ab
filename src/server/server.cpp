// SPDX-License-Identifier: MIT
// server: workers, listeners (SO_REUSEPORT per worker), accept loops, graceful drain.
#include "trafficcop/server.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/failures.hpp"
#include "core/fd_budget.hpp"
#include "core/log.hpp"
#include "core/splice.hpp"
#include "server/accept.hpp"
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

/// An inherited socket (server_options::inherited_fds) and the address it listens on; one
/// that is not a listening TCP socket is never matched.
struct inherited_socket {
  int fd = -1;
  tcp::endpoint ep;
  bool listening = false;
  bool used = false;
};

std::vector<inherited_socket> inspect_inherited(const std::vector<int>& fds) {
  std::vector<inherited_socket> out;
  for (int fd : fds) {
    inherited_socket s{fd, {}, false, false};
    int type = 0, accepting = 0;
    socklen_t len = sizeof type;
    bool stream = ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
    len = sizeof accepting;
    bool listens = ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) == 0 && accepting;
    sockaddr_storage ss{};
    len = sizeof ss;
    if (stream && listens && ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0 &&
        (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
      std::memcpy(s.ep.data(), &ss, len);
      s.ep.resize(len);
      s.listening = true;
    }
    out.push_back(s);
  }
  return out;
}

/// A fresh SO_REUSEPORT listener on `ep`.
error_code bind_acceptor(tcp::acceptor& acc, const tcp::endpoint& ep) {
  error_code ec;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acc.set_option(reuse_port(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  return ec;
}

asio::awaitable<void> accept_loop(worker& w, tcp::acceptor& acc, detail::tls_listener* tls,
                                  const listener_http2* http2, detail::listener_ref listener) {
  error_code lec;
  const tcp::endpoint local = acc.local_endpoint(lec);  // a wildcard one is asked per socket
  for (;;) {
    while (w.conns.size() >= w.opts.max_connections && !w.draining) {
      // At the limit: leave new connections in the backlog until one of ours closes.
      // The expiry is set once: setting it again would cancel the wait of another accept loop
      // parked on this worker (several listeners), and the two would wake each other forever.
      // connection_done() and shutdown cancel the wait, which wakes every parked loop.
      if (!w.capacity) {
        w.capacity = std::make_unique<asio::steady_timer>(w.ioc);
        w.capacity->expires_at(asio::steady_timer::time_point::max());
      }
      co_await w.capacity->async_wait(use_nothrow);
    }
    if (w.draining) co_return;
    tcp::endpoint peer;  // filled by accept(2) itself: no getpeername per connection
    auto [ec, sock] = co_await detail::accept_nonblocking(acc, peer);
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
    auto c = std::make_shared<connection>(std::move(sock), w, peer, local,
                                          tls ? tls->current() : nullptr, http2, listener);
    // Admitted once the connection exists (its constructor may throw): from here on the
    // completion handler below releases the count. Over the limit, `c` closes the socket
    // before any TLS byte.
    if (w.per_client && !w.per_client->admit(peer.address())) continue;
    listener.stats->accepted.fetch_add(1, std::memory_order_relaxed);
    w.conns.insert(c.get());
    w.peak = std::max(w.peak, w.conns.size());
    asio::co_spawn(
        w.ioc, c->run(),
        asio::bind_cancellation_slot(c->cancel_signal.slot(), [c, &w, peer](std::exception_ptr e) {
          if (w.per_client) w.per_client->release(peer.address());
          note_coroutine_failure("connection", e);
          w.connection_done(c.get());
        }));
  }
}

}  // namespace

/// A listener, by id (request::listener). Workers hold pointers to its TLS, HTTP/2 settings
/// and counters, so it never moves and lives as long as the server (a listener removed by a
/// reload keeps its slot, closed).
struct listener_slot {
  std::size_t id = 0;
  std::string address;
  tcp::endpoint ep;
  listener_tls tls_opts;
  std::unique_ptr<detail::tls_listener> tls;  // null: plain
  listener_http2 http2;                       // defaults filled in
  bool proxy_protocol = false;
  detail::listener_stats stats;
  std::vector<int> fds;  // its accepting sockets (the main thread's record, for upgrades)
  bool removed = false;

  const listener_http2* h2() const { return (tls ? http2.enabled : http2.h2c) ? &http2 : nullptr; }
  detail::listener_ref ref() { return {id, &stats, proxy_protocol}; }
};

struct server::impl {
  server_options opts;  // as started; the listeners are the slots' from then on
  handler h;
  // Declared before the workers, whose connections use them.
  std::vector<std::unique_ptr<listener_slot>> slots;  // by id
  std::vector<std::size_t> active;                    // the listeners' ids, in listen order
  mutable std::mutex mu;  // slots (the vector, fds, removed) and active: read by any thread
  std::unique_ptr<detail::client_limit> per_client;  // limits.max_connections_per_client
  std::vector<std::unique_ptr<worker>> workers;
  std::atomic<bool> shutting_down{false};
  detail::fd_plan fds;
  std::vector<int> inherited_unused;

  std::unique_ptr<listener_slot> make_slot(const server_options& o, std::size_t i, std::size_t id,
                                           std::string& what) const;
  error_code bind_listener(listener_slot& s, std::vector<inherited_socket>& pool,
                           std::vector<std::pair<std::size_t, int>>& out) const;
};

std::unique_ptr<listener_slot> server::impl::make_slot(const server_options& o, std::size_t i,
                                                       std::size_t id, std::string& what) const {
  auto s = std::make_unique<listener_slot>();
  s->id = id;
  s->address = o.listen[i];
  if (parse_endpoint(s->address, s->ep)) {
    what = "listen " + s->address + ": invalid address";
    return nullptr;
  }
  if (i < o.http2.size()) s->http2 = o.http2[i];
  s->proxy_protocol = i < o.proxy_protocol.size() && o.proxy_protocol[i];
  if (i < o.tls.size()) s->tls_opts = o.tls[i];
  if (!s->tls_opts.certificates.empty()) {
    std::string err;
    auto t = detail::tls_server::make(s->tls_opts, s->http2.enabled, err);
    if (!t) {
      what = "listen " + s->address + ": TLS: " + err;
      return nullptr;
    }
    s->tls = std::make_unique<detail::tls_listener>(std::move(t));
  }
  return s;
}

/// The sockets of `s`, as (worker index, fd): inherited ones bound to its address, else one
/// fresh SO_REUSEPORT socket per worker. Nothing is left open on failure.
error_code server::impl::bind_listener(listener_slot& s, std::vector<inherited_socket>& pool,
                                       std::vector<std::pair<std::size_t, int>>& out) const {
  std::vector<int> mine;  // inherited sockets on this address (never for port 0)
  for (auto& in : pool)
    if (s.ep.port() != 0 && in.listening && !in.used && in.ep == s.ep) {
      in.used = true;
      mine.push_back(in.fd);
    }
  auto fail = [&](error_code ec) {
    for (auto& [w, fd] : out) ::close(fd);
    out.clear();
    return ec;
  };
  if (mine.empty()) {
    // The first bind of a port-0 address picks the port the other workers then share.
    asio::io_context scratch;
    for (std::size_t w = 0; w < workers.size(); ++w) {
      tcp::acceptor acc(scratch);
      if (auto ec = bind_acceptor(acc, s.ep)) return fail(ec);
      s.ep = acc.local_endpoint();
      out.emplace_back(w, acc.release());
    }
    return {};
  }
  // Every inherited socket is accepted on (closing one would reset the connections queued in
  // its backlog): socket k goes to worker k % n, and a worker left without one accepts on a
  // duplicate (the same socket, so its queue is shared rather than a new one made).
  for (std::size_t k = 0; k < std::max(mine.size(), workers.size()); ++k) {
    int fd = k < mine.size() ? mine[k] : ::fcntl(mine[k % mine.size()], F_DUPFD_CLOEXEC, 3);
    if (fd < 0) return fail(error_code(errno, asio::error::get_system_category()));
    if (k < mine.size()) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    out.emplace_back(k % workers.size(), fd);
  }
  return {};
}

namespace {

/// A kept listener's socket and TLS contexts stay: only its name may change.
bool same_settings(const listener_slot& k, const listener_slot& s) {
  const auto &a = k.tls_opts, &b = s.tls_opts;
  bool same_hsts = a.hsts.has_value() == b.hsts.has_value() &&
                   (!a.hsts || (a.hsts->max_age == b.hsts->max_age &&
                                a.hsts->include_subdomains == b.hsts->include_subdomains &&
                                a.hsts->preload == b.hsts->preload));
  bool same_tls = a.certificates.empty() == b.certificates.empty() &&
                  a.min_version == b.min_version && a.ciphers == b.ciphers &&
                  a.client_ca_file == b.client_ca_file &&
                  a.require_client_cert == b.require_client_cert && same_hsts;
  const auto &x = k.http2, &y = s.http2;
  bool same_h2 = x.enabled == y.enabled && x.h2c == y.h2c &&
                 x.max_concurrent_streams == y.max_concurrent_streams &&
                 x.initial_window_size == y.initial_window_size &&
                 x.connection_window_size == y.connection_window_size &&
                 x.max_header_list_size == y.max_header_list_size;
  return same_tls && same_h2 && k.proxy_protocol == s.proxy_protocol;
}

/// Worker `w` accepts on `fd` for listener `s` (on w's thread, or before it runs).
void accept_on(worker& w, listener_slot& s, int fd) {
  tcp::acceptor acc(w.ioc);
  error_code ec;
  acc.assign(s.ep.protocol(), fd, ec);
  if (ec) {
    ::close(fd);
    log::error("listen {}: {}", s.address, ec.message());
    return;
  }
  // Accepted sockets inherit TCP_NODELAY from here (inherited fds too: an upgrade).
  if (ec = detail::set_listener_options(acc); ec) {
    log::error("listen {}: TCP_NODELAY or O_NONBLOCK: {}", s.address, ec.message());
    acc.close(ec);
    return;
  }
  auto& a = w.acceptors.emplace_back(detail::worker_acceptor{s.id, std::move(acc)});
  asio::co_spawn(w.ioc, accept_loop(w, a.acc, s.tls.get(), s.h2(), s.ref()),
                 log_failure{"accept loop"});
}

/// Runs `f` on each worker's thread and waits until all have (a reload answers once its
/// listener changes took effect); gives up waiting after 5 s (the change still happens when
/// a worker that busy gets to it).
void on_each_worker(const std::vector<std::unique_ptr<worker>>& workers,
                    const std::function<void(worker&)>& f) {
  struct countdown {
    std::mutex mu;
    std::condition_variable cv;
    std::size_t left = 0;
  };
  auto c = std::make_shared<countdown>();
  c->left = workers.size();
  for (auto& wp : workers)
    asio::post(wp->ioc, [w = wp.get(), f, c] {
      f(*w);
      std::lock_guard l(c->mu);
      if (--c->left == 0) c->cv.notify_all();
    });
  std::unique_lock l(c->mu);
  c->cv.wait_for(l, std::chrono::seconds(5), [&] { return c->left == 0; });
}

}  // namespace

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
  impl_->slots.clear();
  for (std::size_t i = 0; i < o.listen.size(); ++i) {
    auto s = impl_->make_slot(o, i, i, what);
    if (!s) {
      impl_->slots.clear();
      return asio::error::invalid_argument;
    }
    impl_->slots.push_back(std::move(s));
    impl_->active.push_back(i);
  }
  std::random_device rd;
  if (o.max_connections_per_client > 0)
    impl_->per_client = std::make_unique<detail::client_limit>(o.max_connections_per_client);
  for (unsigned i = 0; i < n; ++i) {
    impl_->workers.push_back(std::make_unique<worker>(impl_->opts, impl_->h, i));
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
  auto pool = inspect_inherited(o.inherited_fds);
  for (auto& s : impl_->slots) {
    std::vector<std::pair<std::size_t, int>> socks;
    if (auto ec = impl_->bind_listener(*s, pool, socks)) {
      what = "listen " + s->address + ": " + ec.message();
      impl_->workers.clear();
      return ec;
    }
    for (auto [w, fd] : socks) {
      s->fds.push_back(fd);
      accept_on(*impl_->workers[w], *s, fd);
    }
  }
  for (const auto& s : pool)
    if (!s.used) impl_->inherited_unused.push_back(s.fd);
  for (auto& w : impl_->workers) {
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

std::vector<tcp::endpoint> server::local_endpoints() const {
  std::lock_guard l(impl_->mu);
  std::vector<tcp::endpoint> out;
  for (auto id : impl_->active) out.push_back(impl_->slots[id]->ep);
  return out;
}

error_code server::update_listeners(
    const server_options& next, std::string& what,
    const std::function<bool(const std::vector<std::size_t>& ids)>& activate) {
  auto& im = *impl_;
  // Kept (same address, same settings), added, removed.
  std::vector<std::size_t> ids;
  std::vector<std::unique_ptr<listener_slot>> added;
  std::vector<std::vector<std::pair<std::size_t, int>>> added_socks;
  std::vector<listener_slot*> added_ptrs;
  auto undo = [&] {
    for (auto& socks : added_socks)
      for (auto [w, fd] : socks) ::close(fd);
  };
  std::vector<inherited_socket> none;
  for (std::size_t i = 0; i < next.listen.size(); ++i) {
    auto s = im.make_slot(next, i, im.slots.size() + added.size(), what);
    if (!s) {
      undo();
      return asio::error::invalid_argument;
    }
    // The same listener: the same address as written (port 0 too), or the same endpoint.
    auto kept = std::find_if(im.active.begin(), im.active.end(), [&](std::size_t id) {
      const auto& k = *im.slots[id];
      return k.address == s->address || (s->ep.port() != 0 && k.ep == s->ep);
    });
    if (kept != im.active.end()) {
      if (!same_settings(*im.slots[*kept], *s)) {
        what = "listen " + s->address +
               ": its tls, http2 or proxy_protocol settings changed: that needs a restart or "
               "an upgrade (SIGUSR2); a listener added or removed does not";
        undo();
        return asio::error::invalid_argument;
      }
      ids.push_back(*kept);
      continue;
    }
    std::vector<std::pair<std::size_t, int>> socks;
    if (auto ec = im.bind_listener(*s, none, socks)) {
      what = "listen " + s->address + ": " + ec.message();
      undo();
      return ec;
    }
    ids.push_back(s->id);
    added_ptrs.push_back(s.get());
    added.push_back(std::move(s));
    added_socks.push_back(std::move(socks));
  }
  // The new sockets listen (connections wait in their backlogs) but nobody accepts yet: the
  // handler that knows them goes live first.
  if (!activate(ids)) {
    undo();
    return asio::error::operation_aborted;
  }
  std::vector<std::size_t> removed;
  {
    std::lock_guard l(im.mu);
    for (auto id : im.active)
      if (std::find(ids.begin(), ids.end(), id) == ids.end()) {
        im.slots[id]->removed = true;
        im.slots[id]->fds.clear();  // closed by the workers
        removed.push_back(id);
      }
    for (std::size_t a = 0; a < added.size(); ++a) {
      for (auto [w, fd] : added_socks[a]) added[a]->fds.push_back(fd);
      im.slots.push_back(std::move(added[a]));
    }
    im.active = ids;
  }
  for (auto* s : added_ptrs) log::info("listener {} added", s->address);
  for (auto id : removed)
    log::info("listener {} removed: its connections finish their requests", im.slots[id]->address);
  if (added_ptrs.empty() && removed.empty()) return {};
  // By value: a worker late past the wait still finds them.
  on_each_worker(im.workers, [added_ptrs, added_socks, removed](worker& w) {
    for (std::size_t a = 0; a < added_ptrs.size(); ++a)
      for (auto [wi, fd] : added_socks[a])
        if (wi == w.index) accept_on(w, *added_ptrs[a], fd);
    for (auto id : removed) w.stop_listener(id);
  });
  return {};
}

error_code server::reload_tls(std::string& what) {
  std::vector<listener_slot*> live;
  {
    std::lock_guard l(impl_->mu);
    for (auto id : impl_->active) live.push_back(impl_->slots[id].get());
  }
  std::vector<std::shared_ptr<detail::tls_server>> fresh(live.size());
  for (std::size_t i = 0; i < live.size(); ++i) {
    if (!live[i]->tls) continue;
    std::string err;
    fresh[i] = detail::tls_server::make(live[i]->tls_opts, live[i]->http2.enabled, err);
    if (!fresh[i]) {
      what = "listen " + live[i]->address + ": TLS: " + err;
      return asio::error::invalid_argument;  // nothing replaced: all or none
    }
  }
  for (std::size_t i = 0; i < live.size(); ++i)
    if (live[i]->tls) live[i]->tls->replace(std::move(fresh[i]));
  return {};
}

void server::shutdown(std::chrono::milliseconds drain) {
  if (impl_->shutting_down.exchange(true)) return;
  for (auto& wp : impl_->workers) {
    worker* w = wp.get();
    asio::post(w->ioc, [w, drain] { w->shut_down(drain); });
  }
}

void server::close_started_before(std::chrono::steady_clock::time_point started_before,
                                  std::chrono::steady_clock::time_point deadline) {
  for (auto& wp : impl_->workers) {
    worker* w = wp.get();
    asio::post(w->ioc, [w, started_before, deadline] {
      w->close_started_before(started_before, deadline);
    });
  }
}

void server::wait() {
  for (auto& w : impl_->workers)
    if (w->thread.joinable()) w->thread.join();
  impl_->workers.clear();
}

std::vector<listener_counters> server::listener_stats() const {
  std::lock_guard l(impl_->mu);
  std::vector<listener_counters> out;
  for (const auto& sp : impl_->slots) {
    const auto& s = sp->stats;
    auto get = [](const std::atomic<std::uint64_t>& a) {
      return a.load(std::memory_order_relaxed);
    };
    out.push_back(
        {get(s.accepted), get(s.open_http1), get(s.open_http2), get(s.tls_ok), get(s.tls_failed)});
  }
  return out;
}

std::vector<listening_socket> server::listening_sockets() const {
  std::lock_guard l(impl_->mu);
  std::vector<listening_socket> out;
  for (std::size_t i = 0; i < impl_->active.size(); ++i)
    for (int fd : impl_->slots[impl_->active[i]]->fds) out.push_back({i, fd});
  return out;
}

std::vector<int> server::inherited_unused() const { return impl_->inherited_unused; }

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
