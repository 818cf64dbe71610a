// What is LLM-specific on the request path: inspecting the client's body once
// per request, then, per streamed event, splitting the upstream's SSE body
// and reading each chunk for usage and content pieces.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "llm/request_inspector.h"
#include "llm/sse_scanner.h"
#include "llm/usage.h"

namespace sluice::llm {
namespace {

// ---- Inputs ----------------------------------------------------------------

// A body as the gateway holds it: read with 64 spare bytes (simdjson's
// padding), so the inspector parses it in place.
std::string padded(std::string_view s) {
  std::string body;
  body.reserve(s.size() + 64);
  body.assign(s);
  return body;
}

// A one-question streamed chat request (~300 bytes).
std::string small_chat_body() {
  return padded(R"({"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},)"
                R"({"role":"user","content":"Summarize the plot of Hamlet in two sentences, and name the three )"
                R"(characters who matter most to it."}],"max_tokens":256,"temperature":0.7,"stream":true,)"
                R"("stream_options":{"include_usage":true}})");
}

// A multi-turn conversation with a longer system prompt (~4 KB), with the
// escapes and non-ASCII text real conversations carry.
std::string large_chat_body() {
  std::string b = R"({"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a support assistant for )"
                  R"(Acme Cloud. Answer in the user's language, keep answers under 200 words, quote CLI commands in )"
                  R"(code blocks, and never reveal internal ticket numbers.\nWhen unsure, say so and point to )"
                  R"(https://docs.acme.example/support."})";
  static constexpr std::string_view kTurns[][2] = {
      {"My deployment keeps restarting with \\\"CrashLoopBackOff\\\" after I bumped the image tag. What should I "
       "check first?",
       "Start with the container's last logs: `kubectl logs deploy/api --previous`. A crash right after an image "
       "change is usually a missing environment variable, a changed entrypoint or a failing readiness probe. "
       "Also run `kubectl describe pod` and look at the events and the exit code."},
      {"The exit code is 137 and the events say OOMKilled. The old image ran fine with 512Mi.",
       "Exit code 137 with OOMKilled means the container went over its memory limit. The new image probably "
       "uses more memory at start-up (a bigger heap default, a new cache). Raise the limit to 768Mi to confirm, "
       "then set the runtime's heap explicitly so it stays below the limit."},
      {"Raised it to 1Gi and it starts now. Should I worry about cost? We run 40 replicas à 1Gi.",
       "A request of 1Gi per replica reserves 40Gi in total; if the real peak is closer to 700Mi you pay for "
       "about 12Gi you never use. Keep the limit at 1Gi but lower the request to the measured p95, and let the "
       "autoscaler add replicas on memory pressure."},
      {"How do I measure that p95 without Prometheus? We only have the built-in dashboard.",
       "The dashboard's workload view has a memory chart per pod; pick the last 7 days and read the upper band. "
       "`kubectl top pod -l app=api` gives the current figure, which you can sample every minute from a cron "
       "job into a CSV if you want a percentile."},
      {"Thanks. Another team says we should switch the JVM flags to -XX:MaxRAMPercentage=75 instead of a fixed "
       "-Xmx. Is that better inside containers, and what happens with our native memory (Netty buffers, the "
       "gRPC stubs)?",
       "MaxRAMPercentage sizes the heap from the container's limit, so the heap follows when you change the "
       "limit and you cannot forget one of the two. Off-heap memory is not covered: Netty's direct buffers, "
       "thread stacks and metaspace come on top. 75% leaves a quarter of the limit for them, which is usually "
       "enough; with heavy direct-buffer use, cap it with -XX:MaxDirectMemorySize."},
      {"We also see latency spikes every few minutes, p99 goes from 40 ms to 900 ms for about ten seconds. CPU "
       "is not throttled according to the dashboard. Could that be the garbage collector?",
       "Ten-second stalls every few minutes fit a full GC or a heap that is too tight after the limit change. "
       "Enable GC logging with -Xlog:gc*:file=/tmp/gc.log and compare the pause times with the spikes. If the "
       "pauses line up, switch to G1 with a pause target (-XX:MaxGCPauseMillis=100) or give the heap more "
       "headroom. Also check the CFS throttling counters, the dashboard may average them away."},
      {"GC log shows 'Pause Full (G1 Compaction Pause)' taking 800 ms right at the spikes. Heap is 750Mi of "
       "768Mi used before each one.",
       "Then the heap is simply full: G1 falls back to a full compaction when it cannot find free regions. "
       "The live set is close to the heap size, so either the service holds more data than before (a cache "
       "without a bound is the usual suspect; check the heap histogram with `jcmd 1 GC.class_histogram`) or "
       "it needs a bigger heap. Fix the cache first, raising the limit only hides it."},
  };
  for (const auto& turn : kTurns) {
    b += R"(,{"role":"user","content":")";
    b += turn[0];
    b += R"("},{"role":"assistant","content":")";
    b += turn[1];
    b += R"("})";
  }
  b += R"(,{"role":"user","content":"Can you write that cron job for me? A shell script is fine; we use )"
       R"(Ubuntu 22.04 nodes and the output should go to /var/log/api-mem.csv with a timestamp per line."}],)"
       R"("max_tokens":1024,"temperature":0.2,"stream":true,"stream_options":{"include_usage":true},)"
       R"("user":"team-platform"})";
  return padded(b);
}

