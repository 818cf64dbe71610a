#include "llm/request_inspector.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <optional>
#include <string>
#include <vector>

namespace sluice::llm {
namespace {

using K = ApiKind;

// The body with spare capacity, so the inspector reads it in place.
std::string roomy(std::string_view text) {
  std::string s;
  s.reserve(text.size() + simdjson::SIMDJSON_PADDING + 1);
  s.assign(text);
  return s;
}

// The body with no spare capacity (when it is long enough to live on the
// heap), so the inspector copies it.
std::string tight(std::string_view text) {
  std::string s(text);
  s.shrink_to_fit();
  return s;
}

TEST(ApiKindTest, Paths) {
  EXPECT_EQ(api_kind_for_path("/v1/chat/completions"), K::kChatCompletions);
  EXPECT_EQ(api_kind_for_path("/v1/completions"), K::kCompletions);
  EXPECT_EQ(api_kind_for_path("/v1/embeddings"), K::kEmbeddings);
  EXPECT_EQ(api_kind_for_path("/v1/messages"), K::kOther);
  EXPECT_EQ(api_kind_for_path("/v1/chat/completions/"), K::kOther);
  EXPECT_EQ(api_kind_for_path(""), K::kOther);
  EXPECT_EQ(api_kind_name(K::kEmbeddings), "embeddings");
}

struct Ok {
  const char* name = "";
  K kind = K::kOther;
  std::string body{};
  std::string model{};
  bool stream = false;
  bool include_usage = false;
  std::optional<int64_t> max_tokens{};
  int64_t prompt_chars = 0;
  int64_t tokens = -1;  // -1: estimate_tokens_for_bytes(prompt_chars)
};

const std::vector<Ok>& ok_cases() {
  static const std::vector<Ok> cases = {
      {.name = "chat_basic",
       .kind = K::kChatCompletions,
       .body = R"({"model":"gpt-4o","messages":[{"role":"user","content":"Hello"}]})",
       .model = "gpt-4o",
       .prompt_chars = 5,
       .tokens = 2},
      {.name = "model_last",
       .kind = K::kChatCompletions,
       .body = R"({"messages":[{"role":"user","content":"Hi"}],"temperature":0.2,"model":"m-last"})",
       .model = "m-last",
       .prompt_chars = 2,
       .tokens = 1},
      {.name = "model_after_nested_junk",
       .kind = K::kChatCompletions,
       .body = R"({"x":[[[{"a":[1,{"b":null,"model":"inner"}]}]]],"y":{"model":"nope"},"model":"outer","messages":[]})",
       .model = "outer"},
      {.name = "whitespace_everywhere",
       .kind = K::kChatCompletions,
       .body = "  \n\t{ \"model\" :\r\n \"m\" , \"stream\" : true ,\"messages\" : [ ] }  \n",
       .model = "m",
       .stream = true},
      {.name = "stream_include_usage",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})",
       .model = "m",
       .stream = true,
       .include_usage = true},
      {.name = "stream_options_without_include_usage",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","stream":true,"stream_options":{"other":1}})",
       .model = "m",
       .stream = true},
      {.name = "include_usage_false",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","stream":true,"stream_options":{"include_usage":false}})",
       .model = "m",
       .stream = true},
      {.name = "nulls_mean_absent",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","stream":null,"stream_options":null,"max_tokens":null,"messages":null})",
       .model = "m"},
      {.name = "include_usage_null",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","stream":true,"stream_options":{"include_usage":null}})",
       .model = "m",
       .stream = true},
      {.name = "last_stream_options_wins",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","stream":true,"stream_options":{"include_usage":true},"stream_options":{}})",
       .model = "m",
       .stream = true},
      {.name = "max_tokens",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","max_tokens":100})",
       .model = "m",
       .max_tokens = 100},
      {.name = "max_tokens_zero",
       .kind = K::kCompletions,
       .body = R"({"model":"m","max_tokens":0,"prompt":""})",
       .model = "m",
       .max_tokens = 0},
      {.name = "max_tokens_int64_max",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","max_tokens":9223372036854775807})",
       .model = "m",
       .max_tokens = INT64_MAX},
      {.name = "max_completion_tokens",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","max_completion_tokens":200})",
       .model = "m",
       .max_tokens = 200},
      {.name = "both_max_take_larger",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","max_completion_tokens":50,"max_tokens":300})",
       .model = "m",
       .max_tokens = 300},
      {.name = "max_completion_tokens_ignored_for_completions",
       .kind = K::kCompletions,
       .body = R"({"model":"m","max_completion_tokens":50,"prompt":"x"})",
       .model = "m",
       .prompt_chars = 1},
      {.name = "max_tokens_null_after_value",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","max_tokens":5,"max_tokens":null})",
       .model = "m"},
      {.name = "duplicate_model_last_wins",
       .kind = K::kChatCompletions,
       .body = R"({"model":"cheap","model":"expensive"})",
       .model = "expensive"},
      {.name = "escaped_key",
       .kind = K::kChatCompletions,
       .body = R"({"mod\u0065l":"esc","str\u0065am":true})",
       .model = "esc",
       .stream = true},
      {.name = "escaped_model_value",
       .kind = K::kChatCompletions,
       .body = R"({"model":"a\/b\u0041"})",
       .model = "a/bA"},
      {.name = "array_content",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"abc"},)"
               R"({"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}},{"type":"text","text":"de"}]}]})",
       .model = "m",
       .prompt_chars = 5,
       .tokens = 2},
      {.name = "null_content_tool_call",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"1"}]},)"
               R"({"role":"tool","content":"12345678"}]})",
       .model = "m",
       .prompt_chars = 8,
       .tokens = 2},
      {.name = "escapes_counted_unescaped",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","messages":[{"role":"user","content":"a\nb\"c\\"}]})",
       .model = "m",
       .prompt_chars = 6},
      {.name = "unicode_escapes",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","messages":[{"content":"\u00e9\u4e2d\ud83d\ude00"}]})",
       .model = "m",
       .prompt_chars = 2 + 3 + 4},
      {.name = "raw_utf8",
       .kind = K::kChatCompletions,
       .body = "{\"model\":\"m\",\"messages\":[{\"content\":\"\xC3\xA9\xE4\xB8\xAD\"}]}",
       .model = "m",
       .prompt_chars = 5,
       .tokens = 2},
      {.name = "lone_surrogate_still_counted",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","messages":[{"content":"x\ud83d"}]})",
       .model = "m",
       .prompt_chars = 3},
      {.name = "several_messages",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","messages":[{"role":"system","content":"abcd"},{"role":"user","content":"efgh"}]})",
       .model = "m",
       .prompt_chars = 8,
       .tokens = 2},
      {.name = "unknown_fields_any_type",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","temperature":1e400,"n":-1,"tools":[{"type":"function"}],"user":null,"logit_bias":{}})",
       .model = "m"},
      {.name = "completions_prompt_string",
       .kind = K::kCompletions,
       .body = R"({"model":"m","prompt":"Say this is a test"})",
       .model = "m",
       .prompt_chars = 18,
       .tokens = 5},
      {.name = "completions_prompt_array",
       .kind = K::kCompletions,
       .body = R"({"model":"m","prompt":["ab","cd"]})",
       .model = "m",
       .prompt_chars = 4,
       .tokens = 1},
      {.name = "completions_token_ids",
       .kind = K::kCompletions,
       .body = R"({"model":"m","prompt":[1,2,3]})",
       .model = "m",
       .tokens = 3},
      {.name = "completions_token_id_arrays",
       .kind = K::kCompletions,
       .body = R"({"model":"m","prompt":[[1,2],[3],[]]})",
       .model = "m",
       .tokens = 3},
      {.name = "embeddings_input_string",
       .kind = K::kEmbeddings,
       .body = R"({"input":"The food was delicious","model":"emb"})",
       .model = "emb",
       .prompt_chars = 22,
       .tokens = 6},
      {.name = "embeddings_input_array",
       .kind = K::kEmbeddings,
       .body = R"({"model":"emb","input":["a","bb","ccc"]})",
       .model = "emb",
       .prompt_chars = 6,
       .tokens = 2},
      {.name = "duplicate_messages_last_wins",
       .kind = K::kChatCompletions,
       .body = R"({"model":"m","messages":[{"content":"aaaaaaaa"}],"messages":[{"content":"b"}]})",
       .model = "m",
       .prompt_chars = 1},
      {.name = "other_without_model", .kind = K::kOther, .body = R"({"foo":"bar"})"},
      {.name = "other_model_null", .kind = K::kOther, .body = R"({"model":null})"},
      {.name = "other_empty_object", .kind = K::kOther, .body = "{}"},
      {.name = "anthropic_messages",
       .kind = K::kOther,
       .body = R"({"model":"claude","max_tokens":1024,"system":[{"type":"text","text":"be brief"}],)"
               R"("messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t",)"
               R"("content":[{"type":"text","text":"42"}]}]}]})",
       .model = "claude",
       .max_tokens = 1024,
       .prompt_chars = 10},
      {.name = "system_string",
       .kind = K::kOther,
       .body = R"({"model":"c","system":"abcd"})",
       .model = "c",
       .prompt_chars = 4},
      {.name = "nesting_at_limit",
       .kind = K::kChatCompletions,
       .body = R"({"x":)" + std::string(511, '[') + std::string(511, ']') + R"(,"model":"m"})",
       .model = "m"},
  };
  return cases;
}

