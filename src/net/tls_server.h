// Server-side TLS: certificates (with SNI), ALPN, session resumption, and
// reload without restart.
//
// A TlsServer holds the current TlsBundle (one OpenSSL context per
// certificate). Accepting a connection takes a reference to the bundle of the
// moment, so a reload swaps in new certificates for new connections while live
// ones keep the bundle they started with.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "core/status.h"

namespace sluice::net {

namespace asio = boost::asio;

struct TlsCertificate {
  std::string cert_file;  // PEM: leaf first, then the chain
  std::string key_file;   // PEM private key
};

struct TlsServerOptions {
  std::vector<TlsCertificate> certificates;  // the first is the default (no or unknown SNI)
  bool tls12 = true;                         // allow TLS 1.2 (1.3 is always on and preferred)
  bool session_tickets = true;
  bool http2 = true;  // offer "h2" in ALPN (else only "http/1.1")
};

// The certificates of one load, immutable once built.
class TlsBundle {
 public:
  // The context a new connection starts with (the default certificate). SNI
  // switches a connection to the matching certificate's context.
  asio::ssl::context& default_context() const { return *entries_.front().ctx; }
  // The entry for a server name, or 0 (the default).
  size_t match(std::string_view server_name) const;

 private:
  friend class TlsServer;
  struct Entry {
    std::unique_ptr<asio::ssl::context> ctx;
    std::vector<std::string> names;  // CN and DNS SANs, lowercase; "*.x" for wildcards
  };
  std::vector<Entry> entries_;
};

class TlsServer {
 public:
  // Loads every certificate; fails with a message naming the file.
  static Result<std::unique_ptr<TlsServer>> create(TlsServerOptions opts);

  std::shared_ptr<const TlsBundle> current() const { return bundle_.load(std::memory_order_acquire); }

  // Loads the files again. On success new connections use the new bundle; on
  // failure the old one stays and the error is returned. Session ticket keys
  // carry over, so clients resume across a reload.
  Status reload();
  // True when a certificate or key file changed (mtime or size) since the last load.
  bool files_changed() const;

 private:
  explicit TlsServer(TlsServerOptions opts) : opts_(std::move(opts)) {}
  Result<std::shared_ptr<TlsBundle>> load(const TlsBundle* previous) const;
  struct Stamp {
    int64_t mtime_ns = 0;
    int64_t size = 0;
  };
  std::vector<Stamp> stamps() const;

  TlsServerOptions opts_;
  std::atomic<std::shared_ptr<const TlsBundle>> bundle_;
  std::vector<Stamp> loaded_stamps_;
};

// The protocol ALPN chose on a finished handshake: "h2", "http/1.1" or "".
std::string_view negotiated_alpn(const void* ssl_handle);

}  // namespace sluice::net
