#include "mock/mock_model.h"

#include "core/json_escape.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>

#include <simdjson.h>

namespace sluice::mock {
namespace {

// 64 words; 7 is coprime with 64, so (i*7+3) % 64 visits every word once per
// 64 tokens. Each entry carries its trailing space.
constexpr std::array<std::string_view, 64> kVocab = {
    "the ",    "quick ",  "brown ",  "fox ",    "jumps ",  "over ",   "lazy ",   "dog ",
    "a ",      "model ",  "token ",  "stream ", "gateway ", "river ", "sluice ", "gate ",
    "water ",  "flows ",  "through ", "narrow ", "channel ", "and ",  "every ",  "word ",
    "arrives ", "on ",    "time ",   "while ",  "the ",    "mock ",   "server ", "answers ",
    "with ",   "steady ", "calm ",   "rhythm ", "so ",     "tests ",  "stay ",   "simple ",
    "fast ",   "and ",    "exact ",  "each ",   "request ", "gets ",  "its ",    "reply ",
    "in ",     "order ",  "bytes ",  "move ",   "from ",   "here ",   "to ",     "there ",
    "without ", "delay ", "or ",     "loss ",   "until ",  "done ",   "now ",    "again "};

void append_head(std::string& out, const ResponseMeta& meta, std::string_view object) {
  out += "{\"id\":\"";
  out += meta.api == TextApi::kChat ? "chatcmpl-mock-" : "cmpl-mock-";
  append_int(out, static_cast<int64_t>(meta.seq));
  out += "\",\"object\":\"";
  out += object;
  out += "\",\"created\":";
  append_int(out, meta.created);
  out += ",\"model\":\"";
  json_escape_append(out, meta.model);
  out += "\",";
}

void append_usage_object(std::string& out, Usage u) {
  out += "{\"prompt_tokens\":";
  append_int(out, u.prompt_tokens);
  out += ",\"completion_tokens\":";
  append_int(out, u.completion_tokens);
  out += ",\"total_tokens\":";
  append_int(out, u.prompt_tokens + u.completion_tokens);
  out += '}';
}

int64_t text_size(int64_t tokens) { return tokens * 7; }  // average word is ~6.5 bytes

// ---- embeddings ----

constexpr uint64_t kFnvOffset = 1469598103934665603ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;

uint64_t fnv1a(uint64_t h, const void* data, size_t n) {
  auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= kFnvPrime;
  }
  return h;
}

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void append_float(std::string& out, float f) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, f);
  out.append(buf, r.ptr);
}

void append_base64(std::string& out, const unsigned char* p, size_t n) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < n) {
    uint32_t v = uint32_t{p[i]} << 16;
    if (i + 1 < n) v |= uint32_t{p[i + 1]} << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < n ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
}

Status bad(std::string message) { return Status(Errc::kInvalid, std::move(message)); }

// Seed of a token array input: the ids, mixed in order.
simdjson::error_code seed_tokens(simdjson::ondemand::array arr, uint64_t& seed) {
  uint64_t h = kFnvOffset ^ 0x746f6b656e73ull;  // distinct from the string "..." seeds
  for (auto el : arr) {
    int64_t id = 0;
    if (auto e = el.get_int64().get(id)) return e;
    h = fnv1a(h, &id, sizeof id);
  }
  seed = h;
  return simdjson::SUCCESS;
}

