#include "net/tls_server.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace sluice::net {

namespace {

constexpr unsigned char kSessionIdContext[] = "sluice";
constexpr size_t kTicketKeyBytes = 80;  // name (16) + HMAC (32) + AES (32)
// TLS 1.2 suites: forward secret AEAD only. TLS 1.3 keeps OpenSSL's defaults.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

std::string openssl_error() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string> certificate_names(X509* x) {
  std::vector<std::string> names;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
      if (g->type != GEN_DNS) continue;
      const unsigned char* p = ASN1_STRING_get0_data(g->d.dNSName);
      names.push_back(lower({reinterpret_cast<const char*>(p), static_cast<size_t>(ASN1_STRING_length(g->d.dNSName))}));
    }
    GENERAL_NAMES_free(sans);
  }
  char cn[256];
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn);
  if (n > 0) {
    std::string c = lower({cn, static_cast<size_t>(n)});
    if (std::find(names.begin(), names.end(), c) == names.end()) names.push_back(std::move(c));
  }
  return names;
}

int on_alpn(SSL* /*ssl*/, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
            unsigned int inlen, void* arg) {
  const bool http2 = arg != nullptr;
  auto offered = [&](std::string_view proto) {
    for (unsigned i = 0; i < inlen;) {
      unsigned len = in[i];
      if (i + 1 + len > inlen) return static_cast<const unsigned char*>(nullptr);
      if (std::string_view(reinterpret_cast<const char*>(in + i + 1), len) == proto) return in + i + 1;
      i += 1 + len;
    }
    return static_cast<const unsigned char*>(nullptr);
  };
  if (http2) {
    if (const unsigned char* p = offered("h2")) {
      *out = p;
      *outlen = 2;
      return SSL_TLSEXT_ERR_OK;
    }
  }
  if (const unsigned char* p = offered("http/1.1")) {
    *out = p;
    *outlen = 8;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;  // no common protocol: carry on without ALPN (HTTP/1.1)
}

}  // namespace

size_t TlsBundle::match(std::string_view server_name) const {
  std::string name = lower(server_name);
  if (!name.empty() && name.back() == '.') name.pop_back();
  const size_t dot = name.find('.');
  for (size_t i = 0; i < entries_.size(); ++i) {
    for (const std::string& n : entries_[i].names) {
      if (n == name) return i;
      if (n.size() > 2 && n[0] == '*' && n[1] == '.' && dot != std::string::npos &&
          std::string_view(name).substr(dot + 1) == std::string_view(n).substr(2))
        return i;
    }
  }
  return 0;
}

Result<std::unique_ptr<TlsServer>> TlsServer::create(TlsServerOptions opts) {
  if (opts.certificates.empty()) return Status(Errc::kInvalid, "tls: at least one certificate is needed");
  std::unique_ptr<TlsServer> s(new TlsServer(std::move(opts)));
  auto b = s->load(nullptr);
  if (!b) return b.status();
  s->bundle_.store(std::move(*b));
  s->loaded_stamps_ = s->stamps();
  return s;
}

