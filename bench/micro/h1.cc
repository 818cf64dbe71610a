// HTTP/1.1 heads: the client's request head parsed once per request, the
// upstream's response head parsed once per request, and the response head and
// chunk framing written back to the client.
#include <benchmark/benchmark.h>

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "http/h1/parser.h"
#include "http/h1/serialize.h"
#include "http/message.h"

namespace sluice::http::h1 {
namespace {

// What the official OpenAI Python SDK sends (10 header fields).
constexpr std::string_view kRequestHead =
    "POST /v1/chat/completions HTTP/1.1\r\n"
    "Host: gateway.internal:8080\r\n"
    "Accept-Encoding: gzip, deflate\r\n"
    "Connection: keep-alive\r\n"
    "Accept: application/json\r\n"
    "Content-Type: application/json\r\n"
    "User-Agent: OpenAI/Python 1.54.3\r\n"
    "X-Stainless-Lang: python\r\n"
    "X-Stainless-Package-Version: 1.54.3\r\n"
    "Authorization: Bearer sk-proj-4fJq9XzT7bN2mK8vL1cR5wY3hD6gP0sA\r\n"
    "Content-Length: 312\r\n"
    "\r\n";

// A streamed chat completion's response head as vLLM's OpenAI server sends it.
constexpr std::string_view kResponseHead =
    "HTTP/1.1 200 OK\r\n"
    "date: Tue, 11 Jun 2024 08:15:02 GMT\r\n"
    "server: uvicorn\r\n"
    "content-type: text/event-stream; charset=utf-8\r\n"
    "transfer-encoding: chunked\r\n"
    "cache-control: no-cache\r\n"
    "x-request-id: 7c1f0e6a-3b9d-4e52-a8f1-2d6c9b0e4f17\r\n"
    "\r\n";

void BM_ParseRequestHead(benchmark::State& state) {
  const Limits limits;
  RequestHead head;
  const ParseResult r = parse_request_head(kRequestHead, head, limits);
  if (r.state != ParseState::kComplete || r.consumed != kRequestHead.size() || head.headers.size() != 10 ||
      head.content_length != 312u || head.path() != "/v1/chat/completions") {
    state.SkipWithError("request head did not parse as expected");
    return;
  }
  for (auto _ : state) {
    ParseResult res = parse_request_head(kRequestHead, head, limits);
    benchmark::DoNotOptimize(res);
    benchmark::DoNotOptimize(head);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kRequestHead.size()));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseRequestHead);

void BM_ParseResponseHead(benchmark::State& state) {
  const Limits limits;
  ResponseHead head;
  const ParseResult r = parse_response_head(kResponseHead, head, limits);
  if (r.state != ParseState::kComplete || r.consumed != kResponseHead.size() || head.status != 200 || !head.chunked ||
      head.headers.size() != 6) {
    state.SkipWithError("response head did not parse as expected");
    return;
  }
  for (auto _ : state) {
    ParseResult res = parse_response_head(kResponseHead, head, limits);
    benchmark::DoNotOptimize(res);
    benchmark::DoNotOptimize(head);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(kResponseHead.size()));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ParseResponseHead);

// The calls H1Exchange::send_head makes for a streamed response: the status
// line, the upstream's end-to-end fields (hop-by-hop and framing fields
// dropped), then chunked framing, into a reused string.
void write_response_head(std::string& out, std::span<const Header> headers) {
  out.clear();
  append_status_line(out, 200);
  for (const Header& h : headers) {
    if (is_hop_by_hop(h.name) || iequals(h.name, "content-length") || iequals(h.name, "transfer-encoding")) continue;
    append_header(out, h.name, h.value);
  }
  out += "transfer-encoding: chunked\r\n";
  out += "\r\n";
}

void BM_SerializeResponseHead(benchmark::State& state) {
  ResponseHead upstream;
  if (parse_response_head(kResponseHead, upstream, Limits{}).state != ParseState::kComplete) {
    state.SkipWithError("response head did not parse");
    return;
  }
  // What the forwarder hands send_head: the upstream's fields without the
  // framing ones and its x-request-id, then the gateway's own request id.
  std::vector<Header> headers;
  for (const Header& h : upstream.headers) {
    if (!is_hop_by_hop(h.name) && !iequals(h.name, "content-length") && !iequals(h.name, "x-request-id"))
      headers.push_back(h);
  }
  headers.push_back({"x-request-id", "3f9a1c07e4b2d8561a0f7e3c9b4d2e18"});
  std::string out;
  write_response_head(out, headers);
  const std::string_view expected =
      "HTTP/1.1 200 OK\r\n"
      "date: Tue, 11 Jun 2024 08:15:02 GMT\r\n"
      "server: uvicorn\r\n"
      "content-type: text/event-stream; charset=utf-8\r\n"
      "cache-control: no-cache\r\n"
      "x-request-id: 3f9a1c07e4b2d8561a0f7e3c9b4d2e18\r\n"
      "transfer-encoding: chunked\r\n"
      "\r\n";
  if (out != expected) {
    state.SkipWithError("response head serialized differently than expected");
    return;
  }
  for (auto _ : state) {
    write_response_head(out, headers);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(expected.size()));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SerializeResponseHead);

// The size line written before each streamed piece (once per SSE write).
void BM_ChunkSizeLine(benchmark::State& state) {
  std::string out;
  append_chunk_size(out, 371);
  if (out != "173\r\n") {
    state.SkipWithError("chunk size line is not 173\\r\\n");
    return;
  }
  size_t n = 371;
  for (auto _ : state) {
    out.clear();
    benchmark::DoNotOptimize(n);
    append_chunk_size(out, n);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ChunkSizeLine);

}  // namespace
}  // namespace sluice::http::h1
