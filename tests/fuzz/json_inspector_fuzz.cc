// Fuzzes the request inspector and the two body rewrites.
//
// Input: byte 0 picks the ApiKind (low two bits) and whether the body has
// spare capacity (bit 2, so both the in-place and the copying path run); the
// rest is the body. Any accepted request with a model has its model rewritten
// by rewrite_model() (as an alias is) and must then inspect the same but for
// the new model. Any accepted streaming request without include_usage is then
// rewritten by ensure_stream_usage() and must inspect the same, with
// include_usage true.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <simdjson.h>

#include "llm/request_inspector.h"

using sluice::llm::ApiKind;
using sluice::llm::RequestInfo;

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

std::string make_body(const uint8_t* data, size_t size, bool roomy) {
  std::string body;
  if (roomy) body.reserve(size + simdjson::SIMDJSON_PADDING);
  body.assign(reinterpret_cast<const char*>(data), size);
  if (!roomy) body.shrink_to_fit();
  return body;
}

bool same_request(const RequestInfo& a, const RequestInfo& b) {
  return a.model == b.model && a.stream == b.stream && a.max_tokens == b.max_tokens &&
         a.prompt_chars == b.prompt_chars && a.estimated_prompt_tokens == b.estimated_prompt_tokens;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto kind = static_cast<ApiKind>(data[0] & 3);
  const bool roomy = (data[0] & 4) != 0;
  std::string body = make_body(data + 1, size - 1, roomy);

  auto info = sluice::llm::inspect_request(kind, body);
  if (!info) {
    check(info.status().code() == sluice::Errc::kInvalid && !info.status().message().empty());
    return 0;
  }
  check(info->prompt_chars >= 0 && info->estimated_prompt_tokens >= 0);
  check(!info->max_tokens || *info->max_tokens >= 0);
  check(kind == ApiKind::kOther || !info->model.empty());
  // A model has a span (a quoted token); "model":"" has one too, with no name.
  check(info->model.empty() || info->model_span.length >= 2);
  check(info->model_span.length == 0 ||
        (body[info->model_span.at] == '"' && body[info->model_span.at + info->model_span.length - 1] == '"'));

  if (!info->model.empty()) {
    // A name with characters that need escaping, so the escaper runs too.
    static constexpr std::string_view kNew = "org/m\"x\u00e9";
    check(sluice::llm::rewrite_model(body, *info, kNew) == (info->model != kNew));
    auto renamed = sluice::llm::inspect_request(kind, body);
    check(renamed.has_value());
    check(renamed->model == kNew);
    RequestInfo expect = *info;
    expect.model = kNew;
    check(same_request(expect, *renamed) && renamed->include_usage == info->include_usage);
    info = std::move(renamed);
  }
  if (!info->stream || info->include_usage) return 0;

  check(sluice::llm::ensure_stream_usage(body));
  auto again = sluice::llm::inspect_request(kind, body);
  check(again.has_value());
  check(again->include_usage);
  check(same_request(*info, *again));
  check(!sluice::llm::ensure_stream_usage(body));  // nothing left to do
  return 0;
}