class InspectOk : public ::testing::TestWithParam<Ok> {};

void expect_info(const Ok& c, const std::string& body) {
  auto r = inspect_request(c.kind, body);
  ASSERT_TRUE(r.has_value()) << c.name << ": " << r.status().message();
  EXPECT_EQ(r->model, c.model);
  EXPECT_EQ(r->stream, c.stream);
  EXPECT_EQ(r->include_usage, c.include_usage);
  EXPECT_EQ(r->max_tokens, c.max_tokens);
  EXPECT_EQ(r->prompt_chars, c.prompt_chars);
  const int64_t want_tokens = c.tokens >= 0 ? c.tokens : (c.prompt_chars + 3) / 4;
  EXPECT_EQ(r->estimated_prompt_tokens, want_tokens);
}

TEST_P(InspectOk, InPlace) { expect_info(GetParam(), roomy(GetParam().body)); }
TEST_P(InspectOk, Copied) { expect_info(GetParam(), tight(GetParam().body)); }

INSTANTIATE_TEST_SUITE_P(Cases, InspectOk, ::testing::ValuesIn(ok_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

struct Bad {
  const char* name;
  K kind;
  std::string body;
  const char* message;  // exact client-facing message
};

constexpr const char* kNotJson = "request body is not valid JSON";
constexpr const char* kNotObject = "request body must be a JSON object";

const std::vector<Bad>& bad_cases() {
  static const std::vector<Bad> cases = {
      {"empty", K::kChatCompletions, "", kNotJson},
      {"spaces", K::kChatCompletions, "   ", kNotJson},
      {"not_json", K::kChatCompletions, "model=gpt", kNotJson},
      {"open_brace", K::kChatCompletions, "{", kNotJson},
      {"truncated_key", K::kChatCompletions, R"({"mod)", kNotJson},
      {"truncated_after_colon", K::kChatCompletions, R"({"model":)", kNotJson},
      {"truncated_value", K::kChatCompletions, R"({"model":"gp)", kNotJson},
      {"truncated_no_close", K::kChatCompletions, R"({"model":"m")", kNotJson},
      {"truncated_in_messages", K::kChatCompletions, R"({"model":"m","messages":[{"content":"hi"})", kNotJson},
      {"trailing_comma", K::kChatCompletions, R"({"model":"m",})", kNotJson},
      {"missing_colon", K::kChatCompletions, R"({"model" "m"})", kNotJson},
      {"missing_comma", K::kChatCompletions, R"({"model":"m" "stream":true})", kNotJson},
      {"trailing_garbage", K::kChatCompletions, R"({"model":"m"} x)", kNotJson},
      {"two_objects", K::kChatCompletions, R"({"model":"m"}{"model":"n"})", kNotJson},
      {"extra_close", K::kChatCompletions, R"({"model":"m"}})", kNotJson},
      {"bad_utf8", K::kChatCompletions, "{\"model\":\"m\xFF\"}", kNotJson},
      {"control_char_in_string", K::kChatCompletions, std::string("{\"model\":\"a\x01\"}"), kNotJson},
      {"bad_literal_stream", K::kChatCompletions, R"({"model":"m","stream":tru})", kNotJson},
      {"bad_null_stream_options", K::kChatCompletions, R"({"model":"m","stream":true,"stream_options":nul})", kNotJson},
      // Found by the fuzzer: type() judged "nu\x10ll" a null by its first byte.
      {"null_with_junk", K::kChatCompletions, "{\"stream\":true,\"stream_options\":nu\x10\x10ll,\"model\":\"m\"}",
       kNotJson},
      {"bad_null_max_tokens", K::kChatCompletions, R"({"model":"m","max_tokens":nulll})", kNotJson},
      // Fields the inspector does not use are checked all the same.
      {"skipped_mismatched_brackets", K::kChatCompletions, R"({"x":[1,2},"model":"m"})", kNotJson},
      {"skipped_value_then_colon", K::kChatCompletions, R"({"x":["a":1],"model":"m"})", kNotJson},
      {"skipped_bad_literal", K::kChatCompletions, R"({"x":{"y":nul},"model":"m"})", kNotJson},
      {"skipped_bad_number", K::kChatCompletions, R"({"temperature":01,"model":"m"})", kNotJson},
      {"skipped_bad_number_2", K::kChatCompletions, R"({"temperature":1.,"model":"m"})", kNotJson},
      {"skipped_bad_number_3", K::kChatCompletions, R"({"temperature":-,"model":"m"})", kNotJson},
      {"skipped_key_not_string", K::kChatCompletions, R"({"x":{1:2},"model":"m"})", kNotJson},
      {"skipped_empty_element", K::kChatCompletions, R"({"x":[1,,2],"model":"m"})", kNotJson},
      {"skipped_trailing_comma", K::kChatCompletions, R"({"x":[1,2,],"model":"m"})", kNotJson},
      {"message_field_malformed", K::kChatCompletions,
       R"({"model":"m","messages":[{"role":"assistme":"x","content":"hi"}]})", kNotJson},
      {"content_part_malformed", K::kChatCompletions,
       R"({"model":"m","messages":[{"content":[{"type":"image_url","image_url":{"url":[}}]}]})", kNotJson},
      {"too_deep", K::kChatCompletions,
       R"({"x":)" + std::string(512, '[') + std::string(512, ']') + R"(,"model":"m"})", kNotJson},
      {"too_deep_objects", K::kOther, R"({"x":)" + [] {
         std::string s;
         for (int i = 0; i < 5000; ++i) s += R"({"a":)";
         return s + "1" + std::string(5000, '}');
       }() + "}", kNotJson},
      {"bom", K::kChatCompletions, "\xEF\xBB\xBF{\"model\":\"m\"}", kNotJson},
      {"array_top", K::kChatCompletions, R"([{"model":"m"}])", kNotObject},
      {"string_top", K::kChatCompletions, R"("model")", kNotObject},
      {"number_top", K::kChatCompletions, "42", kNotObject},
      {"null_top", K::kOther, "null", kNotObject},
      {"missing_model", K::kChatCompletions, R"({"messages":[]})", "'model' is required"},
      {"missing_model_completions", K::kCompletions, R"({"prompt":"x"})", "'model' is required"},
      {"missing_model_embeddings", K::kEmbeddings, R"({"input":"x"})", "'model' is required"},
      {"empty_model", K::kChatCompletions, R"({"model":""})", "'model' is required"},
      {"model_number", K::kChatCompletions, R"({"model":5})", "'model' must be a string"},
      {"model_null", K::kChatCompletions, R"({"model":null})", "'model' must be a string"},
      {"model_object", K::kOther, R"({"model":{"id":"m"}})", "'model' must be a string"},
      {"stream_string", K::kChatCompletions, R"({"model":"m","stream":"true"})", "'stream' must be a boolean"},
      {"stream_number", K::kChatCompletions, R"({"model":"m","stream":1})", "'stream' must be a boolean"},
      {"stream_options_number", K::kChatCompletions, R"({"model":"m","stream_options":5})",
       "'stream_options' must be an object"},
      {"include_usage_string", K::kChatCompletions, R"({"model":"m","stream_options":{"include_usage":"yes"}})",
       "'stream_options.include_usage' must be a boolean"},
      {"max_tokens_negative", K::kChatCompletions, R"({"model":"m","max_tokens":-1})",
       "'max_tokens' must be a non-negative integer"},
      {"max_tokens_fraction", K::kChatCompletions, R"({"model":"m","max_tokens":1.5})",
       "'max_tokens' must be a non-negative integer"},
      {"max_tokens_exponent", K::kChatCompletions, R"({"model":"m","max_tokens":1e3})",
       "'max_tokens' must be a non-negative integer"},
      {"max_tokens_huge", K::kChatCompletions, R"({"model":"m","max_tokens":99999999999999999999})",
       "'max_tokens' must be a non-negative integer"},
      {"max_tokens_string", K::kChatCompletions, R"({"model":"m","max_tokens":"100"})",
       "'max_tokens' must be a non-negative integer"},
      {"max_completion_tokens_bool", K::kChatCompletions, R"({"model":"m","max_completion_tokens":true})",
       "'max_completion_tokens' must be a non-negative integer"},
      {"messages_object", K::kChatCompletions, R"({"model":"m","messages":{"role":"user"}})",
       "'messages' must be an array"},
      {"messages_string", K::kChatCompletions, R"({"model":"m","messages":"hi"})", "'messages' must be an array"},
      {"message_not_object", K::kChatCompletions, R"({"model":"m","messages":["hi"]})",
       "'messages' must be an array of objects"},
      {"prompt_number", K::kCompletions, R"({"model":"m","prompt":5})",
       "'prompt' must be a string, an array of strings or an array of token ids"},
      {"prompt_array_of_bools", K::kCompletions, R"({"model":"m","prompt":[true]})",
       "'prompt' must be a string, an array of strings or an array of token ids"},
      {"prompt_nested_strings", K::kCompletions, R"({"model":"m","prompt":[["a"]]})",
       "'prompt' must be a string, an array of strings or an array of token ids"},
      {"input_object", K::kEmbeddings, R"({"model":"m","input":{}})",
       "'input' must be a string, an array of strings or an array of token ids"},
      {"wrong_type_before_model", K::kChatCompletions, R"({"stream":"no","model":"m"})",
       "'stream' must be a boolean"},
  };
  return cases;
}

class InspectBad : public ::testing::TestWithParam<Bad> {};

void expect_error(const Bad& c, const std::string& body) {
  auto r = inspect_request(c.kind, body);
  ASSERT_FALSE(r.has_value()) << c.name << " parsed, model=" << r->model;
  EXPECT_EQ(r.status().code(), Errc::kInvalid);
  EXPECT_EQ(r.status().message(), c.message);
}

TEST_P(InspectBad, InPlace) { expect_error(GetParam(), roomy(GetParam().body)); }
TEST_P(InspectBad, Copied) { expect_error(GetParam(), tight(GetParam().body)); }

INSTANTIATE_TEST_SUITE_P(Cases, InspectBad, ::testing::ValuesIn(bad_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

// Every prefix of a valid body is an error or (for the whole body) the right
// answer: truncation never crashes or yields a wrong model.
TEST(InspectRequestTest, EveryTruncation) {
  const std::string body =
      R"({"model":"gpt-4o","stream":true,"max_tokens":7,"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]})";
  for (size_t n = 0; n < body.size(); ++n) {
    auto r = inspect_request(K::kChatCompletions, tight(body.substr(0, n)));
    EXPECT_FALSE(r.has_value()) << n;
  }
  auto r = inspect_request(K::kChatCompletions, body);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->model, "gpt-4o");
  EXPECT_EQ(r->max_tokens, 7);
}

