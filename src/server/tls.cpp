// SPDX-License-Identifier: MIT
// tls_server: certificate loading and checks, SNI selection, ALPN.
#include "server/tls.hpp"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <string_view>

namespace trafficcop {
namespace detail {
namespace {

/// ALPN (RFC 7301): h2 when allowed (`arg` non-null) and offered, else http/1.1; a client
/// offering neither gets no ALPN.
int on_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
            unsigned int inlen, void* arg) {
  auto offered = [&](std::string_view proto) {
    for (unsigned i = 0; i < inlen;) {
      unsigned len = in[i];
      if (i + 1 + len > inlen) break;
      if (len == proto.size() && std::memcmp(in + i + 1, proto.data(), len) == 0) {
        *out = in + i + 1;
        *outlen = static_cast<unsigned char>(len);
        return true;
      }
      i += 1 + len;
    }
    return false;
  };
  if (arg != nullptr && offered("h2")) return SSL_TLSEXT_ERR_OK;
  if (offered("http/1.1")) return SSL_TLSEXT_ERR_OK;
  return SSL_TLSEXT_ERR_NOACK;
}

/// The TLS 1.2 suites when `listener_tls::ciphers` is empty: Mozilla's "intermediate" profile
/// (https://wiki.mozilla.org/Security/Server_Side_TLS, v5.7) without its DHE suites, which
/// would need configured dhparams. ECDHE only (forward secrecy, no static-RSA key exchange)
/// and AEAD only (no CBC: LUCKY13 and the padding oracles have nothing to work on). Issue 14
/// item 7. TLS 1.3 suites are OpenSSL's defaults: they are all AEAD with ephemeral keys.
constexpr const char* intermediate_ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/// Loads one certificate into a fresh server context; "" or what failed.
std::string load(asio::ssl::context& ctx, const tls_certificate& c, const listener_tls& t,
                 bool h2) {
  error_code ec;
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                      asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                      asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use,
                  ec);
  SSL_CTX* native = ctx.native_handle();
  // The server's order of suites, not the client's, so that an old client offering CBC first
  // still gets an AEAD suite when it has one; PRIORITIZE_CHACHA keeps ChaCha20 for clients that
  // put it first (phones without AES instructions). No TLS compression (CRIME), and no
  // renegotiation, which a client could use to make the server redo handshakes (CPU) and which
  // HTTP/2 forbids anyway (RFC 9113 §9.2.1). OpenSSL 3 already refuses both by default (client
  // renegotiation since 3.0); stated here so that a changed library default cannot bring them
  // back.
  SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA |
                                  SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (t.min_version == "1.3")
    SSL_CTX_set_min_proto_version(native, TLS1_3_VERSION);
  else if (t.min_version.empty() || t.min_version == "1.2")
    SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  else
    return "min_version \"" + t.min_version + "\" is not 1.2 or 1.3";
  if (t.ciphers.empty()) {
    if (SSL_CTX_set_cipher_list(native, intermediate_ciphers) != 1)
      return "the default TLS 1.2 cipher list: no cipher this OpenSSL knows";
  } else if (SSL_CTX_set_cipher_list(native, t.ciphers.c_str()) != 1) {
    return "ciphers \"" + t.ciphers + "\": no cipher OpenSSL knows";
  }
  ctx.use_certificate_chain_file(c.cert_file, ec);
  if (ec) return "cert_file " + c.cert_file + ": " + ec.message();
  X509* leaf = SSL_CTX_get0_certificate(native);
  if (leaf && X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0)
    return "cert_file " + c.cert_file + ": expired certificate";
  if (leaf && X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0)
    return "cert_file " + c.cert_file + ": certificate not yet valid";
  ctx.use_private_key_file(c.key_file, asio::ssl::context::pem, ec);
  if (ec && ec.message().find("mismatch") != std::string::npos)
    return "key_file " + c.key_file + " does not match cert_file " + c.cert_file;
  if (ec) return "key_file " + c.key_file + ": " + ec.message();
  if (SSL_CTX_check_private_key(native) != 1)
    return "key_file " + c.key_file + " does not match cert_file " + c.cert_file;
  static int allow_h2 = 1;
  SSL_CTX_set_alpn_select_cb(native, on_alpn, h2 ? &allow_h2 : nullptr);
  if (!t.client_ca_file.empty()) {
    ctx.load_verify_file(t.client_ca_file, ec);
    if (ec) return "client_ca_file " + t.client_ca_file + ": " + ec.message();
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(t.client_ca_file.c_str()))
      SSL_CTX_set_client_CA_list(native, names);  // the CAs the client is told we accept
    int mode = SSL_VERIFY_PEER | (t.require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    SSL_CTX_set_verify(native, mode, nullptr);
    // Resumed sessions keep the client identity; tickets must not cross listeners.
    static constexpr unsigned char sid[] = "trafficcop-mtls";
    SSL_CTX_set_session_id_context(native, sid, sizeof sid - 1);
  }
  // Session resumption: OpenSSL's stateless tickets are on by default (a per-context key).
  return {};
}

}  // namespace