// A streamed chat completion as OpenAI sends it (vLLM's differs only in the
// id and model): a role chunk, one chunk per content piece, a finish chunk,
// the usage-only chunk (stream_options.include_usage) and [DONE].
constexpr std::string_view kPieces[] = {"Ham",       "let",    ",",        " Prince",   " of",  " Denmark",
                                        ",",         " seeks", " revenge", " on",       " his", " uncle",
                                        " Claudius", ",",      " who",     " murdered", " his", " father"};
constexpr int64_t kContentPieces = std::size(kPieces);
constexpr Usage kStreamUsage{31, kContentPieces, 31 + kContentPieces};
constexpr size_t kStreamEvents = kContentPieces + 4;

constexpr std::string_view kChunkPrefix =
    R"({"id":"chatcmpl-9YHp3Xx7QqzK1cG2WmJ8tA4bN0rLs","object":"chat.completion.chunk","created":1718093702,)"
    R"("model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_f4e629d0a5","choices":[)";

std::string content_chunk(std::string_view piece) {
  return std::string(kChunkPrefix) + R"({"index":0,"delta":{"content":")" + std::string(piece) +
         R"("},"logprobs":null,"finish_reason":null}],"usage":null})";
}

std::string usage_chunk() {
  return std::string(kChunkPrefix) + R"(],"usage":{"prompt_tokens":31,"completion_tokens":18,)"
                                     R"("total_tokens":49,"prompt_tokens_details":{"cached_tokens":0,)"
                                     R"("audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,)"
                                     R"("audio_tokens":0,"accepted_prediction_tokens":0,)"
                                     R"("rejected_prediction_tokens":0}}})";
}

// The events of the stream, each with its "data: " line and blank line.
std::vector<std::string> stream_events() {
  std::vector<std::string> ev;
  auto add = [&](const std::string& data) { ev.push_back("data: " + data + "\n\n"); };
  add(std::string(kChunkPrefix) +
      R"({"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,)"
      R"("finish_reason":null}],"usage":null})");
  for (std::string_view p : kPieces) add(content_chunk(p));
  add(std::string(kChunkPrefix) + R"({"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null})");
  add(usage_chunk());
  add("[DONE]");
  return ev;
}

std::string whole_stream() {
  std::string s;
  for (const std::string& e : stream_events()) s += e;
  return s;
}

// ---- Request inspection ----------------------------------------------------

void BM_InspectRequest(benchmark::State& state, std::string body) {
  auto info = inspect_request(ApiKind::kChatCompletions, body);
  if (!info || info->model != "gpt-4o-mini" || !info->stream || !info->include_usage || !info->max_tokens ||
      info->prompt_chars <= 0) {
    state.SkipWithError("the chat body did not inspect as expected");
    return;
  }
  for (auto _ : state) {
    auto r = inspect_request(ApiKind::kChatCompletions, body);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(std::to_string(body.size()) + " B body");
}
BENCHMARK_CAPTURE(BM_InspectRequest, chat_small, small_chat_body());
BENCHMARK_CAPTURE(BM_InspectRequest, chat_large, large_chat_body());

// ---- SSE scanning ----------------------------------------------------------

// Scans `pieces` with a new scanner (one per stream, as the forwarder does);
// returns the number of events, or -1 on an error.
int64_t scan(const std::vector<std::string_view>& pieces) {
  SseScanner scanner;
  int64_t events = 0;
  for (std::string_view p : pieces) {
    Status s = scanner.feed(p, [&](const SseEvent& e) {
      benchmark::DoNotOptimize(e);
      ++events;
    });
    if (!s) return -1;
  }
  return scanner.take_pending().empty() ? events : -1;
}

// A stream in pieces, as the forwarder's reads deliver it:
//  0: the whole stream in one read (an unpaced upstream);
//  1: one event per read (a paced upstream, the common case);
//  N: N-byte reads cutting events anywhere (events gathered across reads).
void BM_SseScan(benchmark::State& state) {
  static const std::string stream = whole_stream();
  static const std::vector<std::string> events = stream_events();
  std::vector<std::string_view> pieces;
  const size_t cut = static_cast<size_t>(state.range(0));
  if (cut == 0) {
    pieces.push_back(stream);
  } else if (cut == 1) {
    for (const std::string& e : events) pieces.push_back(e);
  } else {
    for (size_t at = 0; at < stream.size(); at += cut) pieces.push_back(std::string_view(stream).substr(at, cut));
  }
  if (scan(pieces) != static_cast<int64_t>(kStreamEvents)) {
    state.SkipWithError("the scanner did not find every event");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(scan(pieces));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(stream.size()));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kStreamEvents));
  state.SetLabel(cut == 0 ? "one read" : cut == 1 ? "one event per read" : std::to_string(cut) + " B reads");
}
BENCHMARK(BM_SseScan)->Arg(0)->Arg(1)->Arg(1460);