Result<std::vector<uint64_t>> parse_inputs(simdjson::ondemand::value v) {
  std::vector<uint64_t> seeds;
  simdjson::ondemand::json_type t;
  if (v.type().get(t)) return bad("invalid JSON body");
  if (t == simdjson::ondemand::json_type::string) {
    std::string_view s;
    if (v.get_string().get(s)) return bad("'input' is not a valid string");
    seeds.push_back(fnv1a(kFnvOffset, s.data(), s.size()));
    return seeds;
  }
  if (t != simdjson::ondemand::json_type::array) {
    return bad("'input' must be a string or an array");
  }
  simdjson::ondemand::array arr;
  if (v.get_array().get(arr)) return bad("invalid JSON body");
  // [1, 2, 3] is one tokenized input; ["a", "b"] and [[1, 2], [3]] are several.
  uint64_t token_hash = kFnvOffset ^ 0x746f6b656e73ull;
  size_t numbers = 0;
  for (auto el : arr) {
    simdjson::ondemand::value ev;
    if (el.get(ev) || ev.type().get(t)) return bad("invalid JSON body");
    if (t == simdjson::ondemand::json_type::number && seeds.empty()) {
      int64_t id = 0;
      if (ev.get_int64().get(id)) return bad("'input' token ids must be integers");
      token_hash = fnv1a(token_hash, &id, sizeof id);
      ++numbers;
    } else if (t == simdjson::ondemand::json_type::string && numbers == 0) {
      std::string_view s;
      if (ev.get_string().get(s)) return bad("'input' is not a valid string");
      seeds.push_back(fnv1a(kFnvOffset, s.data(), s.size()));
    } else if (t == simdjson::ondemand::json_type::array && numbers == 0) {
      simdjson::ondemand::array inner;
      uint64_t seed = 0;
      if (ev.get_array().get(inner) || seed_tokens(inner, seed)) {
        return bad("'input' token ids must be integers");
      }
      seeds.push_back(seed);
    } else {
      return bad("'input' mixes strings, token ids and token arrays");
    }
  }
  if (numbers > 0) seeds.push_back(token_hash);
  if (seeds.empty()) return bad("'input' must not be empty");
  return seeds;
}

}  // namespace

// ---- text ----

std::string_view token_text(int64_t i) {
  return kVocab[static_cast<uint64_t>(i * 7 + 3) % kVocab.size()];
}

void append_tokens(std::string& out, int64_t first, int64_t count) {
  for (int64_t i = first; i < first + count; ++i) out += token_text(i);
}