std::unique_ptr<tls_server> tls_server::make(const listener_tls& t, bool h2, std::string& error) {
  if (t.certificates.empty()) {
    error = "no certificate";
    return nullptr;
  }
  if (t.hsts && t.hsts->max_age.count() < 0) {
    error = "hsts max_age must not be negative";
    return nullptr;
  }
  auto s = std::unique_ptr<tls_server>(new tls_server);
  if (t.hsts) {
    s->hsts_line_ = "Strict-Transport-Security: max-age=" + std::to_string(t.hsts->max_age.count());
    if (t.hsts->include_subdomains) s->hsts_line_ += "; includeSubDomains";
    if (t.hsts->preload) s->hsts_line_ += "; preload";
    s->hsts_line_ += "\r\n";
  }
  for (const auto& c : t.certificates) {
    auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    if (auto err = load(*ctx, c, t, h2); !err.empty()) {
      error = err;
      return nullptr;
    }
    s->contexts_.push_back(std::move(ctx));
  }
  if (s->contexts_.size() > 1) {
    SSL_CTX* first = s->contexts_.front()->native_handle();
    SSL_CTX_set_tlsext_servername_callback(first, on_server_name);
    SSL_CTX_set_tlsext_servername_arg(first, s.get());
  }
  return s;
}

std::string_view tls_server::hsts_value() const noexcept {
  static constexpr std::string_view name = "Strict-Transport-Security: ";
  std::string_view line = hsts_line_;
  if (line.empty()) return {};
  return line.substr(name.size(), line.size() - name.size() - 2);  // without the CRLF
}

int tls_server::on_server_name(SSL* ssl, int*, void* arg) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!name) return SSL_TLSEXT_ERR_OK;  // no SNI: the default certificate
  auto* self = static_cast<tls_server*>(arg);
  for (auto& ctx : self->contexts_) {
    X509* cert = SSL_CTX_get0_certificate(ctx->native_handle());
    if (cert && X509_check_host(cert, name, 0, 0, nullptr) == 1) {
      SSL_set_SSL_CTX(ssl, ctx->native_handle());
      return SSL_TLSEXT_ERR_OK;
    }
  }
  return SSL_TLSEXT_ERR_OK;  // unknown name: the default certificate, as nginx does
}

std::string client_subject(SSL* ssl) {
  X509* peer = SSL_get1_peer_certificate(ssl);
  if (!peer) return {};
  std::string out;
  if (BIO* bio = BIO_new(BIO_s_mem())) {
    X509_NAME_print_ex(bio, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    if (n > 0) out.assign(data, static_cast<std::size_t>(n));
    BIO_free(bio);
  }
  X509_free(peer);
  return out;
}

}  // namespace detail

std::string check_listener_tls(const listener_tls& t) {
  std::string error;
  return detail::tls_server::make(t, false, error) ? std::string() : error;
}

}  // namespace trafficcop
