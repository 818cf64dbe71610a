// The HTTP/2 client connection of the bench against the project's own HTTP/2
// server, in process on port 0: it counts the requests it holds at once, so
// stream limits are checked where they matter, at the server. Also TLS with
// ALPN (a self-signed certificate made here), GOAWAY, close(), abandon(), and
// the runner over h2 + TLS.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "bench/client_connection.h"
#include "bench/options.h"
#include "bench/response_meter.h"
#include "bench/runner.h"
#include "bench/target.h"
#include "core/clock.h"
#include "http/exchange.h"
#include "http/listener.h"
#include "http/server_common.h"
#include "net/listener.h"
#include "net/tls_server.h"

namespace sluice::bench {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

// A self-signed certificate for 127.0.0.1 (EC P-256) in a temporary directory.
class CertFiles {
 public:
  CertFiles() {
    char dir[] = "/tmp/sluice-bench-h2-XXXXXX";
    if (!mkdtemp(dir)) return;
    dir_ = dir;
    cert = dir_ + "/cert.pem";
    key = dir_ + "/key.pem";
    EVP_PKEY* pkey = EVP_EC_gen("P-256");
    X509* x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
    X509_set_pubkey(x, pkey);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"), -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair{NID_subject_alt_name, "IP:127.0.0.1"},
                              std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value);
      X509_add_ext(x, ext, -1);
      X509_EXTENSION_free(ext);
    }
    X509_sign(x, pkey, EVP_sha256());
    FILE* f = std::fopen(cert.c_str(), "w");
    ok = f && PEM_write_X509(f, x) == 1;
    if (f) std::fclose(f);
    f = std::fopen(key.c_str(), "w");
    ok = ok && f && PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr) == 1;
    if (f) std::fclose(f);
    X509_free(x);
    EVP_PKEY_free(pkey);
  }
  ~CertFiles() {
    std::remove(cert.c_str());
    std::remove(key.c_str());
    if (!dir_.empty()) rmdir(dir_.c_str());
  }
  std::string cert, key;
  bool ok = false;

 private:
  std::string dir_;
};

struct ServerConfig {
  uint32_t max_streams = 128;  // SETTINGS_MAX_CONCURRENT_STREAMS
  bool http2 = true;           // cleartext: h2c by preface; TLS: "h2" offered in ALPN
  const CertFiles* tls = nullptr;
  int64_t hold_ms = 0;  // each request is answered this long after its body was read
  int64_t idle_timeout_ms = 60'000;
};

// The project's HTTP server on its own thread, answering every request with
// 200 and a small JSON body.
class TestServer {
 public:
  explicit TestServer(ServerConfig c) : cfg_(c) {
    opts_.http2 = c.http2;
    opts_.h2.max_concurrent_streams = c.max_streams;
    opts_.idle_timeout_ms = c.idle_timeout_ms;
    if (c.tls) {
      net::TlsServerOptions t;
      t.certificates.push_back({c.tls->cert, c.tls->key});
      t.http2 = c.http2;
      auto tls = net::TlsServer::create(std::move(t));
      EXPECT_TRUE(tls) << tls.status().message();
      if (tls) tls_ = std::move(*tls);
    }
    auto l = http::HttpListener::open({&ctx_}, *net::parse_listen_address("127.0.0.1:0"));
    EXPECT_TRUE(l) << l.status().message();
    if (!l) return;
    listener_ = std::move(*l);
    handler_ = [this](http::Exchange& ex) { return serve(this, ex); };
    listener_->start(0, {&handler_, &opts_, nullptr, &set_, tls_.get()});
    thread_ = std::thread([this] { ctx_.run(); });
  }
  ~TestServer() {
    guard_.reset();
    ctx_.stop();
    if (thread_.joinable()) thread_.join();
  }

  uint16_t port() const { return listener_ ? listener_->port() : 0; }
  int in_flight() const { return in_flight_; }
  int peak() const { return peak_; }
  int served() const { return served_; }
  // GOAWAY on every connection, now and for new ones.
  void drain() {
    asio::post(ctx_, [this] { set_.drain_all(); });
  }

  struct Seen {
    std::string method, target, host, custom, content_type;
    size_t body_bytes = 0;
    std::string protocol;
  };
  Seen last() {
    std::lock_guard lock(mu_);
    return last_;
  }