void append_int(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

TokenPlan plan_tokens(std::optional<int64_t> header_tokens, std::optional<int64_t> max_tokens,
                      int64_t default_tokens, int64_t cap) {
  TokenPlan p;
  if (header_tokens) {
    p.tokens = *header_tokens;
    if (max_tokens && *max_tokens < p.tokens) p = {*max_tokens, true};
  } else if (max_tokens) {
    p = {*max_tokens, true};
  } else {
    p.tokens = default_tokens;
  }
  if (p.tokens > cap) p = {cap, true};
  if (p.tokens < 0) p.tokens = 0;
  return p;
}

std::string completion_json(const ResponseMeta& meta, const TokenPlan& plan, Usage usage) {
  std::string out;
  out.reserve(256 + meta.model.size() + static_cast<size_t>(text_size(plan.tokens)));
  if (meta.api == TextApi::kChat) {
    append_head(out, meta, "chat.completion");
    out += "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"";
    append_tokens(out, 0, plan.tokens);
    out += "\"},\"logprobs\":null,\"finish_reason\":\"";
  } else {
    append_head(out, meta, "text_completion");
    out += "\"choices\":[{\"index\":0,\"text\":\"";
    append_tokens(out, 0, plan.tokens);
    out += "\",\"logprobs\":null,\"finish_reason\":\"";
  }
  out += plan.finish_reason();
  out += "\"}],\"usage\":";
  append_usage_object(out, usage);
  out += '}';
  return out;
}

// ---- SSE ----

namespace {
constexpr std::string_view kChatTokenOpen = "{\"index\":0,\"delta\":{\"content\":\"";
constexpr std::string_view kChatTokenClose = "\"},\"finish_reason\":null}]";
constexpr std::string_view kTextTokenOpen = "{\"index\":0,\"text\":\"";
constexpr std::string_view kTextTokenClose = "\",\"logprobs\":null,\"finish_reason\":null}]";
constexpr std::string_view kEndUsageNull = ",\"usage\":null}\n\n";
constexpr std::string_view kEnd = "}\n\n";
}  // namespace

SseEncoder::SseEncoder(const ResponseMeta& meta, bool include_usage)
    : api_(meta.api), include_usage_(include_usage) {
  tpl_.reserve(160 + meta.model.size());
  tpl_ += "data: ";
  append_head(tpl_, meta, meta.api == TextApi::kChat ? "chat.completion.chunk" : "text_completion");
  tpl_ += "\"choices\":[";
  head_size_ = tpl_.size();
  tpl_ += meta.api == TextApi::kChat ? kChatTokenOpen : kTextTokenOpen;
}

void SseEncoder::append_start(std::string& out) const {
  if (api_ != TextApi::kChat) return;
  out += head();
  out += "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]";
  out += include_usage_ ? kEndUsageNull : kEnd;
}

void SseEncoder::append_token(std::string& out, int64_t i) const {
  out += tpl_;
  out += token_text(i);
  out += api_ == TextApi::kChat ? kChatTokenClose : kTextTokenClose;
  out += include_usage_ ? kEndUsageNull : kEnd;
}

void SseEncoder::append_finish(std::string& out, std::string_view finish_reason) const {
  out += head();
  out += api_ == TextApi::kChat ? "{\"index\":0,\"delta\":{},\"finish_reason\":\""
                                : "{\"index\":0,\"text\":\"\",\"logprobs\":null,\"finish_reason\":\"";
  out += finish_reason;
  out += "\"}]";
  out += include_usage_ ? kEndUsageNull : kEnd;
}

void SseEncoder::append_usage(std::string& out, Usage usage) const {
  if (!include_usage_) return;
  out += head();
  out += "],\"usage\":";
  append_usage_object(out, usage);
  out += "}\n\n";
}

void SseEncoder::append_done(std::string& out) { out += "data: [DONE]\n\n"; }

void SseEncoder::append_end(std::string& out, std::string_view finish_reason, Usage usage) const {
  append_finish(out, finish_reason);
  append_usage(out, usage);
  append_done(out);
}

size_t SseEncoder::size_hint(int64_t tokens) const {
  // head + the longest fixed part of an event (~90 bytes) + a word, per event.
  size_t per_event = head_size_ + 100;
  return per_event * static_cast<size_t>(tokens + 3) + 16;
}

// ---- embeddings ----

void reserve_json_padding(std::string& body) {
  if (body.capacity() - body.size() < simdjson::SIMDJSON_PADDING) {
    body.reserve(body.size() + simdjson::SIMDJSON_PADDING);
  }
}

Result<EmbeddingRequest> parse_embedding_request(std::string& body) {
  reserve_json_padding(body);
  // Parsing never suspends, so one parser per thread is safe across coroutines.
  thread_local simdjson::ondemand::parser parser;
  simdjson::ondemand::document doc;
  simdjson::ondemand::object obj;
  if (parser.iterate(body).get(doc) || doc.get_object().get(obj)) {
    return bad("invalid JSON body");
  }
  EmbeddingRequest req;
  bool have_input = false;
  for (auto field : obj) {
    std::string_view key;
    simdjson::ondemand::value v;
    if (field.unescaped_key().get(key) || field.value().get(v)) return bad("invalid JSON body");
    if (key == "input") {
      auto seeds = parse_inputs(v);
      if (!seeds) return seeds.status();
      req.input_seeds = std::move(seeds.value());
      have_input = true;
    } else if (key == "dimensions") {
      int64_t d = 0;
      if (v.get_int64().get(d) || d < 1 || d > kMaxEmbeddingDim) {
        return bad("'dimensions' must be an integer between 1 and " +
                   std::to_string(kMaxEmbeddingDim));
      }
      req.dimensions = static_cast<int>(d);
    } else if (key == "encoding_format") {
      std::string_view f;
      if (v.get_string().get(f) || (f != "float" && f != "base64")) {
        return bad("'encoding_format' must be \"float\" or \"base64\"");
      }
      req.base64 = f == "base64";
    }
  }
  if (!have_input) return bad("missing required parameter 'input'");
  return req;
}

void embedding_values(uint64_t seed, std::span<float> out) {
  uint64_t state = seed;
  double norm = 0;
  for (float& f : out) {
    // 24 random bits -> [-1, 1)
    f = static_cast<float>(static_cast<double>(splitmix64(state) >> 40) / 8388608.0 - 1.0);
    norm += static_cast<double>(f) * f;
  }
  if (norm == 0) return;
  auto scale = static_cast<float>(1.0 / std::sqrt(norm));
  for (float& f : out) f *= scale;
}

std::string embeddings_json(std::string_view model, const EmbeddingRequest& req, int dim,
                            int64_t prompt_tokens) {
  std::string out;
  size_t per_input = 64 + static_cast<size_t>(dim) * (req.base64 ? 6 : 12);
  out.reserve(128 + model.size() + req.input_seeds.size() * per_input);
  std::vector<float> values(static_cast<size_t>(dim));
  out += "{\"object\":\"list\",\"data\":[";
  for (size_t i = 0; i < req.input_seeds.size(); ++i) {
    if (i > 0) out += ',';
    out += "{\"object\":\"embedding\",\"index\":";
    append_int(out, static_cast<int64_t>(i));
    out += ",\"embedding\":";
    embedding_values(req.input_seeds[i], values);
    if (req.base64) {
      out += '"';
      // float32 little-endian, as OpenAI encodes it (x86 and ARM are little-endian).
      append_base64(out, reinterpret_cast<const unsigned char*>(values.data()),
                    values.size() * sizeof(float));
      out += '"';
    } else {
      out += '[';
      for (size_t j = 0; j < values.size(); ++j) {
        if (j > 0) out += ',';
        append_float(out, values[j]);
      }
      out += ']';
    }
    out += '}';
  }
  out += "],\"model\":\"";
  json_escape_append(out, model);
  out += "\",\"usage\":{\"prompt_tokens\":";
  append_int(out, prompt_tokens);
  out += ",\"total_tokens\":";
  append_int(out, prompt_tokens);
  out += "}}";
  return out;
}

// ---- models ----

namespace {
void append_model(std::string& out, std::string_view id) {
  out += "{\"id\":\"";
  json_escape_append(out, id);
  out += "\",\"object\":\"model\",\"created\":0,\"owned_by\":\"sluice-mock\"}";
}
}  // namespace

std::string models_json(std::span<const std::string> models) {
  std::string out = "{\"object\":\"list\",\"data\":[";
  for (size_t i = 0; i < models.size(); ++i) {
    if (i > 0) out += ',';
    append_model(out, models[i]);
  }
  out += "]}";
  return out;
}

std::string model_json(std::string_view id) {
  std::string out;
  append_model(out, id);
  return out;
}

// ---- headers ----

namespace {

Status bad_header(std::string_view name, std::string_view why) {
  std::string m = "invalid header ";
  m += name;
  m += ": ";
  m += why;
  return Status(Errc::kInvalid, std::move(m));
}

// A non-negative decimal integer in [lo, hi].
std::optional<int64_t> parse_count(std::string_view v, int64_t lo, int64_t hi) {
  if (v.empty() || v.size() > 18) return std::nullopt;
  int64_t x = 0;
  auto r = std::from_chars(v.data(), v.data() + v.size(), x);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size() || x < lo || x > hi) return std::nullopt;
  return x;
}

}  // namespace

