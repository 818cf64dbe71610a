#include "core/json_escape.h"
#include "mock/mock_model.h"

#include <cmath>
#include <cstring>

#include <gtest/gtest.h>
#include <simdjson.h>

namespace sluice::mock {
namespace {

simdjson::dom::element parse(simdjson::dom::parser& p, const std::string& json) {
  simdjson::dom::element e;
  auto err = p.parse(json).get(e);
  EXPECT_EQ(err, simdjson::SUCCESS) << json;
  return e;
}

std::vector<std::string> split_events(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find("\n\n", pos);
    if (end == std::string::npos) {
      ADD_FAILURE() << "unterminated event";
      break;
    }
    std::string ev = s.substr(pos, end - pos);
    EXPECT_TRUE(ev.starts_with("data: ")) << ev;
    out.push_back(ev.substr(6));
    pos = end + 2;
  }
  return out;
}

TEST(MockModel, TokensAreDeterministicWordsWithASpace) {
  for (int64_t i = 0; i < 200; ++i) {
    std::string_view t = token_text(i);
    ASSERT_GE(t.size(), 2u);
    EXPECT_EQ(t.back(), ' ');
    for (char c : t.substr(0, t.size() - 1)) EXPECT_TRUE(c >= 'a' && c <= 'z') << t;
    EXPECT_EQ(t, token_text(i));
  }
  EXPECT_EQ(token_text(0), token_text(64));  // the vocabulary cycles
  std::string s;
  append_tokens(s, 0, 3);
  EXPECT_EQ(s, std::string(token_text(0)) + std::string(token_text(1)) + std::string(token_text(2)));
}

TEST(MockModel, JsonEscaping) {
  std::string out;
  json_escape_append(out, "a\"b\\c\nd\te\x01" "f\x1f" "g\xc3\xa9h");
  EXPECT_EQ(out, "a\\\"b\\\\c\\nd\\te\\u0001f\\u001fg\xc3\xa9h");
  out.clear();
  json_escape_append(out, "plain-model_1.5");
  EXPECT_EQ(out, "plain-model_1.5");
  out.clear();
  append_int(out, -42);
  append_int(out, 0);
  EXPECT_EQ(out, "-420");
}

TEST(MockModel, PlanTokens) {
  // default
  auto p = plan_tokens(std::nullopt, std::nullopt, 16, 4096);
  EXPECT_EQ(p.tokens, 16);
  EXPECT_EQ(p.finish_reason(), "stop");
  // max_tokens sets the length and ends with "length"
  p = plan_tokens(std::nullopt, 5, 16, 4096);
  EXPECT_EQ(p.tokens, 5);
  EXPECT_EQ(p.finish_reason(), "length");
  // the header wins, but max_tokens still stops it early
  p = plan_tokens(7, 100, 16, 4096);
  EXPECT_EQ(p.tokens, 7);
  EXPECT_EQ(p.finish_reason(), "stop");
  p = plan_tokens(70, 10, 16, 4096);
  EXPECT_EQ(p.tokens, 10);
  EXPECT_EQ(p.finish_reason(), "length");
  // the cap bounds everything
  p = plan_tokens(std::nullopt, 100000, 16, 4096);
  EXPECT_EQ(p.tokens, 4096);
  EXPECT_EQ(p.finish_reason(), "length");
  p = plan_tokens(9000, std::nullopt, 16, 4096);
  EXPECT_EQ(p.tokens, 4096);
  p = plan_tokens(0, std::nullopt, 16, 4096);
  EXPECT_EQ(p.tokens, 0);
}

TEST(MockModel, ChatCompletionJson) {
  ResponseMeta meta{TextApi::kChat, 7, 1700000000, "my \"model\""};
  std::string j = completion_json(meta, TokenPlan{3, false}, Usage{5, 3});
  simdjson::dom::parser p;
  auto e = parse(p, j);
  EXPECT_EQ(std::string_view(e["id"]), "chatcmpl-mock-7");
  EXPECT_EQ(std::string_view(e["object"]), "chat.completion");
  EXPECT_EQ(int64_t(e["created"]), 1700000000);
  EXPECT_EQ(std::string_view(e["model"]), "my \"model\"");
  auto c = e["choices"].at(0);
  EXPECT_EQ(int64_t(c["index"]), 0);
  EXPECT_EQ(std::string_view(c["message"]["role"]), "assistant");
  std::string text;
  append_tokens(text, 0, 3);
  EXPECT_EQ(std::string_view(c["message"]["content"]), text);
  EXPECT_EQ(std::string_view(c["finish_reason"]), "stop");
  EXPECT_EQ(int64_t(e["usage"]["prompt_tokens"]), 5);
  EXPECT_EQ(int64_t(e["usage"]["completion_tokens"]), 3);
  EXPECT_EQ(int64_t(e["usage"]["total_tokens"]), 8);
}

TEST(MockModel, TextCompletionJson) {
  ResponseMeta meta{TextApi::kCompletions, 2, 1, "m"};
  std::string j = completion_json(meta, TokenPlan{4, true}, Usage{1, 4});
  simdjson::dom::parser p;
  auto e = parse(p, j);
  EXPECT_EQ(std::string_view(e["id"]), "cmpl-mock-2");
  EXPECT_EQ(std::string_view(e["object"]), "text_completion");
  std::string text;
  append_tokens(text, 0, 4);
  EXPECT_EQ(std::string_view(e["choices"].at(0)["text"]), text);
  EXPECT_EQ(std::string_view(e["choices"].at(0)["finish_reason"]), "length");
  EXPECT_EQ(int64_t(e["usage"]["total_tokens"]), 5);
}

TEST(MockModel, ChatStreamEvents) {
  for (bool include_usage : {false, true}) {
    ResponseMeta meta{TextApi::kChat, 1, 2, "m\\x"};
    SseEncoder sse(meta, include_usage);
    std::string s;
    sse.append_start(s);
    for (int i = 0; i < 4; ++i) sse.append_token(s, i);
    sse.append_end(s, "stop", Usage{3, 4});
    EXPECT_LE(s.size(), sse.size_hint(4));
    auto events = split_events(s);
    ASSERT_EQ(events.size(), include_usage ? 8u : 7u);
    EXPECT_EQ(events.back(), "[DONE]");
    simdjson::dom::parser p;
    std::string text;
    for (size_t i = 0; i + 1 < events.size(); ++i) {
      auto e = parse(p, events[i]);
      EXPECT_EQ(std::string_view(e["object"]), "chat.completion.chunk");
      EXPECT_EQ(std::string_view(e["id"]), "chatcmpl-mock-1");
      EXPECT_EQ(std::string_view(e["model"]), "m\\x");
      simdjson::dom::element usage;
      bool has_usage = e["usage"].get(usage) == simdjson::SUCCESS;
      EXPECT_EQ(has_usage, include_usage);
      simdjson::dom::array choices = e["choices"];
      if (include_usage && i == events.size() - 2) {
        EXPECT_EQ(choices.size(), 0u);
        EXPECT_EQ(int64_t(usage["prompt_tokens"]), 3);
        EXPECT_EQ(int64_t(usage["completion_tokens"]), 4);
        EXPECT_EQ(int64_t(usage["total_tokens"]), 7);
        continue;
      }
      if (has_usage) {
        EXPECT_TRUE(usage.is_null());
      }
      ASSERT_EQ(choices.size(), 1u);
      auto delta = choices.at(0)["delta"];
      if (i == 0) {
        EXPECT_EQ(std::string_view(delta["role"]), "assistant");
        EXPECT_EQ(std::string_view(delta["content"]), "");
        EXPECT_TRUE(choices.at(0)["finish_reason"].is_null());
      } else if (i <= 4) {
        text += std::string_view(delta["content"]);
        EXPECT_TRUE(choices.at(0)["finish_reason"].is_null());
      } else {
        EXPECT_EQ(simdjson::dom::object(delta).size(), 0u);
        EXPECT_EQ(std::string_view(choices.at(0)["finish_reason"]), "stop");
      }
    }
    std::string expected;
    append_tokens(expected, 0, 4);
    EXPECT_EQ(text, expected);
  }
}

TEST(MockModel, CompletionStreamEvents) {
  ResponseMeta meta{TextApi::kCompletions, 9, 2, "m"};
  SseEncoder sse(meta, true);
  std::string s;
  sse.append_start(s);
  EXPECT_TRUE(s.empty());  // no role chunk for completions
  for (int i = 0; i < 2; ++i) sse.append_token(s, i);
  sse.append_end(s, "length", Usage{1, 2});
  auto events = split_events(s);
  ASSERT_EQ(events.size(), 5u);
  simdjson::dom::parser p;
  auto e0 = parse(p, events[0]);
  EXPECT_EQ(std::string_view(e0["object"]), "text_completion");
  EXPECT_EQ(std::string_view(e0["id"]), "cmpl-mock-9");
  EXPECT_EQ(std::string_view(e0["choices"].at(0)["text"]), token_text(0));
  auto e2 = parse(p, events[2]);
  EXPECT_EQ(std::string_view(e2["choices"].at(0)["text"]), "");
  EXPECT_EQ(std::string_view(e2["choices"].at(0)["finish_reason"]), "length");
  auto e3 = parse(p, events[3]);
  EXPECT_EQ(simdjson::dom::array(e3["choices"]).size(), 0u);
  EXPECT_EQ(int64_t(e3["usage"]["total_tokens"]), 3);
  EXPECT_EQ(events[4], "[DONE]");
}

TEST(MockModel, EmbeddingRequestInputs) {
  std::string b = R"({"model":"e","input":"hello"})";
  auto r = parse_embedding_request(b);
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->input_seeds.size(), 1u);
  EXPECT_FALSE(r->base64);

