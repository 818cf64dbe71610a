// What every request pays for observability: metric updates on the worker's
// shard and one access-log line.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "obs/access_log.h"
#include "obs/metrics.h"

namespace sluice::obs {
namespace {

// ---- Metrics ---------------------------------------------------------------

// The request-level families the gateway declares (gateway/metrics_set.cc).
struct Families {
  explicit Families(Registry& r)
      : requests(r.counter("sluice_requests_total", "h", {"model", "status"})),
        duration(r.histogram("sluice_request_duration_seconds", "h", latency_buckets(), {"model"})),
        ttft(r.histogram("sluice_ttft_seconds", "h", latency_buckets(), {"model"})),
        overhead(r.histogram("sluice_gateway_overhead_seconds", "h", latency_buckets())),
        tokens(r.counter("sluice_tokens_total", "h", {"model", "direction"})),
        usage_source(r.counter("sluice_usage_source_total", "h", {"source"})),
        stream_events(r.counter("sluice_stream_events_total", "h")) {}
  CounterFamily requests;
  HistogramFamily duration, ttft, overhead;
  CounterFamily tokens, usage_source, stream_events;
};

// A registry with one worker shard that has already served a few models, so
// lookups probe a table with more than one series.
struct Metrics {
  Registry registry;
  Families fam{registry};
  Shard& shard = registry.add_shard();
  Metrics() {
    for (std::string_view model : {"gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "llama-3.1-70b"}) {
      for (std::string_view status : {"200", "400", "429", "502"}) shard.counter(fam.requests, {model, status});
      shard.histogram(fam.duration, {model});
      shard.histogram(fam.ttft, {model});
      shard.counter(fam.tokens, {model, "input"});
      shard.counter(fam.tokens, {model, "output"});
    }
  }
};

void BM_CounterInc(benchmark::State& state) {
  Metrics m;
  Counter& c = m.shard.counter(m.fam.stream_events);
  c.inc();
  if (c.value() != 1 || &m.shard.counter(m.fam.stream_events) != &c) {
    state.SkipWithError("the counter did not count");
    return;
  }
  for (auto _ : state) {
    c.inc();
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CounterInc);

// Finding a labelled series by its values, then counting: what the gateway
// does for sluice_requests_total{model,status} at the end of each request.
void BM_LabelledCounterInc(benchmark::State& state) {
  Metrics m;
  const std::string model = "gpt-4o-mini";  // from the request, not a literal
  Counter& c = m.shard.counter(m.fam.requests, {model, "200"});
  m.shard.counter(m.fam.requests, {model, "200"}).inc();
  if (c.value() != 1) {
    state.SkipWithError("the lookup did not find the existing series");
    return;
  }
  for (auto _ : state) {
    m.shard.counter(m.fam.requests, {model, "200"}).inc();
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LabelledCounterInc);

void BM_HistogramObserve(benchmark::State& state) {
  Metrics m;
  Histogram& h = m.shard.histogram(m.fam.overhead);
  h.observe(0.000180);
  if (h.count() != 1) {
    state.SkipWithError("the histogram did not count");
    return;
  }
  double v = 0.000180;
  for (auto _ : state) {
    benchmark::DoNotOptimize(v);
    h.observe(v);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HistogramObserve);

// Every metric update at the end of one streamed request, as
// WorkerContext::finish makes them: requests, duration, ttft, overhead,
// tokens in and out, usage source.
void BM_RequestMetrics(benchmark::State& state) {
  Metrics m;
  const std::string model = "gpt-4o-mini";
  auto record = [&](int status, int64_t total_ns, int64_t ttft_ns, int64_t upstream_wait_ns) {
    char buf[12];
    const std::string_view st(buf, static_cast<size_t>(std::to_chars(buf, buf + sizeof buf, status).ptr - buf));
    m.shard.counter(m.fam.requests, {model, st}).inc();
    m.shard.histogram(m.fam.duration, {model}).observe(static_cast<double>(total_ns) / 1e9);
    m.shard.histogram(m.fam.ttft, {model}).observe(static_cast<double>(ttft_ns) / 1e9);
    m.shard.histogram(m.fam.overhead).observe(static_cast<double>(total_ns - upstream_wait_ns) / 1e9);
    m.shard.counter(m.fam.tokens, {model, "input"}).inc(31);
    m.shard.counter(m.fam.tokens, {model, "output"}).inc(18);
    m.shard.counter(m.fam.usage_source, {"upstream"}).inc();
  };
  record(200, 1'250'000'000, 180'000'000, 1'249'800'000);
  if (m.shard.counter(m.fam.requests, {model, "200"}).value() != 1 ||
      m.shard.histogram(m.fam.duration, {model}).count() != 1 ||
      m.shard.counter(m.fam.tokens, {model, "output"}).value() != 18) {
    state.SkipWithError("the request's metrics were not recorded");
    return;
  }
  int status = 200;
  for (auto _ : state) {
    benchmark::DoNotOptimize(status);
    record(status, 1'250'000'000, 180'000'000, 1'249'800'000);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("items are requests (7 updates each)");
}
BENCHMARK(BM_RequestMetrics);

// ---- Access log ------------------------------------------------------------

// The line WorkerContext::finish writes for a streamed chat request with an
// API key, field for field.
void write_line(AccessLogBuffer& buf) {
  buf.begin()
      .str("request_id", "3f9a1c07e4b2d8561a0f7e3c9b4d2e18")
      .str("client", "10.42.7.19:51234")
      .str("method", "POST")
      .str("path", "/v1/chat/completions")
      .str("protocol", "HTTP/1.1")
      .num("status", 200)
      .str("key", "team-search-prod")
      .str("team", "search")
      .str("model", "gpt-4o-mini")
      .boolean("stream", true)
      .num("tokens_in", 31)
      .num("tokens_out", 18)
      .str("usage_source", "upstream")
      .num_f("ttft_ms", 182.417)
      .num_f("duration_ms", 1250.032)
      .num_f("overhead_ms", 0.211)
      .str("upstream", "openai")
      .str("endpoint", "api.openai.com:443")
      .num("events", 22)
      .num("bytes_in", 312)
      .num("bytes_out", 6281)
      .str("user_agent", "OpenAI/Python 1.54.3")
      .end();
}

// Checks once that write_line produces one JSON line, by sending it through
// a pipe; returns its length, or 0.
size_t checked_line_length() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return 0;
  std::string got;
  {
    auto log = AccessLog::from_fd(fds[1], /*owned=*/true, AccessLog::Options{});
    AccessLogBuffer& buf = log->add_buffer();
    write_line(buf);
    buf.flush();
    log->flush_all_and_stop();
  }
  char chunk[4096];
  for (ssize_t n; (n = ::read(fds[0], chunk, sizeof chunk)) > 0;) got.append(chunk, static_cast<size_t>(n));
  ::close(fds[0]);
  const bool ok = got.starts_with(R"({"ts":")") && got.ends_with("}\n") &&
                  got.find(R"("user_agent":"OpenAI/Python 1.54.3"})") != std::string::npos &&
                  got.find('\n') == got.size() - 1;
  return ok ? got.size() : 0;
}

// Formatting alone: a buffer of an "off" log, which formats like any other
// and drops its contents when it reaches flush_bytes, with no writer thread.
void BM_AccessLogLine(benchmark::State& state) {
  const size_t line_bytes = checked_line_length();
  auto log = AccessLog::open("off");
  if (line_bytes == 0 || !log) {
    state.SkipWithError("the access log line is not one JSON line");
    return;
  }
  AccessLogBuffer& buf = (*log)->add_buffer();
  for (auto _ : state) write_line(buf);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(line_bytes));
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("format only");
}
BENCHMARK(BM_AccessLogLine);

// Formatting plus the hand-over of each full 16 KB batch to the writer
// thread (default options), which writes it to /dev/null: what a worker pays
// with the access log on.
void BM_AccessLogLineHandOff(benchmark::State& state) {
  const size_t line_bytes = checked_line_length();
  const int fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  if (line_bytes == 0 || fd < 0) {
    state.SkipWithError("the access log line is not one JSON line, or /dev/null did not open");
    return;
  }
  auto log = AccessLog::from_fd(fd, /*owned=*/true, AccessLog::Options{});
  AccessLogBuffer& buf = log->add_buffer();
  for (auto _ : state) write_line(buf);
  // After the loop, so not timed.
  log->flush_all_and_stop();
  if (log->dropped_lines() != 0 || log->written_lines() != static_cast<uint64_t>(state.iterations())) {
    state.SkipWithError("the writer did not write every line");
    return;
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(line_bytes));
  state.SetItemsProcessed(state.iterations());
  state.SetLabel("format + batch hand-off");
}
BENCHMARK(BM_AccessLogLineHandOff);

}  // namespace
}  // namespace sluice::obs