TEST(InspectRequestTest, LargeBodyUsesPrivateBuffers) {
  std::string text(3 << 20, 'a');
  const std::string body = R"({"model":"big","messages":[{"role":"user","content":")" + text + R"("}]})";
  auto r = inspect_request(K::kChatCompletions, tight(body));
  ASSERT_TRUE(r.has_value()) << r.status().message();
  EXPECT_EQ(r->prompt_chars, static_cast<int64_t>(text.size()));
  // And the per-thread state still works for small bodies afterwards.
  auto small = inspect_request(K::kChatCompletions, R"({"model":"s"})");
  ASSERT_TRUE(small.has_value());
  EXPECT_EQ(small->model, "s");
}

// ---- ensure_stream_usage ----------------------------------------------------

struct Rewrite {
  const char* name;
  std::string before;
  std::string after;
};

const std::vector<Rewrite>& rewrite_cases() {
  static const std::vector<Rewrite> cases = {
      {"absent", R"({"model":"m","stream":true})",
       R"({"stream_options":{"include_usage":true},"model":"m","stream":true})"},
      {"absent_leading_space", " \n{ \"model\":\"m\",\"stream\":true}",
       " \n{\"stream_options\":{\"include_usage\":true}, \"model\":\"m\",\"stream\":true}"},
      {"empty_options", R"({"model":"m","stream":true,"stream_options":{}})",
       R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})"},
      {"empty_options_spaced", "{\"model\":\"m\",\"stream\":true,\"stream_options\": { \n } }",
       "{\"model\":\"m\",\"stream\":true,\"stream_options\": {\"include_usage\":true \n } }"},
      {"options_other_member", R"({"model":"m","stream":true,"stream_options":{"x":1}})",
       R"({"model":"m","stream":true,"stream_options":{"include_usage":true,"x":1}})"},
      {"include_false", R"({"model":"m","stream":true,"stream_options":{"include_usage":false}})",
       R"({"model":"m","stream":true,"stream_options":{"include_usage":true }})"},
      {"include_false_spaced", "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\" : false , \"x\":2}}",
       "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\" : true  , \"x\":2}}"},
      {"include_null", R"({"model":"m","stream":true,"stream_options":{"include_usage":null}})",
       R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})"},
      {"options_null", R"({"model":"m","stream":true,"stream_options":null,"n":1})",
       R"({"model":"m","stream":true,"stream_options":{"include_usage":true},"n":1})"},
      {"duplicate_options_last_edited",
       R"({"model":"m","stream":true,"stream_options":{"include_usage":true},"stream_options":{}})",
       R"({"model":"m","stream":true,"stream_options":{"include_usage":true},"stream_options":{"include_usage":true}})"},
      {"duplicate_include_last_edited",
       R"({"model":"m","stream":true,"stream_options":{"include_usage":true,"include_usage":false}})",
       R"({"model":"m","stream":true,"stream_options":{"include_usage":true,"include_usage":true }})"},
      {"escaped_keys", R"({"model":"m","stream":true,"stream\u005foptions":{"include\u005fusage":false}})",
       R"({"model":"m","stream":true,"stream\u005foptions":{"include\u005fusage":true }})"},
      {"only_stream", R"({"stream":true})", R"({"stream_options":{"include_usage":true},"stream":true})"},
      {"pretty_printed", "{\n  \"model\": \"m\",\n  \"stream\": true,\n  \"messages\": [\n    {\"role\": \"user\", \"content\": \"hi\"}\n  ]\n}\n",
       "{\"stream_options\":{\"include_usage\":true},\n  \"model\": \"m\",\n  \"stream\": true,\n  \"messages\": [\n    {\"role\": \"user\", \"content\": \"hi\"}\n  ]\n}\n"},
  };
  return cases;
}

