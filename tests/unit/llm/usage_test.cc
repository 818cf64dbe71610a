#include "llm/usage.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::llm {

// For gtest's messages; found by argument-dependent lookup.
std::ostream& operator<<(std::ostream& os, const Usage& u) {
  return os << "{" << u.prompt_tokens << "," << u.completion_tokens << "," << u.total_tokens << "}";
}

namespace {

struct UsageCase {
  const char* name;
  std::string json;
  std::optional<Usage> want;
};

const std::vector<UsageCase>& usage_cases() {
  static const std::vector<UsageCase> cases = {
      {"openai_chat",
       R"({"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant",)"
       R"("content":"Hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,)"
       R"("total_tokens":15,"prompt_tokens_details":{"cached_tokens":0}}})",
       Usage{10, 5, 15}},
      {"usage_first", R"({"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3},"choices":[]})",
       Usage{1, 2, 3}},
      {"total_missing", R"({"usage":{"prompt_tokens":7,"completion_tokens":3}})", Usage{7, 3, 10}},
      {"prompt_missing", R"({"usage":{"completion_tokens":3,"total_tokens":10}})", Usage{7, 3, 10}},
      {"embeddings", R"({"object":"list","data":[{"embedding":[0.1,0.2]}],"usage":{"prompt_tokens":8,"total_tokens":8}})",
       Usage{8, 0, 8}},
      {"anthropic", R"({"type":"message","content":[{"type":"text","text":"Hi"}],"usage":{"input_tokens":10,"output_tokens":20}})",
       Usage{10, 20, 30}},
      {"anthropic_cache",
       R"({"usage":{"input_tokens":10,"cache_creation_input_tokens":100,"cache_read_input_tokens":1000,"output_tokens":5}})",
       Usage{1110, 5, 1115}},
      {"anthropic_cache_null", R"({"usage":{"input_tokens":10,"cache_read_input_tokens":null,"output_tokens":5}})",
       Usage{10, 5, 15}},
      {"responses_api", R"({"object":"response","usage":{"input_tokens":4,"output_tokens":6,"total_tokens":10}})",
       Usage{4, 6, 10}},
      {"zeros", R"({"usage":{"prompt_tokens":0,"completion_tokens":0,"total_tokens":0}})", Usage{0, 0, 0}},
      {"duplicate_last_wins",
       R"({"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2},"usage":{"prompt_tokens":5,"completion_tokens":5,"total_tokens":10}})",
       Usage{5, 5, 10}},
      {"duplicate_then_null", R"({"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2},"usage":null})",
       std::nullopt},
      {"absent", R"({"id":"x","choices":[]})", std::nullopt},
      {"null", R"({"usage":null})", std::nullopt},
      {"empty_object", R"({"usage":{}})", std::nullopt},
      {"array", R"({"usage":[1,2,3]})", std::nullopt},
      {"string", R"({"usage":"lots"})", std::nullopt},
      {"only_prompt", R"({"usage":{"prompt_tokens":3}})", std::nullopt},
      {"negative", R"({"usage":{"prompt_tokens":-1,"completion_tokens":2,"total_tokens":1}})", std::nullopt},
      {"fraction", R"({"usage":{"prompt_tokens":1.5,"completion_tokens":2,"total_tokens":3}})", std::nullopt},
      {"string_count", R"({"usage":{"prompt_tokens":"1","completion_tokens":2,"total_tokens":3}})", std::nullopt},
      {"huge", R"({"usage":{"prompt_tokens":99999999999999999999,"completion_tokens":2,"total_tokens":3}})",
       std::nullopt},
      {"over_limit", R"({"usage":{"prompt_tokens":1099511627777,"completion_tokens":2}})", std::nullopt},
      {"inconsistent_total_cannot_derive", R"({"usage":{"prompt_tokens":10,"total_tokens":5}})", std::nullopt},
      {"nested_not_top_level", R"({"choices":[{"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}]})",
       std::nullopt},
      {"not_json", "usage: 5", std::nullopt},
      {"empty", "", std::nullopt},
      {"top_array", R"([{"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}])", std::nullopt},
      {"truncated", R"({"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2})", std::nullopt},
      {"truncated_inside", R"({"usage":{"prompt_tokens":1,"completion_tok)", std::nullopt},
      // Skipped values are checked for structure only: bracket kinds are not matched.
      {"mismatched_brackets_elsewhere", R"({"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2},"x":[}})",
       Usage{1, 1, 2}},
      {"unbalanced_after", R"({"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2},"x":[1,2})", std::nullopt},
      {"deep_junk", R"({"x":)" + std::string(3000, '[') + std::string(3000, ']') +
                        R"(,"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})",
       Usage{1, 1, 2}},
  };
  return cases;
}