Result<MockOverrides> parse_overrides(const http::RequestHead& head) {
  static constexpr std::string_view kPrefix = "x-mock-";
  MockOverrides o;
  for (const http::Header& h : head.headers) {
    if (h.name.size() <= kPrefix.size() ||
        !http::iequals(h.name.substr(0, kPrefix.size()), kPrefix)) {
      continue;
    }
    std::string_view what = h.name.substr(kPrefix.size());
    std::optional<int64_t>* slot = nullptr;
    int64_t lo = 0;
    int64_t hi = kMaxCount;
    if (http::iequals(what, "ttft-ms")) {
      slot = &o.ttft_ms, hi = kMaxDelayMs;
    } else if (http::iequals(what, "itl-ms")) {
      slot = &o.itl_ms, hi = kMaxDelayMs;
    } else if (http::iequals(what, "tokens")) {
      slot = &o.tokens;
    } else if (http::iequals(what, "fail-after")) {
      slot = &o.fail_after;
    } else if (http::iequals(what, "stall-after")) {
      slot = &o.stall_after;
    } else if (http::iequals(what, "status")) {
      auto s = parse_count(h.value, 400, 599);
      if (!s) return bad_header(h.name, "expected a status between 400 and 599");
      o.status = static_cast<int>(*s);
      continue;
    } else {
      continue;  // not ours; forward compatible
    }
    auto x = parse_count(h.value, lo, hi);
    if (!x) {
      return bad_header(h.name, "expected an integer between 0 and " + std::to_string(hi));
    }
    *slot = *x;
  }
  return o;
}

}  // namespace sluice::mock
