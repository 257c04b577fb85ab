// SPDX-License-Identifier: MIT
// The accept loop's accept4 path (src/server/accept.hpp, issue 12): what an accepted socket
// must already be, since the connection no longer sets it up with system calls of its own.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <exception>
#include <optional>
#include <tuple>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <gtest/gtest.h>

#include "server/accept.hpp"

namespace trafficcop::detail {
namespace {

using asio::ip::tcp;

struct accepted {
  error_code ec;
  tcp::socket sock;
  tcp::endpoint peer;
};

/// Starts accept_nonblocking on `acc`; `out` gets what it gives once `ioc` runs it.
void spawn_accept(asio::io_context& ioc, tcp::acceptor& acc, std::optional<accepted>& out) {
  asio::co_spawn(
      ioc,
      [&]() -> asio::awaitable<void> {
        tcp::endpoint peer;
        auto [ec, sock] = co_await accept_nonblocking(acc, peer);
        out.emplace(accepted{ec, std::move(sock), peer});
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);  // out of ioc.run(): the test fails with it
      });
}

/// Runs accept_nonblocking once on `acc` and returns what it gave (ioc is run until it does).
std::optional<accepted> accept_one(asio::io_context& ioc, tcp::acceptor& acc) {
  std::optional<accepted> out;
  spawn_accept(ioc, acc, out);
  ioc.run_for(std::chrono::seconds(5));
  ioc.restart();
  return out;
}

tcp::acceptor listener(asio::io_context& ioc) {
  tcp::acceptor acc(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  EXPECT_FALSE(set_listener_options(acc));
  return acc;
}

TEST(Accept, SocketIsNonBlockingCloexecNoDelayWithThePeersAddress) {
  asio::io_context ioc;
  auto acc = listener(ioc);
  tcp::socket client(ioc);
  client.connect(acc.local_endpoint());

  auto a = accept_one(ioc, acc);
  ASSERT_TRUE(a);
  ASSERT_FALSE(a->ec) << a->ec.message();
  const int fd = a->sock.native_handle();
  EXPECT_TRUE(::fcntl(fd, F_GETFL) & O_NONBLOCK) << "accept4(SOCK_NONBLOCK)";
  EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(a->sock.non_blocking()) << "Asio must know, or it sets the mode again";
  int nodelay = 0;
  socklen_t len = sizeof nodelay;
  ASSERT_EQ(::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len), 0);
  EXPECT_EQ(nodelay, 1) << "inherited from the listener";
  EXPECT_EQ(a->peer, client.local_endpoint());

  // The socket works through Asio both ways, and its close is seen by the peer.
  asio::write(client, asio::buffer("ping", 4));
  char buf[4];
  asio::read(a->sock, asio::buffer(buf));
  EXPECT_EQ(std::string_view(buf, 4), "ping");
  a->sock.close();
  error_code ec;
  client.read_some(asio::buffer(buf), ec);
  EXPECT_EQ(ec, asio::error::eof);
}

TEST(Accept, WaitsForAConnectionThenTakesIt) {
  asio::io_context ioc;
  auto acc = listener(ioc);
  tcp::socket client(ioc);
  std::optional<accepted> out;
  spawn_accept(ioc, acc, out);
  ioc.poll();  // the backlog is empty: it waits instead of blocking the thread
  EXPECT_FALSE(out);
  client.async_connect(acc.local_endpoint(), [](error_code) {});
  ioc.run_for(std::chrono::seconds(5));
  ASSERT_TRUE(out);
  EXPECT_FALSE(out->ec) << out->ec.message();
  EXPECT_TRUE(out->sock.is_open());
}

TEST(Accept, ClosingTheListenerAbortsTheWait) {
  asio::io_context ioc;
  auto acc = listener(ioc);
  std::optional<accepted> out;
  spawn_accept(ioc, acc, out);
  ioc.poll();
  ASSERT_FALSE(out);
  acc.close();
  ioc.run_for(std::chrono::seconds(5));
  ASSERT_TRUE(out);
  EXPECT_EQ(out->ec, asio::error::operation_aborted);
  EXPECT_FALSE(out->sock.is_open());
}

}  // namespace
}  // namespace trafficcop::detail