class ExtractUsage : public ::testing::TestWithParam<UsageCase> {};

TEST_P(ExtractUsage, Case) {
  const UsageCase& c = GetParam();
  EXPECT_EQ(extract_usage(c.json), c.want);
}

INSTANTIATE_TEST_SUITE_P(Cases, ExtractUsage, ::testing::ValuesIn(usage_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(ExtractUsageTest, EveryTruncationIsSafe) {
  const std::string body =
      R"({"id":"c","choices":[{"message":{"content":"hello"}}],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}})";
  for (size_t n = 0; n < body.size(); ++n) {
    EXPECT_EQ(extract_usage(std::string_view(body).substr(0, n)), std::nullopt) << n;
  }
  EXPECT_EQ(extract_usage(body), (Usage{3, 4, 7}));
}

TEST(ExtractUsageTest, ViewIntoLargerBufferDoesNotReadPastIt) {
  // The view ends mid-buffer; what follows must not be parsed.
  const std::string buf = R"({"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}{"usage":null})";
  EXPECT_EQ(extract_usage(std::string_view(buf).substr(0, buf.find("}{") + 1)), (Usage{1, 1, 2}));
}

// ---- inspect_stream_chunk -----------------------------------------------------

struct ChunkCase {
  const char* name;
  std::string data;
  std::optional<Usage> usage;
  bool usage_only = false;
  int64_t pieces = 0;
};

