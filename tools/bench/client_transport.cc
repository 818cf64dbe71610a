#include "bench/client_transport.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace sluice::bench {

void set_tls_peer(SSL* ssl, const ConnectParams& p) {
  const std::string& host = p.target->host;
  if (!p.target->host_is_ip) SSL_set_tlsext_host_name(ssl, host.c_str());
  if (!p.verify_peer) return;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (p.target->host_is_ip) {
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
  }
}

}  // namespace sluice::bench
