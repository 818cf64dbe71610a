// llm/: what is LLM-specific and pure (no sockets, no Asio).
//
// Usage extraction: the token counts an upstream reports, from a whole
// response body or from one event of a stream, in the OpenAI and Anthropic
// shapes, so the gateway can settle token reservations and budgets.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace sluice::llm {

// Token counts; -1 means unknown.
struct Usage {
  int64_t prompt_tokens = -1;
  int64_t completion_tokens = -1;
  int64_t total_tokens = -1;

  bool valid() const { return prompt_tokens >= 0 && completion_tokens >= 0 && total_tokens >= 0; }
  bool operator==(const Usage&) const = default;
};

// Counts above this are treated as garbage, which also keeps sums far from
// overflow.
inline constexpr int64_t kMaxReportedTokens = int64_t{1} << 40;

// From a whole (non-streaming) JSON response body: the top-level "usage"
// object, in any of these shapes:
//  - OpenAI {prompt_tokens, completion_tokens, total_tokens};
//  - embeddings {prompt_tokens, total_tokens} (completion is total - prompt, 0);
//  - Anthropic {input_tokens, output_tokens, cache_creation_input_tokens,
//    cache_read_input_tokens}: prompt is input plus both cache counts (OpenAI
//    counts cached prompt tokens inside prompt_tokens too), completion is output.
// A missing count is derived from the other two when it can be. Returns
// nullopt when usage is absent, null, not an object, has a count that is not
// a non-negative integer up to kMaxReportedTokens, or does not yield all three
// counts. Never crashes on any input.
std::optional<Usage> extract_usage(std::string_view json);

struct StreamChunkFacts {
  // Usage carried by this chunk, when present and not null. May be partial:
  // Anthropic's message_delta reports only output tokens; fold chunks with
  // accumulate_usage().
  std::optional<Usage> usage;
  // "choices" is an empty array and usage is present: the chunk OpenAI sends
  // last when stream_options.include_usage is set.
  bool usage_only = false;
  // Pieces of generated output in this chunk: choices whose delta carries a
  // non-empty content / reasoning_content / reasoning / tool_calls (chat) or a
  // non-empty text (completions); for Anthropic a content_block_delta with
  // non-empty text / thinking / partial_json; for the Responses API a
  // non-empty string delta. Counts tokens when an upstream never reports usage.
  int64_t content_pieces = 0;
};

// Facts from the data field of one SSE event of an OpenAI-compatible, Anthropic
// or OpenAI Responses stream. The shape is recognized by its fields, not by
// "type": top-level "choices" and "usage" (OpenAI), "message".usage
// (Anthropic message_start), "delta" and "usage" (Anthropic content_block_delta
// and message_delta), "response".usage (Responses API response.completed).
// Empty data, "[DONE]" and anything that is not a JSON object give no facts.
// Never crashes on any input; a malformed chunk gives what was read before
// the damage.
StreamChunkFacts inspect_stream_chunk(std::string_view data);

// Folds usage seen in a later stream chunk into what is known so far: each
// count the later chunk reports replaces the earlier one, and total is
// recomputed as prompt + completion unless the later chunk reported all three.
void accumulate_usage(Usage& so_far, const Usage& later);

}  // namespace sluice::llm