const std::vector<ChunkCase>& chunk_cases() {
  static const std::vector<ChunkCase> cases = {
      {"content",
       R"({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,)"
       R"("delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]})",
       std::nullopt, false, 1},
      {"content_usage_null",
       R"({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":" world"},"finish_reason":null}],"usage":null})",
       std::nullopt, false, 1},
      {"role_only", R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})", std::nullopt, false, 0},
      {"finish", R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})", std::nullopt, false, 0},
      {"escaped_content", R"({"choices":[{"delta":{"content":"\n"}}]})", std::nullopt, false, 1},
      {"two_choices", R"({"choices":[{"index":0,"delta":{"content":"a"}},{"index":1,"delta":{"content":"b"}}]})",
       std::nullopt, false, 2},
      {"reasoning", R"({"choices":[{"delta":{"reasoning_content":"hmm","content":null}}]})", std::nullopt, false, 1},
      {"tool_call", R"({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\""}}]}}]})",
       std::nullopt, false, 1},
      {"empty_tool_calls", R"({"choices":[{"delta":{"tool_calls":[ ]}}]})", std::nullopt, false, 0},
      {"completions_text", R"({"object":"text_completion","choices":[{"text":"abc","index":0}]})", std::nullopt, false,
       1},
      {"usage_only",
       R"({"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}})",
       Usage{9, 12, 21}, true, 0},
      {"usage_only_spaced", R"({"choices":[ ],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}})",
       Usage{1, 2, 3}, true, 0},
      {"usage_before_choices", R"({"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3},"choices":[]})",
       Usage{1, 2, 3}, true, 0},
      {"continuous_usage",
       R"({"choices":[{"delta":{"content":"x"}}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}})",
       Usage{5, 1, 6}, false, 1},
      {"usage_without_choices", R"({"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}})",
       Usage{5, 1, 6}, false, 0},
      {"empty_choices_null_usage", R"({"choices":[],"usage":null})", std::nullopt, false, 0},
      {"anthropic_message_start",
       R"({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],)"
       R"("model":"claude","usage":{"input_tokens":25,"output_tokens":1}}})",
       Usage{25, 1, 26}, false, 0},
      {"anthropic_text_delta", R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}})",
       std::nullopt, false, 1},
      {"anthropic_thinking_delta",
       R"({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"so"}})", std::nullopt,
       false, 1},
      {"anthropic_json_delta",
       R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a"}})",
       std::nullopt, false, 1},
      {"anthropic_block_start", R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})",
       std::nullopt, false, 0},
      {"anthropic_message_delta",
       R"({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}})",
       Usage{-1, 15, -1}, false, 0},
      {"anthropic_ping", R"({"type": "ping"})", std::nullopt, false, 0},
      {"responses_delta", R"({"type":"response.output_text.delta","item_id":"i","delta":"Hi"})", std::nullopt, false,
       1},
      {"responses_completed",
       R"({"type":"response.completed","response":{"id":"r","usage":{"input_tokens":3,"output_tokens":4,"total_tokens":7}}})",
       Usage{3, 4, 7}, false, 0},
      {"done", "[DONE]", std::nullopt, false, 0},
      {"empty", "", std::nullopt, false, 0},
      {"garbage", "\x01\x02{", std::nullopt, false, 0},
      {"array", R"([{"choices":[{"delta":{"content":"x"}}]}])", std::nullopt, false, 0},
      {"bad_usage", R"({"choices":[],"usage":{"prompt_tokens":-4}})", std::nullopt, false, 0},
      {"truncated_after_content", R"({"choices":[{"delta":{"content":"x"}},)", std::nullopt, false, 0},
      {"choices_not_array", R"({"choices":{"delta":{"content":"x"}}})", std::nullopt, false, 0},
      {"choice_not_object", R"({"choices":["x",1,null]})", std::nullopt, false, 0},
  };
  return cases;
}

class StreamChunk : public ::testing::TestWithParam<ChunkCase> {};

TEST_P(StreamChunk, Case) {
  const ChunkCase& c = GetParam();
  const StreamChunkFacts f = inspect_stream_chunk(c.data);
  EXPECT_EQ(f.usage, c.usage);
  EXPECT_EQ(f.usage_only, c.usage_only);
  EXPECT_EQ(f.content_pieces, c.pieces);
}

INSTANTIATE_TEST_SUITE_P(Cases, StreamChunk, ::testing::ValuesIn(chunk_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(StreamChunkTest, EveryTruncationIsSafe) {
  const std::string data =
      R"({"choices":[{"index":0,"delta":{"content":"Hi"}}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}})";
  for (size_t n = 0; n <= data.size(); ++n) {
    const StreamChunkFacts f = inspect_stream_chunk(std::string_view(data).substr(0, n));
    EXPECT_LE(f.content_pieces, 1) << n;
    if (f.usage) {
      EXPECT_EQ(*f.usage, (Usage{1, 2, 3})) << n;
    }
  }
}

TEST(AccumulateUsageTest, AnthropicStream) {
  Usage u;
  accumulate_usage(u, Usage{25, 1, 26});   // message_start
  accumulate_usage(u, Usage{-1, 15, -1});  // message_delta
  EXPECT_EQ(u, (Usage{25, 15, 40}));
  EXPECT_TRUE(u.valid());
}

TEST(AccumulateUsageTest, LaterCompleteUsageWins) {
  Usage u{5, 1, 6};
  accumulate_usage(u, Usage{5, 9, 20});
  EXPECT_EQ(u, (Usage{5, 9, 20}));
}

TEST(AccumulateUsageTest, PartialStaysInvalid) {
  Usage u;
  accumulate_usage(u, Usage{-1, 15, -1});
  EXPECT_FALSE(u.valid());
  EXPECT_EQ(u.completion_tokens, 15);
}

}  // namespace
}  // namespace sluice::llm