// ---- Usage extraction ------------------------------------------------------

void BM_StreamChunkContent(benchmark::State& state) {
  const std::string data = content_chunk(" Denmark");
  const StreamChunkFacts f = inspect_stream_chunk(data);
  if (f.content_pieces != 1 || f.usage || f.usage_only) {
    state.SkipWithError("the content chunk did not read as one piece without usage");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(inspect_stream_chunk(data));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(data.size()));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StreamChunkContent);

void BM_StreamChunkUsage(benchmark::State& state) {
  const std::string data = usage_chunk();
  const StreamChunkFacts f = inspect_stream_chunk(data);
  if (!f.usage || *f.usage != kStreamUsage || !f.usage_only || f.content_pieces != 0) {
    state.SkipWithError("the usage chunk did not give its usage");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(inspect_stream_chunk(data));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(data.size()));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StreamChunkUsage);

// A non-streamed chat completion, read whole for its usage.
void BM_ExtractUsageResponse(benchmark::State& state) {
  const std::string body =
      R"({"id":"chatcmpl-9YHp3Xx7QqzK1cG2WmJ8tA4bN0rLs","object":"chat.completion","created":1718093702,)"
      R"("model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":)"
      R"("Hamlet, Prince of Denmark, seeks revenge on his uncle Claudius, who murdered his father and )"
      R"(married his mother. His hesitation costs nearly everyone their lives, his own included.\n\n)"
      R"(Key characters: Hamlet, Claudius and Gertrude.","refusal":null},"logprobs":null,)"
      R"("finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":42,"total_tokens":73,)"
      R"("prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":)"
      R"({"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},)"
      R"("system_fingerprint":"fp_f4e629d0a5"})";
  const auto u = extract_usage(body);
  if (!u || *u != Usage{31, 42, 73}) {
    state.SkipWithError("the response's usage did not read as 31/42/73");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(extract_usage(body));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ExtractUsageResponse);

// ---- The forwarder's per-event work, together -------------------------------

struct StreamTotals {
  int64_t events = 0;
  int64_t content_pieces = 0;
  Usage usage;
};

// What the forwarder does with each upstream read of a stream: scan it, read
// each event's data for usage and content pieces, gather the raw events to
// send on.
StreamTotals forward_stream(const std::vector<std::string_view>& reads, std::string& out) {
  SseScanner scanner;
  StreamTotals t;
  for (std::string_view data : reads) {
    out.clear();
    Status s = scanner.feed(data, [&](const SseEvent& ev) {
      if (!ev.done && !ev.data.empty()) {
        const StreamChunkFacts facts = inspect_stream_chunk(ev.data);
        t.content_pieces += facts.content_pieces;
        if (facts.usage) accumulate_usage(t.usage, *facts.usage);
      }
      out.append(ev.raw);
      ++t.events;
    });
    if (!s) return {};
    benchmark::DoNotOptimize(out.data());
  }
  return t;
}

void BM_ForwardStreamEvents(benchmark::State& state) {
  static const std::vector<std::string> events = stream_events();
  std::vector<std::string_view> reads(events.begin(), events.end());
  std::string out;
  const StreamTotals t = forward_stream(reads, out);
  if (t.events != static_cast<int64_t>(kStreamEvents) || t.content_pieces != kContentPieces ||
      t.usage != kStreamUsage) {
    state.SkipWithError("the stream did not give its events, pieces and usage");
    return;
  }
  int64_t bytes = 0;
  for (const std::string& e : events) bytes += static_cast<int64_t>(e.size());
  for (auto _ : state) benchmark::DoNotOptimize(forward_stream(reads, out));
  state.SetBytesProcessed(state.iterations() * bytes);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kStreamEvents));
  state.SetLabel("one event per read; items are events");
}
BENCHMARK(BM_ForwardStreamEvents);

}  // namespace
}  // namespace sluice::llm
