// llm/: what is LLM-specific and pure (no sockets, no Asio): request
// inspection, SSE scanning, usage extraction, token estimation.
//
// The request inspector reads a client's JSON body once, for the facts the
// pipeline needs before it forwards the original bytes: model, stream,
// max_tokens, prompt size. It never re-serializes the body.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace sluice::llm {

enum class ApiKind { kChatCompletions, kCompletions, kEmbeddings, kOther };

// "/v1/chat/completions", "/v1/completions", "/v1/embeddings" (exact path,
// no query); anything else is kOther.
ApiKind api_kind_for_path(std::string_view path);
std::string_view api_kind_name(ApiKind kind);

struct RequestInfo {
  std::string model;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage == true
  // max_tokens or, for chat (and kOther), max_completion_tokens; the larger
  // when both are given, as the safe bound for a token reservation.
  std::optional<int64_t> max_tokens;
  // UTF-8 bytes (after JSON unescaping) of the prompt text: message "content"
  // (a string, or the "text" of content parts), a top-level "system" (string or
  // parts), "prompt" and embeddings "input" (a string or an array of strings).
  int64_t prompt_chars = 0;
  // estimate_tokens_for_bytes(prompt_chars), plus one per token id where
  // "prompt"/"input" is given as token ids (an array of integers, or of arrays).
  int64_t estimated_prompt_tokens = 0;
  // Where the effective "model" value (a JSON string token, quotes included)
  // sits in the body; length 0 when there is none.
  struct Span {
    size_t at = 0;
    size_t length = 0;
  } model_span;
};

// Reads `body` with simdjson On-Demand, visiting each top-level field once.
// The buffer is used in place when body.capacity() leaves SIMDJSON_PADDING
// spare bytes, and copied otherwise.
//
// Errors are Status{Errc::kInvalid, message}, with a message fit to show the
// client: the body is not JSON or not an object; "model" is missing (required
// for chat, completions and embeddings; optional for kOther) or not a string;
// a known field has the wrong type. Unknown fields are ignored.
//
// Semantics chosen to match what the upstream will read, so policy cannot be
// fooled by a body the upstream reads differently:
//  - a duplicated key counts by its last occurrence (as Python, Go and JS read
//    it), and escaped keys ("mod\u0065l") are unescaped before matching;
//  - null for an optional field means absent.
// The whole body must be valid JSON, including the fields the inspector does
// not use (read through and checked, never decoded), with two allowances:
// escape sequences inside strings it does not decode are not checked, and
// number ranges are not checked (1e400 is accepted, as Python accepts it).
// Nesting deeper than 512 levels is rejected.
//
// Must never crash or read out of bounds on any input (it is fuzzed).
Result<RequestInfo> inspect_request(ApiKind kind, const std::string& body);

// Replaces the "model" value that inspect_request() found at info.model_span
// with `model` (JSON-escaped), leaving every other byte as it was. Call it
// before any other edit of the body (the span is an offset into the body as
// inspected). Returns true if it changed the body.
bool rewrite_model(std::string& body, const RequestInfo& info, std::string_view model);

// Makes an upstream report usage in a stream even when the client did not ask:
// afterwards the body has stream_options.include_usage == true. Edits bytes in
// place instead of re-serializing:
//  - no stream_options: inserts "stream_options":{"include_usage":true}
//    right after the top-level '{';
//  - stream_options is null: replaces it with {"include_usage":true};
//  - stream_options without include_usage: inserts "include_usage":true
//    after its '{';
//  - include_usage false / null: overwrites it with `true ` / `true`.
// Returns true if it changed the body. Call it only after inspect_request()
// succeeded with stream && !include_usage; on anything else it changes nothing
// and returns false.
bool ensure_stream_usage(std::string& body);

}  // namespace sluice::llm
