// mock/: sluice-mock, a deterministic OpenAI-compatible model server for tests,
// demos and benchmarks, also embedded in the gateway as its default backend.
//
// This header is the pure half: the generated text, the JSON of every response
// and SSE chunk kind, and the x-mock-* request headers. No I/O, no coroutines,
// so all of it is testable directly. mock_handler.h drives it over an Exchange.
//
// JSON is built by appending to strings: the shapes are fixed and the only
// client-supplied text echoed back (the model name) is escaped.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "http/message.h"

namespace sluice::mock {

// ---- Generated text -------------------------------------------------------

// Token i of every generation: a word from a fixed vocabulary followed by a
// space. Plain ASCII letters, so it never needs JSON escaping.
std::string_view token_text(int64_t i);
// Appends tokens [first, first + count).
void append_tokens(std::string& out, int64_t first, int64_t count);

// ---- JSON helpers ---------------------------------------------------------

void append_int(std::string& out, int64_t v);

// ---- Text generation (chat completions and legacy completions) ------------

enum class TextApi : uint8_t { kChat, kCompletions };

// What identifies one generated response.
struct ResponseMeta {
  TextApi api = TextApi::kChat;
  uint64_t seq = 0;        // id is "chatcmpl-mock-<seq>" / "cmpl-mock-<seq>"
  int64_t created = 0;     // Unix seconds
  std::string_view model;  // echoed back, escaped
};

struct Usage {
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// How many tokens to generate and why generation ends there.
struct TokenPlan {
  int64_t tokens = 0;
  bool truncated = false;  // finish_reason "length" rather than "stop"
  std::string_view finish_reason() const { return truncated ? "length" : "stop"; }
};

// x-mock-tokens (if given) is what the model "wants" to say, max_tokens (if
// given) stops it early; without either the default applies. `cap` bounds all
// of them. Generation that was cut short ends with "length".
TokenPlan plan_tokens(std::optional<int64_t> header_tokens, std::optional<int64_t> max_tokens,
                      int64_t default_tokens, int64_t cap);

// A whole chat.completion / text_completion object (non-streaming).
std::string completion_json(const ResponseMeta& meta, const TokenPlan& plan, Usage usage);

// The SSE events of one streamed generation. Everything constant per request
// is rendered once in the constructor, so a token event is three appends.
// Events follow OpenAI exactly: (chat only) a role chunk with empty content,
// one chunk per token, a chunk with the finish_reason, and with include_usage
// a final chunk with "choices":[] and the usage (every other chunk then carries
// "usage":null), then "data: [DONE]".
class SseEncoder {
 public:
  SseEncoder(const ResponseMeta& meta, bool include_usage);

  void append_start(std::string& out) const;  // role chunk; nothing for completions
  void append_token(std::string& out, int64_t i) const;
  void append_finish(std::string& out, std::string_view finish_reason) const;
  void append_usage(std::string& out, Usage usage) const;  // nothing without include_usage
  static void append_done(std::string& out);

  // Everything after the last token: finish, usage, [DONE].
  void append_end(std::string& out, std::string_view finish_reason, Usage usage) const;
  // Bytes of a whole stream of `tokens` tokens, for reserve().
  size_t size_hint(int64_t tokens) const;

 private:
  std::string_view head() const { return std::string_view(tpl_).substr(0, head_size_); }

  TextApi api_;
  bool include_usage_;
  // `data: {"id":...,"model":"...","choices":[` (the head every event starts
  // with) followed by the opening of a token choice, so a token event is
  // tpl_ + word + closing.
  std::string tpl_;
  size_t head_size_ = 0;
};

// ---- Embeddings -----------------------------------------------------------

struct EmbeddingRequest {
  std::vector<uint64_t> input_seeds;  // one per input, derived from its content
  std::optional<int> dimensions;
  bool base64 = false;  // encoding_format "base64": little-endian float32
};

constexpr int kMaxEmbeddingDim = 8192;

// Reads input (a string, an array of strings, a token array, or an array of
// token arrays), dimensions and encoding_format. May grow `body`'s capacity for
// the parser's padding. kInvalid with a message fit for the client.
Result<EmbeddingRequest> parse_embedding_request(std::string& body);

// The deterministic unit vector for an input.
void embedding_values(uint64_t seed, std::span<float> out);

std::string embeddings_json(std::string_view model, const EmbeddingRequest& req, int dim,
                            int64_t prompt_tokens);

// Grows `body`'s capacity so simdjson can parse it in place (it over-reads).
void reserve_json_padding(std::string& body);

// ---- Models ---------------------------------------------------------------

std::string models_json(std::span<const std::string> models);
std::string model_json(std::string_view id);

// ---- x-mock-* request headers ---------------------------------------------

// Per-request overrides of the server's pacing and fault options.
struct MockOverrides {
  std::optional<int64_t> ttft_ms;      // x-mock-ttft-ms
  std::optional<int64_t> itl_ms;       // x-mock-itl-ms
  std::optional<int64_t> tokens;       // x-mock-tokens
  std::optional<int> status;           // x-mock-status, 400..599
  std::optional<int64_t> fail_after;   // x-mock-fail-after: reset after N tokens
  std::optional<int64_t> stall_after;  // x-mock-stall-after: go silent after N tokens
};

constexpr int64_t kMaxDelayMs = 3'600'000;
constexpr int64_t kMaxCount = 1'000'000'000;

// kInvalid naming the header on a malformed or out-of-range value. Unknown
// x-mock-* headers are ignored.
Result<MockOverrides> parse_overrides(const http::RequestHead& head);

}  // namespace sluice::mock