class EnsureUsage : public ::testing::TestWithParam<Rewrite> {};

void check_rewrite(const Rewrite& c, std::string body) {
  auto before = inspect_request(K::kOther, body);
  ASSERT_TRUE(before.has_value()) << before.status().message();
  ASSERT_TRUE(before->stream);
  ASSERT_FALSE(before->include_usage);

  ASSERT_TRUE(ensure_stream_usage(body));
  EXPECT_EQ(body, c.after);

  // Still valid JSON by a strict, full parse.
  simdjson::dom::parser strict;
  EXPECT_EQ(strict.parse(simdjson::padded_string(body)).error(), simdjson::SUCCESS);

  auto after = inspect_request(K::kOther, body);
  ASSERT_TRUE(after.has_value()) << after.status().message();
  EXPECT_TRUE(after->include_usage);
  EXPECT_EQ(after->model, before->model);
  EXPECT_TRUE(after->stream);
  EXPECT_EQ(after->max_tokens, before->max_tokens);
  EXPECT_EQ(after->prompt_chars, before->prompt_chars);

  // A second call has nothing left to do.
  EXPECT_FALSE(ensure_stream_usage(body));
  EXPECT_EQ(body, c.after);
}

TEST_P(EnsureUsage, InPlace) { check_rewrite(GetParam(), roomy(GetParam().before)); }
TEST_P(EnsureUsage, Copied) { check_rewrite(GetParam(), tight(GetParam().before)); }

