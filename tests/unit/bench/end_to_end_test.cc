// Runs the bench library against a real sluice-mock started on port 0.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "bench/options.h"
#include "bench/report.h"
#include "bench/runner.h"

namespace sluice::bench {
namespace {

class MockServer {
 public:
  void start() {
    char dir[] = "/tmp/sluice-bench-test-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    std::string port_file = dir_ + "/port.json";
    std::string bin = std::string(SLUICE_BIN_DIR) + "/sluice-mock";
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      execl(bin.c_str(), bin.c_str(), "--listen", "127.0.0.1:0", "--port-file", port_file.c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 1000 && port_ == 0; ++i) {
      std::ifstream in(port_file);
      std::stringstream ss;
      ss << in.rdbuf();
      std::string text = ss.str();
      size_t at = text.find("\"api\":");
      if (at != std::string::npos) port_ = std::atoi(text.c_str() + at + 6);
      if (port_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_GT(port_, 0) << "sluice-mock did not write " << port_file;
  }
  ~MockServer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
    if (!dir_.empty()) {
      std::remove((dir_ + "/port.json").c_str());
      rmdir(dir_.c_str());
    }
  }
  bool ready() const { return port_ > 0; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  std::string dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

class EndToEnd : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    mock_ = new MockServer();
    mock_->start();
  }
  void SetUp() override { ASSERT_TRUE(mock_->ready()); }
  static void TearDownTestSuite() {
    delete mock_;
    mock_ = nullptr;
  }

  static BenchOptions options() {
    BenchOptions o;
    o.url = mock_->url();
    o.input = {64, 0.8, 1024};
    o.output = {24, 0.6, 256};
    o.stream_share = 0.5;
    o.seed = 3;
    o.timeout_s = 10;
    return o;
  }

  static BenchResult run(BenchOptions o) {
    Status st = validate_options(o);
    EXPECT_TRUE(st) << st.message();
    auto r = run_bench(o);
    EXPECT_TRUE(r) << r.status().message();
    if (!r) return {};
    // The report formats whatever came back.
    EXPECT_FALSE(format_table(o, *r).empty());
    EXPECT_NE(format_json(o, *r, "test").find("\"fidelity\""), std::string::npos);
    return std::move(*r);
  }

  static void expect_clean(const BenchResult& r, double min_elapsed_s = 0.5) {
    const Stats& s = r.stats;
    EXPECT_GT(s.completed, 0u);
    EXPECT_EQ(s.total_errors(), 0u) << "connect " << s.error(ErrorKind::kConnect) << " reset "
                                    << s.error(ErrorKind::kReset) << " timeout " << s.error(ErrorKind::kTimeout)
                                    << " non2xx " << s.error(ErrorKind::kNon2xx) << " bad "
                                    << s.error(ErrorKind::kBadResponse);
    EXPECT_GT(s.streams, 0u);
    EXPECT_LT(s.streams, s.completed);  // about half
    EXPECT_EQ(s.latency.count(), s.completed);
    // Chunk fidelity 100%: every stream carried exactly the tokens asked for.
    EXPECT_EQ(s.fidelity_streams, s.streams);
    EXPECT_EQ(s.fidelity_received, s.fidelity_expected);
    EXPECT_EQ(s.streams_missing_events, 0u);
    EXPECT_EQ(s.streams_extra_events, 0u);
    EXPECT_EQ(s.content_events, s.fidelity_expected);
    EXPECT_EQ(s.ttft.count(), s.streams);  // every drawn output has >= 1 token
    EXPECT_GT(r.elapsed_s, min_elapsed_s);
  }

  static MockServer* mock_;
};

MockServer* EndToEnd::mock_ = nullptr;

TEST_F(EndToEnd, ClosedLoop) {
  BenchOptions o = options();
  o.concurrency = 4;
  o.threads = 2;
  o.duration_s = 1;
  o.warmup_s = 0.1;
  BenchResult r = run(o);
  expect_clean(r);
  EXPECT_EQ(r.connects, 4u);  // keep-alive: no reconnects
  EXPECT_EQ(r.stats.wait.count(), 0u);
}

TEST_F(EndToEnd, OpenLoopAtAModestRate) {
  BenchOptions o = options();
  o.rate = 200;
  o.connections = 8;
  o.duration_s = 1;
  o.headers = {"x-mock-itl-ms: 1"};  // paced streams: real gaps between events
  BenchResult r = run(o);
  expect_clean(r);
  // About rate x duration requests, each timed from its intended send time.
  EXPECT_GT(r.stats.completed, 150u);
  EXPECT_LE(r.stats.completed, 201u);
  EXPECT_GE(r.stats.wait.count(), r.stats.completed);  // sent ones, in flight at the end included
  EXPECT_GT(r.stats.gap.count(), 0u);
  EXPECT_GT(r.stats.gap.percentile(50), 500'000);  // about 1 ms apart
}

TEST_F(EndToEnd, RequestLimit) {
  BenchOptions o = options();
  o.concurrency = 3;
  o.requests = 50;
  BenchResult r = run(o);
  EXPECT_EQ(r.stats.completed, 50u);
  EXPECT_EQ(r.stats.total_errors(), 0u);
}

TEST_F(EndToEnd, ErrorsAreCountedByKind) {
  BenchOptions o = options();
  o.concurrency = 2;
  o.duration_s = 0.5;
  o.stream_share = 1;
  o.headers = {"x-mock-fail-after: 1"};  // every stream reset after its first token
  BenchResult reset = run(o);
  EXPECT_GT(reset.stats.error(ErrorKind::kReset), 0u);
  EXPECT_EQ(reset.stats.completed, 0u);

  o.headers = {"x-mock-ttft-ms: 2000"};
  o.timeout_s = 0.1;
  BenchResult timeout = run(o);
  EXPECT_GT(timeout.stats.error(ErrorKind::kTimeout), 0u);

  o.timeout_s = 10;
  o.headers = {"x-mock-status: 429"};
  BenchResult status = run(o);
  EXPECT_GT(status.stats.error(ErrorKind::kNon2xx), 0u);
  EXPECT_EQ(status.stats.status_counts[429], status.stats.error(ErrorKind::kNon2xx));
}

// HTTP/2 (h2c with prior knowledge; the mock speaks both on one port).

TEST_F(EndToEnd, Http2OneConnectionManyStreams) {
  BenchOptions o = options();
  o.http2 = true;
  o.concurrency = 16;
  o.streams_per_connection = 16;
  o.duration_s = 1;
  o.warmup_s = 0.1;
  BenchResult r = run(o);
  expect_clean(r);
  EXPECT_EQ(r.connects, 1u);  // 16 requests in flight on one connection
  EXPECT_EQ(r.stats.wait.count(), 0u);
  EXPECT_NE(format_table(o, r).find("HTTP/2, closed loop, 16 requests in flight on 1 connection"), std::string::npos);
  const std::string json = format_json(o, r, "test");
  EXPECT_NE(json.find("\"protocol\": \"HTTP/2\""), std::string::npos);
  EXPECT_NE(json.find("\"streams_per_connection\": 16"), std::string::npos);
}

// The same requests (seed, count) over both protocols: the same figures
// wherever they do not depend on timing.
TEST_F(EndToEnd, Http2CountsWhatHttp1Counts) {
  BenchOptions h1 = options();
  h1.concurrency = 8;
  h1.requests = 200;
  BenchOptions h2 = h1;
  h2.http2 = true;
  h2.streams_per_connection = 8;
  BenchResult a = run(h1), b = run(h2);
  expect_clean(a, 0);  // a request limit, not a duration
  expect_clean(b, 0);
  EXPECT_EQ(a.connects, 8u);
  EXPECT_EQ(b.connects, 1u);
  EXPECT_EQ(b.stats.completed, 200u);
  EXPECT_EQ(b.stats.completed, a.stats.completed);
  EXPECT_EQ(b.stats.streams, a.stats.streams);
  EXPECT_EQ(b.stats.events, a.stats.events);
  EXPECT_EQ(b.stats.content_events, a.stats.content_events);
  EXPECT_EQ(b.stats.fidelity_expected, a.stats.fidelity_expected);
  EXPECT_EQ(b.stats.ttft.count(), a.stats.ttft.count());
  EXPECT_EQ(b.stats.gap.count(), a.stats.gap.count());
  EXPECT_EQ(b.stats.latency.count(), a.stats.latency.count());
  EXPECT_NE(format_table(h1, a).find("HTTP/1.1, closed loop, 8 connections"), std::string::npos);
}

TEST_F(EndToEnd, Http2ConnectionsFromConcurrency) {
  BenchOptions o = options();
  o.http2 = true;
  o.concurrency = 10;
  o.streams_per_connection = 4;  // 4 + 3 + 3 requests on 3 connections
  o.threads = 2;
  o.duration_s = 1;
  BenchResult r = run(o);
  expect_clean(r);
  EXPECT_EQ(r.connects, 3u);
}

TEST_F(EndToEnd, Http2OpenLoop) {
  BenchOptions o = options();
  o.http2 = true;
  o.rate = 200;
  o.connections = 2;
  o.streams_per_connection = 8;
  o.duration_s = 1;
  o.headers = {"x-mock-itl-ms: 1"};
  BenchResult r = run(o);
  expect_clean(r);
  EXPECT_EQ(r.connects, 2u);
  EXPECT_GT(r.stats.completed, 150u);
  EXPECT_LE(r.stats.completed, 201u);
  EXPECT_GE(r.stats.wait.count(), r.stats.completed);
  EXPECT_GT(r.stats.gap.count(), 0u);
  EXPECT_GT(r.stats.gap.percentile(50), 500'000);
}

// A reset stream or a timeout ends that stream only: the connection stays.
TEST_F(EndToEnd, Http2ErrorsAreCountedByKind) {
  BenchOptions o = options();
  o.http2 = true;
  o.concurrency = 2;
  o.streams_per_connection = 2;
  o.duration_s = 0.5;
  o.stream_share = 1;
  o.headers = {"x-mock-fail-after: 1"};
  BenchResult reset = run(o);
  EXPECT_GT(reset.stats.error(ErrorKind::kReset), 0u);
  EXPECT_EQ(reset.stats.completed, 0u);
  EXPECT_EQ(reset.connects, 1u);

  o.headers = {"x-mock-ttft-ms: 2000"};
  o.timeout_s = 0.1;
  BenchResult timeout = run(o);
  EXPECT_GT(timeout.stats.error(ErrorKind::kTimeout), 0u);
  EXPECT_EQ(timeout.stats.error(ErrorKind::kReset), 0u);
  EXPECT_EQ(timeout.connects, 1u);

  o.timeout_s = 10;
  o.headers = {"x-mock-status: 429"};
  BenchResult status = run(o);
  EXPECT_GT(status.stats.error(ErrorKind::kNon2xx), 0u);
  EXPECT_EQ(status.stats.status_counts[429], status.stats.error(ErrorKind::kNon2xx));
}

TEST(EndToEndNoServer, Http2ConnectErrorsEndTheRunOnTime) {
  BenchOptions o;
  o.url = "http://127.0.0.1:1";
  o.http2 = true;
  o.concurrency = 4;
  o.streams_per_connection = 2;
  o.duration_s = 0.3;
  ASSERT_TRUE(validate_options(o));
  auto start = std::chrono::steady_clock::now();
  auto r = run_bench(o);
  ASSERT_TRUE(r);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_GT(r->stats.error(ErrorKind::kConnect), 0u);
  EXPECT_EQ(r->stats.completed, 0u);
}

TEST(EndToEndNoServer, ConnectErrorsEndTheRunOnTime) {
  BenchOptions o;
  o.url = "http://127.0.0.1:1";  // nothing listens on port 1
  o.concurrency = 2;
  o.duration_s = 0.3;
  ASSERT_TRUE(validate_options(o));
  auto start = std::chrono::steady_clock::now();
  auto r = run_bench(o);
  ASSERT_TRUE(r);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_GT(r->stats.error(ErrorKind::kConnect), 0u);
  EXPECT_EQ(r->stats.completed, 0u);
}

}  // namespace
}  // namespace sluice::bench