 private:
  static asio::awaitable<void> serve(TestServer* s, http::Exchange& ex) {
    const int now = ++s->in_flight_;
    int peak = s->peak_;
    while (now > peak && !s->peak_.compare_exchange_weak(peak, now)) {
    }
    std::string body;
    Status st = co_await ex.read_body(body, 1 << 20);
    {
      std::lock_guard lock(s->mu_);
      const http::RequestHead& h = ex.request();
      s->last_ = {std::string(h.method), std::string(h.target), std::string(h.find("host")),
                  std::string(h.find("x-test-case")), std::string(h.find("content-type")), body.size(),
                  std::string(ex.protocol())};
    }
    if (s->cfg_.hold_ms > 0) {
      asio::steady_timer t(ex.executor(), std::chrono::milliseconds(s->cfg_.hold_ms));
      auto [ec] = co_await t.async_wait(kNoThrow);
      (void)ec;
    }
    // Counted out before the answer leaves, so that a stream the client
    // opens once this one ended never overlaps it here.
    --s->in_flight_;
    ++s->served_;
    if (!st) co_return;
    const std::array<http::Header, 1> hs{{{"content-type", "application/json"}}};
    (void)co_await ex.respond(200, hs, "{\"ok\":true}");
  }

  ServerConfig cfg_;
  asio::io_context ctx_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard_{ctx_.get_executor()};
  http::ServerOptions opts_;
  http::ConnectionSet set_;
  http::Handler handler_;
  std::unique_ptr<net::TlsServer> tls_;
  std::unique_ptr<http::HttpListener> listener_;
  std::thread thread_;
  std::atomic<int> in_flight_{0}, peak_{0}, served_{0};
  std::mutex mu_;
  Seen last_;
};

// One exchange started by the test and what became of it.
struct Pending {
  ResponseMeter meter;
  ExchangeCancel cancel;
  std::optional<Outcome> out;
};

const HeaderField kFields[] = {{"content-type", "application/json"}, {"X-Test-Case", "Mixed"}};

asio::awaitable<void> run_exchange(ClientConnection* c, std::string authority, Pending* p) {
  OutgoingRequest req;
  req.path = "/v1/chat/completions";
  req.authority = authority;
  req.headers = kFields;
  req.body = "{\"model\":\"m\",\"messages\":[]}";
  p->meter.begin(SteadyClock::mono_ns(), -1, nullptr);
  Outcome out = co_await c->exchange(req, p->meter, p->cancel);
  p->out = out;
}

asio::awaitable<void> run_connect(ClientConnection* c, std::optional<Outcome>* out) {
  Outcome o = co_await c->connect();
  *out = o;
}

// One client connection on the test's thread.
class Client {
 public:
  Client(uint16_t port, uint32_t max_streams, const CertFiles* tls = nullptr) {
    auto t = parse_target((tls ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port));
    EXPECT_TRUE(t);
    target_ = *t;
    endpoints_.emplace_back(asio::ip::make_address("127.0.0.1"), port);
    if (tls) {
      tls_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
      tls_->load_verify_file(tls->cert);
      tls_->set_verify_mode(asio::ssl::verify_peer);
    }
    ConnectParams p;
    p.executor = ctx.get_executor();
    p.target = &target_;
    p.endpoints = endpoints_;
    p.tls = tls_.get();
    conn = make_h2_connection(p, max_streams);
  }
  ~Client() {
    conn->close();
    ctx.restart();
    ctx.run_for(50ms);  // lets the reader and writer see the close and end
  }

  // Runs the client's loop until `done` or the time limit; false on the limit.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > end) return false;
      if (ctx.stopped()) ctx.restart();  // it stops whenever it runs out of work
      ctx.run_one_for(10ms);
    }
    return true;
  }

  Outcome connect() {
    std::optional<Outcome> out;
    asio::co_spawn(ctx, run_connect(conn.get(), &out), asio::detached);
    EXPECT_TRUE(run_until([&] { return out.has_value(); }));
    return out.value_or(Outcome::kReset);
  }

  void start(Pending& p) {
    asio::co_spawn(ctx, run_exchange(conn.get(), target_.authority, &p), asio::detached);
  }

  const Target& target() const { return target_; }

  asio::io_context ctx{1};
  std::unique_ptr<ClientConnection> conn;

 private:
  Target target_;
  std::vector<tcp::endpoint> endpoints_;
  std::unique_ptr<asio::ssl::context> tls_;
};

