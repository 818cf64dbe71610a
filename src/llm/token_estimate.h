// llm/: what is LLM-specific and pure (no sockets, no Asio): request
// inspection, SSE scanning, usage extraction, token estimation.
#pragma once

#include <cstdint>
#include <string_view>

namespace sluice::llm {

// A cheap, deterministic token estimate for text whose real token count is
// unknown (reserving budget before a request runs; charging a stream whose
// upstream never reported usage).
//
// The estimate is ceil(utf8_bytes / 4), and at least 1 for non-empty text.
// Why bytes rather than characters: English BPE vocabularies average about four
// characters per token, and for other scripts a UTF-8 byte count rises with the
// tokens per character (2-byte Cyrillic/Greek/Arabic ~ 0.5 tokens per char,
// 3-byte CJK ~ 0.75, 4-byte emoji ~ 1), so one division is roughly right
// everywhere, costs nothing and needs no tokenizer tables. It is an estimate:
// code, numbers and rare words run higher; the gateway reconciles with the
// upstream's reported usage whenever there is one.
int64_t estimate_tokens(std::string_view text);

// The same estimate for text known only by its UTF-8 byte length.
constexpr int64_t estimate_tokens_for_bytes(int64_t utf8_bytes) {
  return utf8_bytes <= 0 ? 0 : utf8_bytes / 4 + (utf8_bytes % 4 != 0 ? 1 : 0);
}

}  // namespace sluice::llm