  b = R"({"input":["a","b","a"],"model":"e","dimensions":4,"encoding_format":"base64"})";
  r = parse_embedding_request(b);
  ASSERT_TRUE(r) << r.status().message();
  ASSERT_EQ(r->input_seeds.size(), 3u);
  EXPECT_NE(r->input_seeds[0], r->input_seeds[1]);
  EXPECT_EQ(r->input_seeds[0], r->input_seeds[2]);
  EXPECT_EQ(r->dimensions, 4);
  EXPECT_TRUE(r->base64);

  b = R"({"input":[1,2,3],"model":"e"})";  // one tokenized input
  r = parse_embedding_request(b);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->input_seeds.size(), 1u);

  b = R"({"input":[[1,2],[3],[1,2]],"model":"e"})";
  r = parse_embedding_request(b);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->input_seeds.size(), 3u);
  EXPECT_EQ(r->input_seeds[0], r->input_seeds[2]);
  EXPECT_NE(r->input_seeds[0], r->input_seeds[1]);

  for (std::string bad : {R"({"model":"e"})", R"({"input":[],"model":"e"})",
                          R"({"input":["a",1],"model":"e"})", R"({"input":5})",
                          R"({"input":"a","dimensions":0})", R"({"input":"a","dimensions":"x"})",
                          R"({"input":"a","encoding_format":"hex"})", R"({"input":[[1,"x"]]})",
                          R"({"input":)", R"([1,2])"}) {
    EXPECT_FALSE(parse_embedding_request(bad)) << bad;
  }
}