bool all_done(const std::deque<Pending>& ps) {
  for (const Pending& p : ps) {
    if (!p.out) return false;
  }
  return true;
}

// `n` exchanges at once on one connection; returns the server's peak.
int peak_for(ServerConfig cfg, uint32_t client_streams, int n, int* limit) {
  TestServer server(cfg);
  Client client(server.port(), client_streams);
  EXPECT_EQ(client.connect(), Outcome::kOk);
  *limit = client.conn->max_concurrent_streams();
  std::deque<Pending> ps(static_cast<size_t>(n));
  for (Pending& p : ps) client.start(p);
  EXPECT_TRUE(client.run_until([&] { return all_done(ps); }));
  for (const Pending& p : ps) {
    EXPECT_EQ(p.out, Outcome::kOk);
    EXPECT_EQ(p.meter.status(), 200);
  }
  EXPECT_EQ(server.served(), n);
  EXPECT_TRUE(client.conn->ready());
  return server.peak();
}

TEST(H2Connection, OwnStreamLimitIsHonoured) {
  ServerConfig cfg;
  cfg.hold_ms = 150;
  int limit = 0;
  EXPECT_EQ(peak_for(cfg, 3, 10, &limit), 3);
  EXPECT_EQ(limit, 3);
}

TEST(H2Connection, PeerStreamLimitIsHonoured) {
  ServerConfig cfg;
  cfg.hold_ms = 150;
  cfg.max_streams = 2;
  int limit = 0;
  EXPECT_EQ(peak_for(cfg, 16, 7, &limit), 2);
  EXPECT_EQ(limit, 2);
}

TEST(H2Connection, ManyStreamsAtOnce) {
  ServerConfig cfg;
  cfg.hold_ms = 200;
  int limit = 0;
  EXPECT_EQ(peak_for(cfg, 64, 64, &limit), 64);
  EXPECT_EQ(limit, 64);
}

TEST(H2Connection, RequestHeadOnTheWire) {
  TestServer server({});
  Client client(server.port(), 1);
  ASSERT_EQ(client.connect(), Outcome::kOk);
  Pending p;
  client.start(p);
  ASSERT_TRUE(client.run_until([&] { return p.out.has_value(); }));
  EXPECT_EQ(p.out, Outcome::kOk);
  TestServer::Seen seen = server.last();
  EXPECT_EQ(seen.protocol, "HTTP/2");
  EXPECT_EQ(seen.method, "POST");
  EXPECT_EQ(seen.target, "/v1/chat/completions");
  EXPECT_EQ(seen.host, "127.0.0.1:" + std::to_string(server.port()));  // from :authority
  EXPECT_EQ(seen.custom, "Mixed");  // sent as X-Test-Case: lowercased, or the server would refuse it
  EXPECT_EQ(seen.content_type, "application/json");
  EXPECT_EQ(seen.body_bytes, std::string_view("{\"model\":\"m\",\"messages\":[]}").size());
}

TEST(H2Connection, AbandonResetsOnlyThatStream) {
  ServerConfig cfg;
  cfg.hold_ms = 300;
  TestServer server(cfg);
  Client client(server.port(), 8);
  ASSERT_EQ(client.connect(), Outcome::kOk);
  Pending a, b;
  client.start(a);
  client.start(b);
  ASSERT_TRUE(client.run_until([&] { return server.in_flight() == 2; }));
  a.cancel.abandon();
  ASSERT_TRUE(client.run_until([&] { return a.out.has_value(); }, 1s));
  EXPECT_EQ(a.out, Outcome::kReset);
  EXPECT_FALSE(b.out.has_value());
  ASSERT_TRUE(client.run_until([&] { return b.out.has_value(); }));
  EXPECT_EQ(b.out, Outcome::kOk);
  EXPECT_TRUE(client.conn->ready());
  Pending c;
  client.start(c);
  ASSERT_TRUE(client.run_until([&] { return c.out.has_value(); }));
  EXPECT_EQ(c.out, Outcome::kOk);
  b.cancel.abandon();  // after its exchange: does nothing
  EXPECT_TRUE(client.conn->ready());
}

