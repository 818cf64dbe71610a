// The mock model server's request handler: routes an Exchange to the pure
// generators in mock_model.h, paces and streams the answer, injects faults.
//
// Routes: POST /v1/chat/completions, /v1/completions, /v1/embeddings;
// GET /v1/models, /v1/models/{id}, /health. Any model name is accepted and
// echoed back. Per-request headers override the pacing and fault options:
//   x-mock-ttft-ms      delay before the first token (and before a non-streamed
//                       answer, which also waits the inter-token gaps it stands for)
//   x-mock-itl-ms       gap between tokens
//   x-mock-tokens       tokens to generate (max_tokens still stops it early)
//   x-mock-status       answer at once with this status (400..599), OpenAI error body
//   x-mock-fail-after   after N tokens, reset the stream / connection
//   x-mock-stall-after  after N tokens, go silent until the client leaves
//                       (reset after MockOptions::stall_limit_ms)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "http/exchange.h"

namespace sluice::mock {

struct MockOptions {
  int64_t ttft_ms = 0;
  int64_t itl_ms = 0;
  int64_t default_tokens = 16;
  int64_t max_tokens_cap = 4096;  // bounds x-mock-tokens, max_tokens and the default
  int embedding_dim = 8;
  int64_t stall_limit_ms = 300000;
  uint64_t max_body_bytes = 64ull << 20;
  std::vector<std::string> models = {"mock-1"};
};

// Counters one handler call adds to. Plain fields: keep one per worker thread
// and sum them when reporting.
struct MockStats {
  uint64_t requests = 0;
  uint64_t errors = 0;         // 4xx/5xx answers, injected ones included
  uint64_t streams = 0;        // SSE responses started
  uint64_t tokens = 0;         // content tokens sent (streamed or not)
  uint64_t resets = 0;         // ex.reset() calls: x-mock-fail-after, stall limit
  uint64_t stalls = 0;         // x-mock-stall-after taking effect
  uint64_t client_aborts = 0;  // the client left before the answer was complete

  void add(const MockStats& o);
};

// Serves one exchange. Never throws: every error becomes a response (or a reset
// once the head is out). `ex`, `opts` and `stats` must outlive the coroutine.
boost::asio::awaitable<void> handle(http::Exchange& ex, const MockOptions& opts, MockStats& stats);
// Same, counting nowhere.
boost::asio::awaitable<void> handle(http::Exchange& ex, const MockOptions& opts);

}  // namespace sluice::mock
