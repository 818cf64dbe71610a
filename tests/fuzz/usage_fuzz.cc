// Fuzzes usage extraction: a whole response body, one stream chunk, and the
// same bytes as an SSE stream whose events are inspected chunk by chunk.
// Nothing may crash, read outside its input or report impossible counts.
#include <cstdint>
#include <string_view>

#include "llm/sse_scanner.h"
#include "llm/usage.h"

namespace {

using sluice::llm::kMaxReportedTokens;
using sluice::llm::Usage;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

void check_counts(const Usage& u) {
  for (int64_t v : {u.prompt_tokens, u.completion_tokens, u.total_tokens}) {
    check(v >= -1 && v <= 4 * kMaxReportedTokens);  // prompt may sum three Anthropic counts
  }
}

void check_chunk(std::string_view data, Usage& so_far) {
  const sluice::llm::StreamChunkFacts f = sluice::llm::inspect_stream_chunk(data);
  check(f.content_pieces >= 0);
  check(!f.usage_only || f.usage.has_value());
  if (f.usage) {
    check_counts(*f.usage);
    sluice::llm::accumulate_usage(so_far, *f.usage);
    check_counts(so_far);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  if (auto u = sluice::llm::extract_usage(in)) {
    check(u->valid());
    check_counts(*u);
  }

  Usage so_far;
  check_chunk(in, so_far);

  sluice::llm::SseScanner scanner;
  (void)scanner.feed(in, [&](const sluice::llm::SseEvent& e) { check_chunk(e.data, so_far); });
  return 0;
}