Result<std::shared_ptr<TlsBundle>> TlsServer::load(const TlsBundle* previous) const {
  auto bundle = std::make_shared<TlsBundle>();
  unsigned char ticket_keys[kTicketKeyBytes];
  bool have_keys = false;
  if (previous) {
    have_keys = SSL_CTX_get_tlsext_ticket_keys(previous->default_context().native_handle(), ticket_keys,
                                               sizeof ticket_keys) == 1;
  }
  ERR_clear_error();
  for (const TlsCertificate& c : opts_.certificates) {
    auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    SSL_CTX* h = ctx->native_handle();
    SSL_CTX_set_min_proto_version(h, opts_.tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
    SSL_CTX_set_options(h, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(h, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_set_cipher_list(h, kTls12Ciphers) != 1)
      return Status(Errc::kInternal, "tls: cipher list: " + openssl_error());
    if (SSL_CTX_use_certificate_chain_file(h, c.cert_file.c_str()) != 1)
      return Status(Errc::kInvalid, "tls: cannot load certificate " + c.cert_file + ": " + openssl_error());
    if (SSL_CTX_use_PrivateKey_file(h, c.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      return Status(Errc::kInvalid, "tls: cannot load key " + c.key_file + ": " + openssl_error());
    if (SSL_CTX_check_private_key(h) != 1)
      return Status(Errc::kInvalid, "tls: key " + c.key_file + " does not match certificate " + c.cert_file);
    SSL_CTX_set_session_id_context(h, kSessionIdContext, sizeof kSessionIdContext - 1);
    SSL_CTX_set_session_cache_mode(h, SSL_SESS_CACHE_SERVER);
    if (!opts_.session_tickets) {
      SSL_CTX_set_options(h, SSL_OP_NO_TICKET);
      SSL_CTX_set_num_tickets(h, 0);
    }
    SSL_CTX_set_alpn_select_cb(h, on_alpn, opts_.http2 ? reinterpret_cast<void*>(1) : nullptr);
    TlsBundle::Entry e;
    e.names = certificate_names(SSL_CTX_get0_certificate(h));
    e.ctx = std::move(ctx);
    bundle->entries_.push_back(std::move(e));
  }
  // One set of ticket keys for every certificate, carried over from the last load.
  SSL_CTX* first = bundle->entries_.front().ctx->native_handle();
  if (!have_keys) have_keys = SSL_CTX_get_tlsext_ticket_keys(first, ticket_keys, sizeof ticket_keys) == 1;
  for (auto& e : bundle->entries_) {
    SSL_CTX* h = e.ctx->native_handle();
    if (have_keys) SSL_CTX_set_tlsext_ticket_keys(h, ticket_keys, sizeof ticket_keys);
  }
  if (bundle->entries_.size() > 1) {
    SSL_CTX_set_tlsext_servername_callback(first, +[](SSL* ssl, int*, void* arg) -> int {
      const auto* b = static_cast<const TlsBundle*>(arg);
      const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
      if (!name) return SSL_TLSEXT_ERR_OK;
      size_t i = b->match(name);
      if (i != 0) SSL_set_SSL_CTX(ssl, b->entries_[i].ctx->native_handle());
      return SSL_TLSEXT_ERR_OK;
    });
    SSL_CTX_set_tlsext_servername_arg(first, bundle.get());
  }
  OPENSSL_cleanse(ticket_keys, sizeof ticket_keys);
  return bundle;
}

std::vector<TlsServer::Stamp> TlsServer::stamps() const {
  std::vector<Stamp> out;
  for (const TlsCertificate& c : opts_.certificates) {
    for (const std::string* f : {&c.cert_file, &c.key_file}) {
      struct stat st{};
      Stamp s;
      if (::stat(f->c_str(), &st) == 0) {
        s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
        s.size = st.st_size;
      }
      out.push_back(s);
    }
  }
  return out;
}

bool TlsServer::files_changed() const {
  auto now = stamps();
  for (size_t i = 0; i < now.size(); ++i)
    if (now[i].mtime_ns != loaded_stamps_[i].mtime_ns || now[i].size != loaded_stamps_[i].size) return true;
  return false;
}

Status TlsServer::reload() {
  auto stamps_before = stamps();
  auto prev = current();
  auto b = load(prev.get());
  if (!b) return b.status();
  bundle_.store(std::move(*b), std::memory_order_release);
  loaded_stamps_ = std::move(stamps_before);
  return Status::ok();
}

std::string_view negotiated_alpn(const void* ssl_handle) {
  const unsigned char* p = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(static_cast<const SSL*>(ssl_handle), &p, &len);
  return p ? std::string_view(reinterpret_cast<const char*>(p), len) : std::string_view{};
}

}  // namespace sluice::net