TEST(H2Connection, CloseFailsPendingExchanges) {
  ServerConfig cfg;
  cfg.hold_ms = 5000;
  TestServer server(cfg);
  Client client(server.port(), 2);
  ASSERT_EQ(client.connect(), Outcome::kOk);
  std::deque<Pending> ps(3);  // the third waits for a stream
  for (Pending& p : ps) client.start(p);
  ASSERT_TRUE(client.run_until([&] { return server.in_flight() == 2; }));
  client.conn->close();
  EXPECT_FALSE(client.conn->ready());
  ASSERT_TRUE(client.run_until([&] { return all_done(ps); }, 1s));
  for (const Pending& p : ps) EXPECT_EQ(p.out, Outcome::kReset);
  Pending late;
  client.start(late);
  ASSERT_TRUE(client.run_until([&] { return late.out.has_value(); }, 1s));
  EXPECT_EQ(late.out, Outcome::kReset);
}

TEST(H2Connection, CloseFailsAPendingConnect) {
  // A listener that never accepts: the kernel completes the TCP handshake,
  // and connect() waits for SETTINGS that never come.
  asio::io_context idle;
  tcp::acceptor silent(idle, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  Client client(silent.local_endpoint().port(), 1);
  std::optional<Outcome> out;
  asio::co_spawn(client.ctx, run_connect(client.conn.get(), &out), asio::detached);
  EXPECT_FALSE(client.run_until([&] { return out.has_value(); }, 200ms));
  client.conn->close();
  ASSERT_TRUE(client.run_until([&] { return out.has_value(); }, 1s));
  EXPECT_EQ(out, Outcome::kConnect);
  EXPECT_FALSE(client.conn->ready());
}

TEST(H2Connection, GoawayLetsOpenStreamsFinish) {
  ServerConfig cfg;
  cfg.hold_ms = 1000;
  TestServer server(cfg);
  Client client(server.port(), 4);
  ASSERT_EQ(client.connect(), Outcome::kOk);
  Pending a;
  client.start(a);
  ASSERT_TRUE(client.run_until([&] { return server.in_flight() == 1; }));
  server.drain();
  ASSERT_TRUE(client.run_until([&] { return !client.conn->ready(); }));
  Pending refused;  // no new stream on a connection that is going away
  client.start(refused);
  ASSERT_TRUE(client.run_until([&] { return refused.out.has_value(); }, 1s));
  EXPECT_EQ(refused.out, Outcome::kReset);
  // A reconnect meanwhile (refused: the server drains new connections too)
  // leaves the stream of the old one running.
  EXPECT_EQ(client.connect(), Outcome::kConnect);
  EXPECT_FALSE(a.out.has_value());
  ASSERT_TRUE(client.run_until([&] { return a.out.has_value(); }));
  EXPECT_EQ(a.out, Outcome::kOk);
  EXPECT_EQ(a.meter.status(), 200);
}

TEST(H2Connection, IdleGoawayThenReconnect) {
  ServerConfig cfg;
  cfg.idle_timeout_ms = 100;
  TestServer server(cfg);
  Client client(server.port(), 4);
  ASSERT_EQ(client.connect(), Outcome::kOk);
  EXPECT_TRUE(client.conn->still_open());
  ASSERT_TRUE(client.run_until([&] { return !client.conn->ready(); }, 5s));
  EXPECT_FALSE(client.conn->still_open());
  ASSERT_EQ(client.connect(), Outcome::kOk);
  Pending p;
  client.start(p);
  ASSERT_TRUE(client.run_until([&] { return p.out.has_value(); }));
  EXPECT_EQ(p.out, Outcome::kOk);
}

TEST(H2Connection, PriorKnowledgeToAnHttp1OnlyServerFailsToConnect) {
  ServerConfig cfg;
  cfg.http2 = false;
  TestServer server(cfg);
  Client client(server.port(), 4);
  EXPECT_EQ(client.connect(), Outcome::kConnect);
  EXPECT_FALSE(client.conn->ready());
}

TEST(H2Connection, TlsWithAlpn) {
  CertFiles cert;
  ASSERT_TRUE(cert.ok);
  ServerConfig cfg;
  cfg.tls = &cert;
  cfg.hold_ms = 50;
  TestServer server(cfg);
  Client client(server.port(), 4, &cert);
  ASSERT_EQ(client.connect(), Outcome::kOk);
  std::deque<Pending> ps(8);
  for (Pending& p : ps) client.start(p);
  ASSERT_TRUE(client.run_until([&] { return all_done(ps); }));
  for (const Pending& p : ps) EXPECT_EQ(p.out, Outcome::kOk);
  EXPECT_EQ(server.peak(), 4);
  EXPECT_EQ(server.last().protocol, "HTTP/2");
}

TEST(H2Connection, TlsWithoutH2InAlpnFailsToConnect) {
  CertFiles cert;
  ASSERT_TRUE(cert.ok);
  ServerConfig cfg;
  cfg.tls = &cert;
  cfg.http2 = false;  // the server offers http/1.1 only
  TestServer server(cfg);
  Client client(server.port(), 4, &cert);
  EXPECT_EQ(client.connect(), Outcome::kConnect);
  EXPECT_FALSE(client.conn->ready());
}

// The runner over HTTP/2 + TLS: lanes share connections, at most --streams
// requests in flight on each, and the peer's own limit wins when lower.
TEST(H2Runner, TlsClosedLoopSharesConnections) {
  CertFiles cert;
  ASSERT_TRUE(cert.ok);
  ServerConfig cfg;
  cfg.tls = &cert;
  cfg.hold_ms = 100;
  TestServer server(cfg);
  BenchOptions o;
  o.url = "https://127.0.0.1:" + std::to_string(server.port());
  o.ca_file = cert.cert;
  o.http2 = true;
  o.concurrency = 12;
  o.streams_per_connection = 4;
  o.requests = 48;
  o.timeout_s = 10;
  ASSERT_TRUE(validate_options(o));
  EXPECT_EQ(o.total_connections(), 3u);
  auto r = run_bench(o);
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->stats.completed, 48u);
  EXPECT_EQ(r->stats.total_errors(), 0u);
  EXPECT_EQ(r->connects, 3u);
  EXPECT_EQ(server.peak(), 12);
  EXPECT_EQ(server.last().host, "127.0.0.1:" + std::to_string(server.port()));
}