TEST(MockModel, EmbeddingValuesAreDeterministicUnitVectors) {
  std::vector<float> a(16), b(16), c(16);
  embedding_values(42, a);
  embedding_values(42, b);
  embedding_values(43, c);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  double norm = 0;
  for (float f : a) norm += double(f) * f;
  EXPECT_NEAR(norm, 1.0, 1e-5);
}

TEST(MockModel, EmbeddingsJson) {
  EmbeddingRequest req;
  req.input_seeds = {1, 2};
  std::string j = embeddings_json("emb\"m", req, 8, 6);
  simdjson::dom::parser p;
  auto e = parse(p, j);
  EXPECT_EQ(std::string_view(e["object"]), "list");
  EXPECT_EQ(std::string_view(e["model"]), "emb\"m");
  simdjson::dom::array data = e["data"];
  ASSERT_EQ(data.size(), 2u);
  std::vector<float> expect(8);
  embedding_values(2, expect);
  auto second = data.at(1);
  EXPECT_EQ(int64_t(second["index"]), 1);
  EXPECT_EQ(std::string_view(second["object"]), "embedding");
  simdjson::dom::array values = second["embedding"];
  ASSERT_EQ(values.size(), 8u);
  for (size_t i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(float(double(values.at(i))), expect[i]);
  EXPECT_EQ(int64_t(e["usage"]["prompt_tokens"]), 6);
  EXPECT_EQ(int64_t(e["usage"]["total_tokens"]), 6);

  req.base64 = true;
  j = embeddings_json("m", req, 8, 6);
  auto eb = parse(p, j);
  std::string_view b64 = eb["data"].at(0)["embedding"];
  EXPECT_EQ(b64.size(), 44u);  // 32 bytes -> 44 base64 chars
  EXPECT_EQ(b64.back(), '=');
}

TEST(MockModel, ModelsJson) {
  std::vector<std::string> models = {"a", "b\"c"};
  std::string j = models_json(models);
  simdjson::dom::parser p;
  auto e = parse(p, j);
  EXPECT_EQ(std::string_view(e["object"]), "list");
  simdjson::dom::array data = e["data"];
  ASSERT_EQ(data.size(), 2u);
  EXPECT_EQ(std::string_view(data.at(1)["id"]), "b\"c");
  EXPECT_EQ(std::string_view(data.at(0)["object"]), "model");
  auto m = parse(p, model_json("x"));
  EXPECT_EQ(std::string_view(m["id"]), "x");
}

http::RequestHead head_with(std::vector<http::Header> headers) {
  http::RequestHead h;
  h.method = "POST";
  h.target = "/v1/chat/completions";
  h.headers = std::move(headers);
  return h;
}

TEST(MockModel, ParseOverrides) {
  auto r = parse_overrides(head_with({{"X-Mock-TTFT-ms", "5"},
                                      {"x-mock-itl-ms", "0"},
                                      {"x-mock-tokens", "100"},
                                      {"x-mock-status", "503"},
                                      {"x-mock-fail-after", "3"},
                                      {"x-mock-stall-after", "4"},
                                      {"x-mock-unknown", "zzz"},
                                      {"content-type", "application/json"}}));
  ASSERT_TRUE(r) << r.status().message();
  EXPECT_EQ(r->ttft_ms, 5);
  EXPECT_EQ(r->itl_ms, 0);
  EXPECT_EQ(r->tokens, 100);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->fail_after, 3);
  EXPECT_EQ(r->stall_after, 4);

  auto none = parse_overrides(head_with({}));
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->ttft_ms || none->itl_ms || none->tokens || none->status ||
               none->fail_after || none->stall_after);

  for (auto [name, value] : std::vector<std::pair<std::string_view, std::string_view>>{
           {"x-mock-tokens", "-1"},
           {"x-mock-tokens", "abc"},
           {"x-mock-tokens", "12x"},
           {"x-mock-tokens", ""},
           {"x-mock-tokens", "99999999999999999999999"},
           {"x-mock-status", "200"},
           {"x-mock-status", "600"},
           {"x-mock-ttft-ms", "3600001"},
           {"x-mock-itl-ms", "+5"},
           {"x-mock-fail-after", "1.5"}}) {
    auto bad = parse_overrides(head_with({{name, value}}));
    ASSERT_FALSE(bad) << name << ": " << value;
    EXPECT_EQ(bad.status().code(), Errc::kInvalid);
    EXPECT_NE(bad.status().message().find(name), std::string::npos);
  }
}

}  // namespace
}  // namespace sluice::mock
