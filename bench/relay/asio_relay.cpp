// SPDX-License-Identifier: MIT
// bench/relay/asio_relay.cpp — a blind TCP relay written the way trafficcop does its I/O
// (issue 12 part 2): one thread, one io_context, C++20 coroutines, a synchronous write attempt
// on a non-blocking socket before the asynchronous path (connection::write_now), 16 KiB reads
// into a buffer allocated once per direction. No HTTP: bytes from the client go to the one
// upstream connection opened for it, and back.
//
// Built twice by bench/relay/CMakeLists.txt: asio_relay_epoll (Asio's default reactor) and
// asio_relay_uring (BOOST_ASIO_HAS_IO_URING + BOOST_ASIO_DISABLE_EPOLL: every socket operation
// and timer goes through Asio's io_uring_service).
//
//   asio_relay_epoll --listen PORT --upstream PORT [--async-only]
//
// --async-only: leave the sockets in blocking mode and always use async_write (no synchronous
// attempt). With the io_uring backend this is what makes Asio submit real IORING_OP_RECVMSG /
// SENDMSG operations; on a socket in non-blocking mode (trafficcop's, needed by write_now) it
// submits a one-shot IORING_OP_POLL_ADD and then calls recvmsg(2) itself (see README.md).
#include <netinet/in.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t read_chunk = 16 * 1024;  // as trafficcop's connection::read_more

struct options {
  unsigned short listen_port = 0;
  unsigned short upstream_port = 0;
  bool write_now = true;  // trafficcop's synchronous write attempt (needs non-blocking sockets)
};

/// One client and its upstream connection. Shared by the two directions; the sockets close
/// when the last of them is done.
struct session {
  explicit session(asio::io_context& ioc) : client(ioc), upstream(ioc) {}
  tcp::socket client;
  tcp::socket upstream;
  void close_both() {
    error_code ignored;
    client.close(ignored);
    upstream.close(ignored);
  }
};

/// connection::write_now: a non-blocking write that takes everything needs no asynchronous
/// operation. Returns true when done (or failed, with ec set); otherwise `out` is what is left.
bool write_now(tcp::socket& s, asio::const_buffer& out, error_code& ec) {
  std::size_t done = s.write_some(out, ec);
  if (ec == asio::error::would_block) ec = {};
  if (ec || done == out.size()) return true;
  out += done;
  return false;
}

asio::awaitable<void> pump(std::shared_ptr<session> s, tcp::socket& from, tcp::socket& to,
                           bool use_write_now) {
  std::unique_ptr<char[]> buf(new char[read_chunk]);
  for (;;) {
    auto [rec, n] = co_await from.async_read_some(asio::buffer(buf.get(), read_chunk), use_nothrow);
    if (rec == asio::error::eof) break;  // half-close: pass it on
    if (rec) {
      s->close_both();
      co_return;
    }
    asio::const_buffer out(buf.get(), n);
    error_code wec;
    if (!use_write_now || !write_now(to, out, wec)) {
      auto [aec, m] = co_await asio::async_write(to, out, use_nothrow);
      wec = aec;
    }
    if (wec) {
      s->close_both();
      co_return;
    }
  }
  error_code ignored;
  to.shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> serve(std::shared_ptr<session> s, tcp::endpoint up, bool use_write_now) {
  auto [cec] = co_await s->upstream.async_connect(up, use_nothrow);
  if (cec) {
    s->close_both();
    co_return;
  }
  error_code ec;
  for (tcp::socket* sock : {&s->client, &s->upstream}) {
    sock->set_option(tcp::no_delay(true), ec);
    if (use_write_now) sock->non_blocking(true, ec);
  }
  auto ex = co_await asio::this_coro::executor;
  asio::co_spawn(ex, pump(s, s->upstream, s->client, use_write_now), asio::detached);
  co_await pump(s, s->client, s->upstream, use_write_now);
}

asio::awaitable<void> accept_loop(tcp::acceptor& acc, tcp::endpoint up, bool use_write_now) {
  auto ex = co_await asio::this_coro::executor;
  auto& ioc = static_cast<asio::io_context&>(asio::query(ex, asio::execution::context));
  for (;;) {
    auto s = std::make_shared<session>(ioc);
    auto [ec] = co_await acc.async_accept(s->client, use_nothrow);
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) continue;  // EMFILE and the like: not expected in a bench
    asio::co_spawn(ex, serve(std::move(s), up, use_write_now), asio::detached);
  }
}

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: asio_relay --listen PORT --upstream PORT [--async-only]\n");
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--listen" && i + 1 < argc) {
      o.listen_port = static_cast<unsigned short>(std::atoi(argv[++i]));
    } else if (a == "--upstream" && i + 1 < argc) {
      o.upstream_port = static_cast<unsigned short>(std::atoi(argv[++i]));
    } else if (a == "--async-only") {
      o.write_now = false;
    } else {
      usage();
    }
  }
  if (o.listen_port == 0 || o.upstream_port == 0) usage();
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  options o = parse(argc, argv);
  // As trafficcop's worker: one thread runs the context, so no reactor locking.
  asio::io_context ioc{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  auto loopback = asio::ip::make_address_v4("127.0.0.1");
  tcp::acceptor acc(ioc);
  tcp::endpoint here(loopback, o.listen_port);
  acc.open(here.protocol());
  acc.set_option(tcp::acceptor::reuse_address(true));
  acc.bind(here);
  acc.listen(4096);
  asio::signal_set stop(ioc, SIGINT, SIGTERM);
  stop.async_wait([&](error_code, int) { ioc.stop(); });
  asio::co_spawn(ioc, accept_loop(acc, tcp::endpoint(loopback, o.upstream_port), o.write_now),
                 asio::detached);
#if defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
  const char* backend = "io_uring (Asio's io_uring_service)";
#else
  const char* backend = "epoll (Asio's epoll_reactor)";
#endif
  std::fprintf(stderr, "asio_relay: %s, %s, listening on 127.0.0.1:%u, upstream 127.0.0.1:%u\n",
               backend,
               o.write_now ? "non-blocking sockets + synchronous write attempt"
                           : "blocking-mode sockets, async operations only",
               o.listen_port, o.upstream_port);
  ioc.run();
  return 0;
}