INSTANTIATE_TEST_SUITE_P(Cases, EnsureUsage, ::testing::ValuesIn(rewrite_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(EnsureStreamUsageTest, EmptyTopLevelObjectGetsNoComma) {
  std::string body = "{ }";
  EXPECT_TRUE(ensure_stream_usage(body));
  EXPECT_EQ(body, R"({"stream_options":{"include_usage":true} })");
}

TEST(EnsureStreamUsageTest, LeavesOtherBodiesAlone) {
  const std::vector<std::string> bodies = {
      "",
      "not json",
      "[1,2]",
      R"({"model":"m","stream":true,"stream_options":{"include_usage":true}})",
      R"({"model":"m","stream":true,"stream_options":5})",
      R"({"model":"m","stream":true,"stream_options":{"include_usage":"no"}})",
      R"({"model":"m","stream":true,"stream_options":{"include_usage":false})",  // truncated
      R"({"model":"m","stream":true,"x":[1,2}})",                                // mismatched brackets
      R"({"model":"m","stream":true,"stream_options":{"include_usage":false}} x)",  // trailing garbage
  };
  for (const std::string& b : bodies) {
    std::string body = b;
    EXPECT_FALSE(ensure_stream_usage(body)) << b;
    EXPECT_EQ(body, b);
  }
}

}  // namespace
}  // namespace sluice::llm

