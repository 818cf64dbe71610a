#include "llm/usage.h"

#include "llm/json_support.h"

namespace sluice::llm {

namespace {

namespace od = simdjson::ondemand;
using od::json_type;
using simdjson::SUCCESS;

// The counts as named in the body; -1 where absent or null.
struct UsageFields {
  int64_t prompt = -1, completion = -1, total = -1;             // OpenAI
  int64_t input = -1, output = -1, cache_write = -1, cache_read = -1;  // Anthropic
};

int64_t* slot_for(std::string_view key, UsageFields& u) {
  if (key == "prompt_tokens") return &u.prompt;
  if (key == "completion_tokens") return &u.completion;
  if (key == "total_tokens") return &u.total;
  if (key == "input_tokens") return &u.input;
  if (key == "output_tokens") return &u.output;
  if (key == "cache_creation_input_tokens") return &u.cache_write;
  if (key == "cache_read_input_tokens") return &u.cache_read;
  return nullptr;
}

// Reads a usage object (the value must be an object). nullopt if a count is
// not a plausible token count, if the document breaks, or if no count is there.
std::optional<Usage> read_usage(od::value& v) {
  od::object object;
  if (v.get_object().get(object) != SUCCESS) return std::nullopt;
  UsageFields u;
  for (auto f : object) {
    std::string_view key;
    od::value* fv_at = detail::next_field(f, key);
    if (!fv_at) return std::nullopt;
    od::value& fv = *fv_at;
    int64_t* slot = slot_for(key, u);
    if (!slot) continue;
    json_type t;
    if (!detail::value_type(fv, t)) return std::nullopt;
    if (t == json_type::null) {
      *slot = -1;
      continue;
    }
    int64_t n;
    if (!detail::get_count(fv, n) || n > kMaxReportedTokens) return std::nullopt;
    *slot = n;
  }

  Usage r;
  r.prompt_tokens = u.prompt;
  if (r.prompt_tokens < 0 && u.input >= 0) {
    r.prompt_tokens = u.input + (u.cache_write > 0 ? u.cache_write : 0) + (u.cache_read > 0 ? u.cache_read : 0);
  }
  r.completion_tokens = u.completion >= 0 ? u.completion : u.output;
  r.total_tokens = u.total;
  if (r.prompt_tokens < 0 && r.completion_tokens < 0 && r.total_tokens < 0) return std::nullopt;

  // Derive a missing count from the other two (embeddings report no completion).
  if (r.completion_tokens < 0 && r.prompt_tokens >= 0 && r.total_tokens >= r.prompt_tokens) {
    r.completion_tokens = r.total_tokens - r.prompt_tokens;
  }
  if (r.prompt_tokens < 0 && r.completion_tokens >= 0 && r.total_tokens >= r.completion_tokens) {
    r.prompt_tokens = r.total_tokens - r.completion_tokens;
  }
  if (r.total_tokens < 0 && r.prompt_tokens >= 0 && r.completion_tokens >= 0) {
    r.total_tokens = r.prompt_tokens + r.completion_tokens;
  }
  return r;
}

// Applies a "usage" value of type t: null clears what an earlier duplicate
// key set.
void apply_usage(od::value& v, json_type t, std::optional<Usage>& out) {
  out.reset();
  if (t == json_type::object) out = read_usage(v);
}

// The usage nested in Anthropic's message_start "message" or the Responses
// API's "response" (an object).
bool apply_nested_usage(od::value& v, std::optional<Usage>& out) {
  od::object object;
  if (v.get_object().get(object) != SUCCESS) return false;
  for (auto f : object) {
    std::string_view key;
    json_type t;
    od::value* fv_at = detail::next_field(f, key);
    if (!fv_at) return false;
    od::value& fv = *fv_at;
    if (key != "usage") continue;
    if (!detail::value_type(fv, t)) return false;
    apply_usage(fv, t, out);
  }
  return true;
}

// Looks at a value's first token without consuming it: a string that is not
// "", or an array that is not []. The byte after the token is readable: the
// document is padded.
bool non_empty_string(od::value& v) {
  const std::string_view raw = v.raw_json_token();
  return raw.size() >= 2 && raw[0] == '"' && raw[1] != '"';
}

bool non_empty_array(od::value& v) {
  const std::string_view raw = v.raw_json_token();
  return !raw.empty() && raw[0] == '[' && raw.data()[raw.size()] != ']';
}

bool is_content_key(std::string_view key) {
  return key == "content" || key == "reasoning_content" || key == "reasoning" || key == "text" ||
         key == "thinking" || key == "partial_json";
}

// Whether an object (a chat delta, or an Anthropic content_block_delta's
// delta) carries output: a non-empty content-like string or tool calls.
int has_output(od::value& v, bool& ok) {
  od::object object;
  if (v.get_object().get(object) != SUCCESS) return ok = false, 0;
  int found = 0;
  for (auto f : object) {
    std::string_view key;
    od::value* fv_at = detail::next_field(f, key);
    if (!fv_at) return ok = false, found;
    od::value& fv = *fv_at;
    if ((is_content_key(key) && non_empty_string(fv)) || (key == "tool_calls" && non_empty_array(fv))) found = 1;
  }
  return found;
}

// One element of "choices": {delta: {...}} for chat, {text: "..."} for
// completions.
int choice_has_output(od::value& choice, bool& ok) {
  od::object object;
  if (choice.get_object().get(object) != SUCCESS) return ok = false, 0;
  int found = 0;
  for (auto f : object) {
    std::string_view key;
    od::value* fv_at = detail::next_field(f, key);
    if (!fv_at) return ok = false, found;
    od::value& fv = *fv_at;
    if (key == "text") {
      if (non_empty_string(fv)) found = 1;
    } else if (key == "delta") {
      json_type t;
      if (!detail::value_type(fv, t)) return ok = false, found;
      if (t == json_type::object && has_output(fv, ok)) found = 1;
      if (!ok) return found;
    }
  }
  return found;
}

enum class ChunkField { kOther, kChoices, kUsage, kNested, kDelta };

ChunkField classify_chunk_field(std::string_view key) {
  if (key == "choices") return ChunkField::kChoices;
  if (key == "usage") return ChunkField::kUsage;
  if (key == "delta") return ChunkField::kDelta;
  if (key == "message" || key == "response") return ChunkField::kNested;
  return ChunkField::kOther;
}

// Counts the choices that carry output; false if the document breaks.
bool count_choices(od::value& v, StreamChunkFacts& facts) {
  od::array choices;
  if (v.get_array().get(choices) != SUCCESS) return false;
  bool ok = true;
  for (auto element : choices) {
    json_type t;
    od::value* choice_at = detail::next_element(element);
    if (!choice_at) return false;
    od::value& choice = *choice_at;
    if (choice.type().get(t) != SUCCESS) return false;
    if (t == json_type::object) facts.content_pieces += choice_has_output(choice, ok);
    if (!ok) return false;
  }
  return true;
}

void scan_chunk(od::parser& parser, const detail::PaddedInput& in, StreamChunkFacts& facts) {
  od::document doc;
  od::object object;
  if (parser.iterate(in.view()).get(doc) != SUCCESS || doc.get_object().get(object) != SUCCESS) return;
  bool choices_empty = false;
  for (auto f : object) {
    std::string_view key;
    od::value* v_at = detail::next_field(f, key);
    if (!v_at) break;
    od::value& v = *v_at;
    const ChunkField which = classify_chunk_field(key);
    if (which == ChunkField::kOther) continue;  // most fields: id, model, created...
    json_type t;
    if (!detail::value_type(v, t)) break;
    bool ok = true;
    switch (which) {
      case ChunkField::kChoices:
        if (t != json_type::array) break;
        choices_empty = !non_empty_array(v);
        ok = count_choices(v, facts);
        break;
      case ChunkField::kUsage:
        apply_usage(v, t, facts.usage);
        break;
      case ChunkField::kNested:
        if (t == json_type::object) ok = apply_nested_usage(v, facts.usage);
        break;
      case ChunkField::kDelta:
        if (t == json_type::string && non_empty_string(v)) {
          facts.content_pieces += 1;  // Responses API text delta
        } else if (t == json_type::object) {
          facts.content_pieces += has_output(v, ok);
        }
        break;
      case ChunkField::kOther:
        break;
    }
    if (!ok) break;
  }
  facts.usage_only = choices_empty && facts.usage.has_value();
}

bool looks_like_object(std::string_view text) {
  for (char c : text) {
    if (!detail::is_json_space(c)) return c == '{';
  }
  return false;
}

}  // namespace

std::optional<Usage> extract_usage(std::string_view json) {
  if (!looks_like_object(json)) return std::nullopt;
  const detail::PaddedInput in(json);
  return detail::with_parser(json.size(), [&](od::parser& parser) -> std::optional<Usage> {
    od::document doc;
    od::object object;
    if (parser.iterate(in.view()).get(doc) != SUCCESS || doc.get_object().get(object) != SUCCESS) {
      return std::nullopt;
    }
    std::optional<Usage> usage;
    for (auto f : object) {
      std::string_view key;
      od::value* v_at = detail::next_field(f, key);
      if (!v_at) return std::nullopt;
      od::value& v = *v_at;
      if (key != "usage") continue;
      json_type t;
      if (!detail::value_type(v, t)) return std::nullopt;
      apply_usage(v, t, usage);
    }
    if (usage && !usage->valid()) return std::nullopt;
    return usage;
  });
}

StreamChunkFacts inspect_stream_chunk(std::string_view data) {
  StreamChunkFacts facts;
  if (!looks_like_object(data)) return facts;  // "", "[DONE]", keep-alive text
  const detail::PaddedInput in(data);
  detail::with_parser(data.size(), [&](od::parser& parser) { scan_chunk(parser, in, facts); });
  return facts;
}

void accumulate_usage(Usage& so_far, const Usage& later) {
  if (later.prompt_tokens >= 0) so_far.prompt_tokens = later.prompt_tokens;
  if (later.completion_tokens >= 0) so_far.completion_tokens = later.completion_tokens;
  if (later.valid()) {
    so_far.total_tokens = later.total_tokens;
  } else if (so_far.prompt_tokens >= 0 && so_far.completion_tokens >= 0) {
    so_far.total_tokens = so_far.prompt_tokens + so_far.completion_tokens;
  }
}

}  // namespace sluice::llm
