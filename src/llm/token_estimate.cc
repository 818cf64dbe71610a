#include "llm/token_estimate.h"

namespace sluice::llm {

int64_t estimate_tokens(std::string_view text) {
  return estimate_tokens_for_bytes(static_cast<int64_t>(text.size()));
}

}  // namespace sluice::llm