// ---- rewrite_model ------------------------------------------------------------

namespace sluice::llm {
namespace {

// Rewrites the effective "model" value and nothing else, byte for byte.
std::string rewritten(std::string body, std::string_view to) {
  auto info = inspect_request(ApiKind::kChatCompletions, body);
  EXPECT_TRUE(info.has_value()) << info.status().message();
  if (!info) return body;
  rewrite_model(body, *info, to);
  auto again = inspect_request(ApiKind::kChatCompletions, body);
  EXPECT_TRUE(again.has_value()) << body;
  if (again) EXPECT_EQ(again->model, to) << body;
  return body;
}

TEST(RewriteModel, ReplacesOnlyTheModelValue) {
  EXPECT_EQ(rewritten(R"({"model":"llama3","messages":[]})", "meta-llama/Meta-Llama-3.1-8B-Instruct"),
            R"({"model":"meta-llama/Meta-Llama-3.1-8B-Instruct","messages":[]})");
  // Spacing, key order and other fields stay as the client wrote them.
  EXPECT_EQ(rewritten("{ \"messages\" : [ ] ,\n \"model\" :  \"a\" , \"x\":\"model\" }", "bb"),
            "{ \"messages\" : [ ] ,\n \"model\" :  \"bb\" , \"x\":\"model\" }");
  // Escapes inside the old value; the new one is escaped.
  EXPECT_EQ(rewritten(R"({"model":"l\"3\\","messages":[]})", "q\"x"), R"({"model":"q\"x","messages":[]})");
  EXPECT_EQ(rewritten(R"({"model":"ll\u0061ma","messages":[]})", "z"), R"({"model":"z","messages":[]})");
  // A duplicated key: the last one is what the upstream reads, so that one changes.
  EXPECT_EQ(rewritten(R"({"model":"a","model":"b","messages":[]})", "c"), R"({"model":"a","model":"c","messages":[]})");
  // An escaped key is the same key.
  EXPECT_EQ(rewritten(R"({"mod\u0065l":"a","messages":[]})", "c"), R"({"mod\u0065l":"c","messages":[]})");
}