TEST(H2Runner, PeerLimitBelowStreams) {
  ServerConfig cfg;
  cfg.hold_ms = 100;
  cfg.max_streams = 3;
  TestServer server(cfg);
  BenchOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(server.port());
  o.http2 = true;
  o.concurrency = 8;
  o.streams_per_connection = 8;  // one connection; the server allows 3 streams on it
  o.requests = 15;
  o.timeout_s = 10;
  ASSERT_TRUE(validate_options(o));
  auto r = run_bench(o);
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->stats.completed, 15u);
  EXPECT_EQ(r->stats.total_errors(), 0u);
  EXPECT_EQ(r->connects, 1u);
  EXPECT_EQ(server.peak(), 3);
}

TEST(H2Options, Validation) {
  auto base = [] {
    BenchOptions o;
    o.url = "http://127.0.0.1:1";
    return o;
  };
  BenchOptions o = base();
  ASSERT_TRUE(validate_options(o));
  EXPECT_FALSE(o.http2);
  EXPECT_EQ(o.streams_per_connection, 1u);

  o = base();
  o.streams_per_connection = 4;  // --streams without --h2
  EXPECT_FALSE(validate_options(o));

  o = base();
  o.http2 = true;
  o.streams_per_connection = 0;
  EXPECT_FALSE(validate_options(o));

  // Closed loop: concurrency is requests in flight, ceil(c / streams) connections.
  o = base();
  o.http2 = true;
  o.concurrency = 10;
  o.streams_per_connection = 4;
  ASSERT_TRUE(validate_options(o));
  EXPECT_EQ(o.total_connections(), 3u);
  o.streams_per_connection = 10;
  EXPECT_EQ(o.total_connections(), 1u);
  o.streams_per_connection = 100;
  EXPECT_EQ(o.total_connections(), 1u);

  // Threads share connections, not streams.
  o = base();
  o.http2 = true;
  o.concurrency = 8;
  o.streams_per_connection = 8;
  o.threads = 2;
  EXPECT_FALSE(validate_options(o));

  // Open loop: --connections HTTP/2 connections (default 64), --streams each.
  o = base();
  o.http2 = true;
  o.rate = 100;
  o.streams_per_connection = 16;
  ASSERT_TRUE(validate_options(o));
  EXPECT_EQ(o.total_connections(), 64u);

  // HTTP/1.1 unchanged: one connection per request in flight.
  o = base();
  o.concurrency = 10;
  ASSERT_TRUE(validate_options(o));
  EXPECT_EQ(o.total_connections(), 10u);
}

}  // namespace
}  // namespace sluice::bench
