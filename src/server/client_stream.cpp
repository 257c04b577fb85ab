// SPDX-License-Identifier: MIT
// The downstream byte stream: socket or TLS, read buffer, writes, deadline, linger.
#include "server/client_stream.hpp"

#include <cstring>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/log.hpp"
#include "http/client_addr.hpp"
#include "server/tls.hpp"
#include "trafficcop/error.hpp"

namespace trafficcop::detail {
namespace {

constexpr std::chrono::milliseconds linger_time{1000};  // draining before a close, at most

std::string endpoint_string(const asio::ip::tcp::endpoint& ep) {
  auto a = ep.address();
  std::string s = a.is_v6() ? "[" + a.to_string() + "]" : a.to_string();
  return s + ":" + std::to_string(ep.port());
}

}  // namespace

client_stream::client_stream(asio::ip::tcp::socket sock, std::shared_ptr<tls_server> tls,
                             const asio::ip::tcp::endpoint& remote,
                             const asio::ip::tcp::endpoint& local, char* buf, std::size_t buf_size,
                             std::chrono::milliseconds write_timeout)
    : io::buffered_stream(std::move(sock), buf, buf_size),
      tls_certs_(std::move(tls)),
      write_timeout_(write_timeout) {
  if (tls_certs_) start_tls(tls_certs_->context());
  auto& s = socket();
  error_code ec;
  if (remote.port() != 0)
    remote_ = endpoint_string(remote);
  else if (auto ep = s.remote_endpoint(ec); !ec)
    remote_ = endpoint_string(ep);
  if (local.port() != 0 && !local.address().is_unspecified())
    local_ = endpoint_string(local);
  else if (auto ep = s.local_endpoint(ec); !ec)
    local_ = endpoint_string(ep);
}

asio::awaitable<bool> client_stream::handshake(std::chrono::milliseconds timeout) {
  // Bounded like a request head: a client that connects and never finishes the handshake is
  // a slowloris too.
  auto& wd = deadline();
  wd.arm(timeout);
  auto [ec] = co_await tls()->async_handshake(asio::ssl::stream_base::server,
                                              asio::as_tuple(asio::use_awaitable));
  wd.disarm();
  if (ec) log::debug("{} TLS handshake failed: {}", remote_, ec.message());
  if (!ec) tls_client_ = client_subject(tls()->native_handle());
  if (!ec) tls_version_ = SSL_get_version(tls()->native_handle());
  co_return !ec;
}

bool client_stream::alpn_h2() const noexcept {
  if (!tls()) return false;
  const unsigned char* proto = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(tls()->native_handle(), &proto, &len);
  return len == 2 && proto[0] == 'h' && proto[1] == '2';
}

std::string_view client_stream::hsts_line(const header_map& h) const noexcept {
  if (!tls_certs_ || tls_certs_->hsts_line().empty()) return {};
  return h.contains("strict-transport-security") ? std::string_view() : tls_certs_->hsts_line();
}

std::string_view client_stream::hsts_value(const header_map& h) const noexcept {
  if (!tls_certs_ || tls_certs_->hsts_line().empty()) return {};
  return h.contains("strict-transport-security") ? std::string_view() : tls_certs_->hsts_value();
}

void client_stream::set_addresses(std::string remote, std::string local) {
  remote_ = std::move(remote);
  local_ = std::move(local);
  peer_trusted_ = -1;
}

void client_stream::set_client(request& req, const std::vector<ip_network>& trusted) {
  req.peer_addr.assign(remote_);
  if (trusted.empty()) {
    req.remote_addr.assign(remote_);
    req.forwarded_trusted = true;
    return;
  }
  if (peer_trusted_ < 0) {  // once per connection: its peer does not change
    auto a = http::address_of(remote_);
    peer_trusted_ = a && contains(trusted, *a) ? 1 : 0;
  }
  req.forwarded_trusted = peer_trusted_ == 1;
  if (!req.forwarded_trusted)
    req.remote_addr.assign(remote_);
  else
    http::resolve_client(req.header, remote_, trusted, req.remote_addr);
}

asio::awaitable<error_code> client_stream::write(buffers bufs) {
  error_code ec;
  if (write_now(bufs, ec)) co_return ec;
  co_return co_await write_slow(bufs);
}

client_stream::buffers client_stream::skip(buffers bufs, std::size_t n) noexcept {
  for (auto& b : bufs) {
    std::size_t k = std::min(n, b.size());
    b += k;
    n -= k;
  }
  return bufs;
}

asio::awaitable<void> client_stream::linger(std::size_t max_bytes) {
  // Closing a socket with unread input makes the kernel answer with RST, which can destroy a
  // response (a 413, a 400) before the client read it (RFC 9112 §9.6). Stop sending, drain
  // for a moment, then close: nginx's lingering_close, Go's closeWriteAndWait.
  error_code ec;
  auto& sock = socket();
  sock.shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  if (ec) co_return;
  char scratch[4096];
  std::size_t drained = 0;
  auto& wd = deadline();
  wd.arm(linger_time);
  while (drained < max_bytes) {
    auto [rec, n] =
        co_await sock.async_read_some(asio::buffer(scratch), asio::as_tuple(asio::use_awaitable));
    if (rec) break;
    drained += n;
  }
  wd.disarm();
}

}  // namespace trafficcop::detail
