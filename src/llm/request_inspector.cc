#include "llm/request_inspector.h"

#include <algorithm>
#include <cstring>

#include "core/json_escape.h"
#include "llm/json_support.h"
#include "llm/token_estimate.h"

namespace sluice::llm {

namespace {

namespace od = simdjson::ondemand;
using od::json_type;
using simdjson::SUCCESS;

Status invalid(std::string_view message) { return Status(Errc::kInvalid, std::string(message)); }
Status not_json() { return invalid("request body is not valid JSON"); }

// Nesting of "content" inside content parts we still count (Anthropic
// tool_result blocks carry their own content); deeper is ignored.
constexpr int kMaxContentNesting = 2;

// What the prompt adds up to, in bytes of text and in explicit token ids.
struct Tally {
  int64_t bytes = 0;
  int64_t token_ids = 0;
};

bool type_of(od::value& v, json_type& t) { return detail::value_type(v, t); }

// Counts a string value without unescaping it, and consumes it.
bool add_string(od::value& v, Tally& tally) {
  const std::string_view raw = v.raw_json_token();
  od::raw_json_string ignored;
  if (v.get_raw_json_string().get(ignored) != SUCCESS) return false;
  tally.bytes += detail::unescaped_length(raw);
  return true;
}

// Every value the inspector does not read goes through here, so that a body
// it accepts is valid JSON throughout (see validate_value).
Status skip(od::value& v, int depth) { return detail::validate_value(v, depth) ? Status::ok() : not_json(); }

// A string is counted, anything else skipped.
Status add_text(od::value& v, Tally& tally, int depth) {
  json_type t;
  if (!type_of(v, t)) return not_json();
  if (t == json_type::null) return Status::ok();
  if (t == json_type::string) return add_string(v, tally) ? Status::ok() : not_json();
  return skip(v, depth);
}

// A message's "content" (or a top-level "system"): a string, or an array of
// parts whose "text" strings count. Other shapes carry no text we can count
// (images, audio) or are the upstream's to reject. `nesting` counts content
// inside content (Anthropic tool_result blocks).
Status add_content(od::value& v, Tally& tally, int depth, int nesting) {
  json_type t;
  if (!type_of(v, t)) return not_json();
  if (t == json_type::null) return Status::ok();
  if (t == json_type::string) return add_string(v, tally) ? Status::ok() : not_json();
  if (t != json_type::array) return skip(v, depth);
  od::array parts;
  if (v.get_array().get(parts) != SUCCESS) return not_json();
  for (auto element : parts) {
    json_type pt;
    od::value* part_at = detail::next_element(element);
    if (!part_at) return not_json();
    od::value& part = *part_at;
    if (!type_of(part, pt)) return not_json();
    if (pt == json_type::null) continue;
    if (pt == json_type::string) {
      if (!add_string(part, tally)) return not_json();
      continue;
    }
    if (pt != json_type::object) {
      Status s = skip(part, depth + 1);
      if (!s) return s;
      continue;
    }
    od::object fields;
    if (part.get_object().get(fields) != SUCCESS) return not_json();
    for (auto f : fields) {
      std::string_view key;
      od::value* fv_at = detail::next_field(f, key);
      if (!fv_at) return not_json();
      od::value& fv = *fv_at;
      Status s;
      if (key == "text") {
        s = add_text(fv, tally, depth + 2);
      } else if (key == "content" && nesting < kMaxContentNesting) {
        s = add_content(fv, tally, depth + 2, nesting + 1);
      } else {
        s = skip(fv, depth + 2);
      }
      if (!s) return s;
    }
  }
  return Status::ok();
}

Status add_messages(od::value& v, Tally& tally, int depth) {
  json_type t;
  if (!type_of(v, t)) return not_json();
  if (t == json_type::null) return Status::ok();
  if (t != json_type::array) return invalid("'messages' must be an array");
  od::array messages;
  if (v.get_array().get(messages) != SUCCESS) return not_json();
  for (auto element : messages) {
    json_type mt;
    od::value* message_at = detail::next_element(element);
    if (!message_at) return not_json();
    od::value& message = *message_at;
    if (!type_of(message, mt)) return not_json();
    if (mt != json_type::object) return invalid("'messages' must be an array of objects");
    od::object fields;
    if (message.get_object().get(fields) != SUCCESS) return not_json();
    for (auto f : fields) {
      std::string_view key;
      od::value* fv_at = detail::next_field(f, key);
      if (!fv_at) return not_json();
      od::value& fv = *fv_at;
      Status s = key == "content" ? add_content(fv, tally, depth + 2, 0) : skip(fv, depth + 2);
      if (!s) return s;
    }
  }
  return Status::ok();
}

// "prompt" (completions) and "input" (embeddings): a string, an array of
// strings, an array of token ids, or an array of arrays of token ids.
Status add_prompt(od::value& v, Tally& tally, std::string_view name, int depth) {
  auto wrong = [&] {
    return invalid("'" + std::string(name) + "' must be a string, an array of strings or an array of token ids");
  };
  json_type t;
  if (!type_of(v, t)) return not_json();
  if (t == json_type::null) return Status::ok();
  if (t == json_type::string) return add_string(v, tally) ? Status::ok() : not_json();
  if (t != json_type::array) return wrong();
  od::array items;
  if (v.get_array().get(items) != SUCCESS) return not_json();
  for (auto element : items) {
    json_type it;
    od::value* item_at = detail::next_element(element);
    if (!item_at) return not_json();
    od::value& item = *item_at;
    if (!type_of(item, it)) return not_json();
    if (it == json_type::string) {
      if (!add_string(item, tally)) return not_json();
    } else if (it == json_type::number) {
      ++tally.token_ids;  // the upstream judges the ids; we check the spelling
      Status s = skip(item, depth + 1);
      if (!s) return s;
    } else if (it == json_type::array) {
      od::array ids;
      if (item.get_array().get(ids) != SUCCESS) return not_json();
      for (auto id : ids) {
        json_type idt;
        od::value* idv_at = detail::next_element(id);
        if (!idv_at) return not_json();
        od::value& idv = *idv_at;
        if (!type_of(idv, idt)) return not_json();
        if (idt != json_type::number) return wrong();
        ++tally.token_ids;
        Status s = skip(idv, depth + 2);
        if (!s) return s;
      }
    } else {
      return wrong();
    }
  }
  return Status::ok();
}

// Reads an optional boolean; null means absent (false).
Status read_bool(od::value& v, bool& out, std::string_view message) {
  json_type t;
  if (!type_of(v, t)) return not_json();
  if (t == json_type::null) {
    out = false;
    return Status::ok();
  }
  if (t != json_type::boolean) return invalid(message);
  return v.get_bool().get(out) == SUCCESS ? Status::ok() : not_json();
}

Status read_max_tokens(od::value& v, std::optional<int64_t>& out, std::string_view message) {
  json_type t;
  if (!type_of(v, t)) return not_json();
  if (t == json_type::null) {
    out.reset();
    return Status::ok();
  }
  int64_t n;
  if (!detail::get_count(v, n)) return invalid(message);
  out = n;
  return Status::ok();
}

Status read_stream_options(od::value& v, bool& include_usage) {
  include_usage = false;  // a later stream_options replaces an earlier one whole
  json_type t;
  if (!type_of(v, t)) return not_json();
  if (t == json_type::null) return Status::ok();
  if (t != json_type::object) return invalid("'stream_options' must be an object");
  od::object fields;
  if (v.get_object().get(fields) != SUCCESS) return not_json();
  for (auto f : fields) {
    std::string_view key;
    od::value* fv_at = detail::next_field(f, key);
    if (!fv_at) return not_json();
    od::value& fv = *fv_at;
    Status s = key == "include_usage"
                   ? read_bool(fv, include_usage, "'stream_options.include_usage' must be a boolean")
                   : skip(fv, 2);
    if (!s) return s;
  }
  return Status::ok();
}

enum class Field {
  kUnknown,
  kModel,
  kStream,
  kStreamOptions,
  kMaxTokens,
  kMaxCompletionTokens,
  kMessages,
  kPrompt,
  kInput,
  kSystem,
};

Field classify(std::string_view key) {
  switch (key.size()) {
    case 5:
      if (key == "model") return Field::kModel;
      if (key == "input") return Field::kInput;
      break;
    case 6:
      if (key == "stream") return Field::kStream;
      if (key == "prompt") return Field::kPrompt;
      if (key == "system") return Field::kSystem;
      break;
    case 8:
      if (key == "messages") return Field::kMessages;
      break;
    case 10:
      if (key == "max_tokens") return Field::kMaxTokens;
      break;
    case 14:
      if (key == "stream_options") return Field::kStreamOptions;
      break;
    case 21:
      if (key == "max_completion_tokens") return Field::kMaxCompletionTokens;
      break;
  }
  return Field::kUnknown;
}

bool model_required(ApiKind kind) { return kind != ApiKind::kOther; }

// The fields as last seen; prompt text is per field so a duplicate replaces it.
struct Fields {
  std::optional<std::string_view> model;  // points into the parser's string buffer
  const char* model_token = nullptr;        // the value's opening quote, in the input
  bool stream = false;
  bool include_usage = false;
  std::optional<int64_t> max_tokens;
  std::optional<int64_t> max_completion_tokens;
  Tally messages, prompt, input, system;
};

Status read_field(ApiKind kind, Field which, od::value& v, Fields& out) {
  switch (which) {
    case Field::kModel: {
      json_type t;
      if (!type_of(v, t)) return not_json();
      if (t == json_type::null && !model_required(kind)) {
        out.model.reset();
        out.model_token = nullptr;
        return Status::ok();
      }
      if (t != json_type::string) return invalid("'model' must be a string");
      out.model_token = v.raw_json_token().data();
      std::string_view model;
      if (v.get_string().get(model) != SUCCESS) return invalid("'model' is not a valid JSON string");
      out.model = model;
      return Status::ok();
    }
    case Field::kStream:
      return read_bool(v, out.stream, "'stream' must be a boolean");
    case Field::kStreamOptions:
      return read_stream_options(v, out.include_usage);
    case Field::kMaxTokens:
      return read_max_tokens(v, out.max_tokens, "'max_tokens' must be a non-negative integer");
    case Field::kMaxCompletionTokens:
      if (kind != ApiKind::kChatCompletions && kind != ApiKind::kOther) return skip(v, 1);
      return read_max_tokens(v, out.max_completion_tokens, "'max_completion_tokens' must be a non-negative integer");
    case Field::kMessages:
      out.messages = {};
      return add_messages(v, out.messages, 1);
    case Field::kPrompt:
      out.prompt = {};
      return add_prompt(v, out.prompt, "prompt", 1);
    case Field::kInput:
      out.input = {};
      return add_prompt(v, out.input, "input", 1);
    case Field::kSystem:
      out.system = {};
      return add_content(v, out.system, 1, 0);
    case Field::kUnknown:
      break;
  }
  return skip(v, 1);
}

Result<RequestInfo> inspect_with(od::parser& parser, ApiKind kind, const detail::PaddedInput& in) {
  od::document doc;
  if (parser.iterate(in.view()).get(doc) != SUCCESS) return not_json();
  json_type top;
  if (doc.type().get(top) != SUCCESS) return not_json();
  if (top != json_type::object) return invalid("request body must be a JSON object");
  od::object object;
  if (doc.get_object().get(object) != SUCCESS) return not_json();

  Fields fields;
  for (auto f : object) {
    std::string_view key;
    od::value* v_at = detail::next_field(f, key);
    if (!v_at) return not_json();
    od::value& v = *v_at;
    Status s = read_field(kind, classify(key), v, fields);
    if (!s) return s;
  }
  // Iteration stops at the object's '}'; anything after it is not JSON.
  const char* trailing;
  if (doc.current_location().get(trailing) == SUCCESS) return not_json();

  RequestInfo info;
  if (fields.model) {
    info.model.assign(*fields.model);
    // The token is a valid JSON string (simdjson checked it): its end is the
    // first quote not escaped by a backslash.
    const char* base = in.data();
    const size_t open = static_cast<size_t>(fields.model_token - base);
    size_t at = open + 1;
    while (at < in.size() && base[at] != '"') at += base[at] == '\\' ? 2 : 1;
    if (at < in.size()) info.model_span = {open, at + 1 - open};
  }
  if (model_required(kind) && info.model.empty()) return invalid("'model' is required");
  info.stream = fields.stream;
  info.include_usage = fields.include_usage;
  info.max_tokens = fields.max_tokens;
  if (fields.max_completion_tokens) {
    info.max_tokens = std::max(info.max_tokens.value_or(0), *fields.max_completion_tokens);
  }
  const Tally parts[] = {fields.messages, fields.prompt, fields.input, fields.system};
  int64_t token_ids = 0;
  for (const Tally& t : parts) {
    info.prompt_chars += t.bytes;
    token_ids += t.token_ids;
  }
  info.estimated_prompt_tokens = estimate_tokens_for_bytes(info.prompt_chars) + token_ids;
  return info;
}

}  // namespace

ApiKind api_kind_for_path(std::string_view path) {
  if (path == "/v1/chat/completions") return ApiKind::kChatCompletions;
  if (path == "/v1/completions") return ApiKind::kCompletions;
  if (path == "/v1/embeddings") return ApiKind::kEmbeddings;
  return ApiKind::kOther;
}

std::string_view api_kind_name(ApiKind kind) {
  switch (kind) {
    case ApiKind::kChatCompletions: return "chat_completions";
    case ApiKind::kCompletions: return "completions";
    case ApiKind::kEmbeddings: return "embeddings";
    case ApiKind::kOther: return "other";
  }
  return "other";
}

Result<RequestInfo> inspect_request(ApiKind kind, const std::string& body) {
  const detail::PaddedInput in(body);
  return detail::with_parser(body.size(), [&](od::parser& p) { return inspect_with(p, kind, in); });
}

// ---- ensure_stream_usage --------------------------------------------------

namespace {

// Where the effective (last) stream_options and include_usage sit in the body.
struct UsageSite {
  bool parsed = false;
  size_t top_open = 0;  // offset of the top-level '{'
  json_type options_type = json_type::null;
  bool has_options = false;
  size_t options_at = 0;  // offset of the stream_options value
  bool has_include = false;
  json_type include_type = json_type::null;
  bool include_value = false;
  size_t include_at = 0;  // offset of the include_usage value
};

bool skip_to(const char* base, size_t size, size_t& at) {
  while (at < size && detail::is_json_space(base[at])) ++at;
  return at < size;
}

UsageSite locate_usage(od::parser& parser, const detail::PaddedInput& in) {
  UsageSite site;
  const char* base = in.data();
  od::document doc;
  od::object object;
  if (parser.iterate(in.view()).get(doc) != SUCCESS || doc.get_object().get(object) != SUCCESS) return site;
  if (!skip_to(base, in.size(), site.top_open) || base[site.top_open] != '{') return site;
  for (auto f : object) {
    std::string_view key;
    od::value* v_at = detail::next_field(f, key);
    if (!v_at) return site;
    od::value& v = *v_at;
    if (key != "stream_options") {
      if (!detail::validate_value(v, 1)) return site;
      continue;
    }
    site.has_options = true;
    site.has_include = false;
    site.options_at = static_cast<size_t>(v.raw_json_token().data() - base);
    if (!type_of(v, site.options_type)) return site;
    if (site.options_type == json_type::null) continue;
    if (site.options_type != json_type::object) {
      if (!detail::validate_value(v, 1)) return site;
      continue;
    }
    od::object options;
    if (v.get_object().get(options) != SUCCESS) return site;
    for (auto g : options) {
      std::string_view k;
      od::value* iv_at = detail::next_field(g, k);
      if (!iv_at) return site;
      od::value& iv = *iv_at;
      if (k != "include_usage") {
        if (!detail::validate_value(iv, 2)) return site;
        continue;
      }
      site.has_include = true;
      site.include_at = static_cast<size_t>(iv.raw_json_token().data() - base);
      if (!type_of(iv, site.include_type)) return site;
      if (site.include_type == json_type::boolean) {
        if (iv.get_bool().get(site.include_value) != SUCCESS) return site;
      } else if (site.include_type != json_type::null && !detail::validate_value(iv, 2)) {
        return site;
      }
    }
  }
  const char* trailing;
  if (doc.current_location().get(trailing) == SUCCESS) return site;
  site.parsed = true;
  return site;
}

// Inserts `member` (a "key":value pair) as the first member of the object
// whose '{' is at `open`, with a comma unless the object is empty.
void insert_first_member(std::string& body, size_t open, std::string_view member) {
  size_t next = open + 1;
  const bool empty = skip_to(body.data(), body.size(), next) && body[next] == '}';
  std::string text(member);
  if (!empty) text += ',';
  body.insert(open + 1, text);
}

}  // namespace

bool rewrite_model(std::string& body, const RequestInfo& info, std::string_view model) {
  if (info.model_span.length == 0 || info.model == model) return false;
  const auto [at, length] = info.model_span;
  if (at + length > body.size() || body[at] != '"' || body[at + length - 1] != '"') return false;
  std::string token = "\"";
  json_escape_append(token, model);
  token += '"';
  body.replace(at, length, token);
  return true;
}

bool ensure_stream_usage(std::string& body) {
  UsageSite site;
  {
    const detail::PaddedInput in(body);
    site = detail::with_parser(body.size(), [&](od::parser& p) { return locate_usage(p, in); });
  }
  if (!site.parsed) return false;
  if (!site.has_options) {
    insert_first_member(body, site.top_open, R"("stream_options":{"include_usage":true})");
    return true;
  }
  if (site.options_type == json_type::null) {
    body.replace(site.options_at, 4, R"({"include_usage":true})");
    return true;
  }
  if (site.options_type != json_type::object) return false;
  if (!site.has_include) {
    insert_first_member(body, site.options_at, R"("include_usage":true)");
    return true;
  }
  if (site.include_type == json_type::null) {
    body.replace(site.include_at, 4, "true");
    return true;
  }
  if (site.include_type == json_type::boolean && !site.include_value) {
    body.replace(site.include_at, 5, "true ");
    return true;
  }
  return false;
}

}  // namespace sluice::llm