TEST(RewriteModel, NothingToDo) {
  std::string body = R"({"model":"same","messages":[]})";
  auto info = inspect_request(ApiKind::kChatCompletions, body);
  ASSERT_TRUE(info.has_value());
  EXPECT_FALSE(rewrite_model(body, *info, "same"));
  // No model at all (pass-through paths).
  std::string other = R"({"file":"x"})";
  auto oi = inspect_request(ApiKind::kOther, other);
  ASSERT_TRUE(oi.has_value());
  EXPECT_EQ(oi->model_span.length, 0u);
  EXPECT_FALSE(rewrite_model(other, *oi, "m"));
  EXPECT_EQ(other, R"({"file":"x"})");
  // A model that the last occurrence set to null.
  std::string nulled = R"({"model":"a","model":null})";
  auto ni = inspect_request(ApiKind::kOther, nulled);
  ASSERT_TRUE(ni.has_value());
  EXPECT_FALSE(rewrite_model(nulled, *ni, "m"));
}

TEST(RewriteModel, ThenUsageInsertionStillWorks) {
  std::string body = R"({"model":"a","stream":true,"messages":[]})";
  auto info = inspect_request(ApiKind::kChatCompletions, body);
  ASSERT_TRUE(info.has_value());
  ASSERT_TRUE(rewrite_model(body, *info, "longer-name"));
  ASSERT_TRUE(ensure_stream_usage(body));
  EXPECT_EQ(body, R"({"stream_options":{"include_usage":true},"model":"longer-name","stream":true,"messages":[]})");
}

}  // namespace
}  // namespace sluice::llm
