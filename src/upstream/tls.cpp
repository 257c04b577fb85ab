// SPDX-License-Identifier: MIT
// tls_client: OpenSSL through asio::ssl.
#include "upstream/tls.hpp"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace trafficcop {
namespace upstream {
namespace {

constexpr auto use_nothrow = asio::as_tuple(asio::use_awaitable);

/// Loads `o` into `ctx`; "" or the first failure, naming the file.
std::string load(asio::ssl::context& ctx, const upstream_tls_options& o) {
  error_code ec;
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                      asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                      asio::ssl::context::no_tlsv1_1,
                  ec);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  if (o.ca_file.empty())
    ctx.set_default_verify_paths(ec);
  else
    ctx.load_verify_file(o.ca_file, ec);
  if (ec) return "ca_file " + o.ca_file + ": " + ec.message();
  if (!o.cert_file.empty() || !o.key_file.empty()) {
    if (o.cert_file.empty() || o.key_file.empty()) return "cert_file and key_file go together";
    ctx.use_certificate_chain_file(o.cert_file, ec);
    if (ec) return "cert_file " + o.cert_file + ": " + ec.message();
    ctx.use_private_key_file(o.key_file, asio::ssl::context::pem, ec);
    if (ec && ec.message().find("mismatch") != std::string::npos)
      return "key_file " + o.key_file + " does not match cert_file " + o.cert_file + " (" +
             ec.message() + ")";
    if (ec) return "key_file " + o.key_file + ": " + ec.message();
    if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
      return "key_file " + o.key_file + " does not match cert_file " + o.cert_file;
  }
  ctx.set_verify_mode(o.insecure_skip_verify ? asio::ssl::verify_none : asio::ssl::verify_peer, ec);
  return {};
}

/// The words an operator looks for, then OpenSSL's own.
std::string verify_failure(long v) {
  std::string why = X509_verify_cert_error_string(v);
  switch (v) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      return "unknown authority (" + why + ")";
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return "hostname mismatch (" + why + ")";
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return "expired certificate (" + why + ")";
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "certificate not yet valid (" + why + ")";
    default:
      return "certificate rejected (" + why + ")";
  }
}

}  // namespace

const std::string& tls_client::error() {
  std::call_once(once_, [this] {
    ctx_.emplace(asio::ssl::context::tls_client);
    error_ = load(*ctx_, o_);
  });
  return error_;
}

asio::awaitable<std::string> tls_client::handshake(conn& c, const std::string& host,
                                                   std::string_view alpn) {
  if (!error().empty()) co_return "TLS setup: " + error_;
  auto& tls = c.io.start_tls(*ctx_);
  SSL* ssl = tls.native_handle();
  const std::string& name = o_.server_name.empty() ? host : o_.server_name;
  error_code ec;
  asio::ip::make_address(name, ec);
  bool is_ip = !ec;
  if (!is_ip) SSL_set_tlsext_host_name(ssl, name.c_str());  // SNI carries names, never IPs
  if (!o_.insecure_skip_verify) {
    if (is_ip)
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str());
    else
      SSL_set1_host(ssl, name.c_str());
  }
  SSL_set_alpn_protos(ssl, reinterpret_cast<const unsigned char*>(alpn.data()),
                      static_cast<unsigned>(alpn.size()));
  auto [hec] = co_await tls.async_handshake(asio::ssl::stream_base::client, use_nothrow);
  if (!hec) co_return std::string();
  long v = SSL_get_verify_result(ssl);
  if (v != X509_V_OK && !o_.insecure_skip_verify) co_return verify_failure(v);
  co_return hec.message();
}

}  // namespace upstream

std::string check_upstream_tls(const upstream_tls_options& o) {
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  return upstream::load(ctx, o);
}

}  // namespace trafficcop
