#include "mock/mock_handler.h"

#include <chrono>
#include <exception>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <gtest/gtest.h>
#include <simdjson.h>

#include "fake_exchange.h"
#include "mock/mock_model.h"

namespace sluice::mock {
namespace {

namespace asio = boost::asio;
using sluice::testing::FakeExchange;
using Headers = std::vector<std::pair<std::string, std::string>>;

constexpr const char* kChat = "/v1/chat/completions";
constexpr const char* kCompletions = "/v1/completions";

std::string chat_body(std::string_view model = "mock-1", std::string_view extra = "") {
  std::string b = R"({"model":")";
  b += model;
  b += R"(","messages":[{"role":"user","content":"Hello there, how are you today?"}])";
  b += extra;
  b += '}';
  return b;
}

std::string completion_body(std::string_view extra = "") {
  std::string b = R"({"model":"mock-1","prompt":"Once upon a time")";
  b += extra;
  b += '}';
  return b;
}

// One handler call run to completion on its own io_context.
struct Harness {
  asio::io_context ctx;
  MockOptions opts;
  MockStats stats;
  std::optional<FakeExchange> ex;
  std::optional<asio::steady_timer> abort_timer;
  bool done = false;
  std::exception_ptr error;
  double elapsed_ms = 0;

  FakeExchange& make(std::string method, std::string target, Headers headers = {},
                     std::string body = {}) {
    ex.emplace(ctx, std::move(method), std::move(target), std::move(headers), std::move(body));
    return *ex;
  }
  // The client leaves `ms` after the handler starts.
  void abort_after(int ms) {
    abort_timer.emplace(ctx, std::chrono::milliseconds(ms));
    abort_timer->async_wait([this](boost::system::error_code ec) {
      if (!ec) ex->abort();
    });
  }
  FakeExchange& go() {
    auto t0 = std::chrono::steady_clock::now();
    asio::co_spawn(ctx, handle(*ex, opts, stats), [this](std::exception_ptr e) {
      done = true;
      error = e;
      if (abort_timer) abort_timer->cancel();
    });
    ctx.run();
    elapsed_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_TRUE(done);
    EXPECT_FALSE(error);
    EXPECT_EQ(stats.requests, 1u);
    return *ex;
  }
  FakeExchange& go(std::string method, std::string target, Headers headers = {},
                   std::string body = {}) {
    make(std::move(method), std::move(target), std::move(headers), std::move(body));
    return go();
  }
};

simdjson::dom::element parse(simdjson::dom::parser& p, const std::string& json) {
  simdjson::dom::element e;
  auto err = p.parse(json).get(e);
  EXPECT_EQ(err, simdjson::SUCCESS) << json;
  return e;
}

void expect_error(FakeExchange& ex, int status, std::string_view code) {
  EXPECT_EQ(ex.status_sent(), status);
  EXPECT_TRUE(ex.finished);
  EXPECT_EQ(ex.header("content-type"), "application/json");
  std::string body = ex.body();
  EXPECT_EQ(ex.resp_content_length, body.size());
  simdjson::dom::parser p;
  auto e = parse(p, body);
  EXPECT_EQ(std::string_view(e["error"]["code"]), code) << body;
  EXPECT_FALSE(std::string_view(e["error"]["message"]).empty());
  EXPECT_FALSE(std::string_view(e["error"]["type"]).empty());
}

// Checks the framing of a finished non-streamed 200 reply; returns its body.
std::string json_reply(FakeExchange& ex) {
  EXPECT_EQ(ex.status_sent(), 200);
  EXPECT_TRUE(ex.finished);
  EXPECT_FALSE(ex.reset_called);
  std::string body = ex.body();
  EXPECT_EQ(ex.resp_content_length, body.size());
  EXPECT_EQ(ex.header("content-type"), "application/json");
  return body;
}

std::string expected_text(int64_t n) {
  std::string s;
  append_tokens(s, 0, n);
  return s;
}

// A streamed answer taken apart; every JSON event is checked for validity.
struct Stream {
  int events = 0;          // JSON events
  int role_events = 0;     // chat: delta.role
  int content_events = 0;  // events carrying one token
  int usage_null = 0;      // events with "usage":null
  std::string text;
  std::string finish_reason;
  int64_t prompt = -1, completion = -1, total = -1;  // from the usage-only chunk
  bool usage_chunk_last = false;  // the usage chunk is the last JSON event
  bool done_last = false;
  bool malformed = false;
  std::string model;
};

Stream read_stream(const FakeExchange& ex, bool chat) {
  Stream s;
  simdjson::dom::parser p;
  std::vector<std::string> events = ex.events();
  for (size_t i = 0; i < events.size(); ++i) {
    const std::string& ev = events[i];
    if (ev == "[DONE]") {
      s.done_last = i + 1 == events.size();
      continue;
    }
    simdjson::dom::element e;
    if (ev.empty() || p.parse(ev).get(e) != simdjson::SUCCESS) {
      ADD_FAILURE() << "malformed event: " << ev;
      s.malformed = true;
      continue;
    }
    ++s.events;
    s.usage_chunk_last = false;
    EXPECT_EQ(std::string_view(e["object"]), chat ? "chat.completion.chunk" : "text_completion");
    s.model = std::string(std::string_view(e["model"]));
    simdjson::dom::element usage;
    bool has_usage = e["usage"].get(usage) == simdjson::SUCCESS;
    simdjson::dom::array choices = e["choices"];
    if (choices.size() == 0) {
      EXPECT_TRUE(has_usage && !usage.is_null());
      s.prompt = usage["prompt_tokens"];
      s.completion = usage["completion_tokens"];
      s.total = usage["total_tokens"];
      s.usage_chunk_last = true;
      continue;
    }
    if (has_usage && usage.is_null()) ++s.usage_null;
    auto c = choices.at(0);
    std::string_view piece;
    if (chat) {
      simdjson::dom::element x;
      if (c["delta"]["role"].get(x) == simdjson::SUCCESS) ++s.role_events;
      if (c["delta"]["content"].get(x) == simdjson::SUCCESS) piece = x;
    } else {
      piece = c["text"];
    }
    if (!piece.empty()) {
      ++s.content_events;
      s.text += piece;
    }
    simdjson::dom::element fr = c["finish_reason"];
    if (!fr.is_null()) s.finish_reason = std::string(std::string_view(fr));
  }
  return s;
}

void expect_sse_head(const FakeExchange& ex) {
  EXPECT_EQ(ex.status_sent(), 200);
  EXPECT_EQ(ex.header("content-type"), "text/event-stream");
  EXPECT_EQ(ex.header("cache-control"), "no-cache");
  EXPECT_FALSE(ex.resp_content_length.has_value());
}

// ---- simple routes ----

TEST(MockHandler, Health) {
  Harness r;
  auto& ex = r.go("GET", "/health");
  EXPECT_EQ(json_reply(ex), "{\"status\":\"ok\"}");
  EXPECT_EQ(ex.body_reads, 0);
}

TEST(MockHandler, ModelsListsConfiguredNames) {
  Harness r;
  r.opts.models = {"alpha", "beta"};
  auto& ex = r.go("GET", "/v1/models");
  std::string body = json_reply(ex);
  simdjson::dom::parser p;
  auto e = parse(p, body);
  EXPECT_EQ(std::string_view(e["object"]), "list");
  simdjson::dom::array data = e["data"];
  ASSERT_EQ(data.size(), 2u);
  EXPECT_EQ(std::string_view(data.at(0)["id"]), "alpha");
  EXPECT_EQ(std::string_view(data.at(1)["id"]), "beta");
}

TEST(MockHandler, ModelsDefaultAndSingleModel) {
  {
    Harness r;
    auto& ex = r.go("GET", "/v1/models?limit=5");
    simdjson::dom::parser p;
    std::string body = json_reply(ex);
    EXPECT_EQ(std::string_view(parse(p, body)["data"].at(0)["id"]), "mock-1");
  }
  {
    Harness r;
    auto& ex = r.go("GET", "/v1/models/anything-goes");
    simdjson::dom::parser p;
    std::string body = json_reply(ex);
    EXPECT_EQ(std::string_view(parse(p, body)["id"]), "anything-goes");
  }
}

TEST(MockHandler, UnknownPathIs404) {
  Harness r;
  auto& ex = r.go("POST", "/v1/nope", {}, "{}");
  expect_error(ex, 404, "not_found");
  simdjson::dom::parser p;
  std::string body = ex.body();
  EXPECT_EQ(std::string_view(parse(p, body)["error"]["type"]), "invalid_request_error");
  EXPECT_EQ(r.stats.errors, 1u);
}

TEST(MockHandler, WrongMethodIs405) {
  {
    Harness r;
    auto& ex = r.go("GET", kChat);
    expect_error(ex, 405, "method_not_allowed");
    EXPECT_EQ(ex.header("allow"), "POST");
  }
  {
    Harness r;
    auto& ex = r.go("POST", "/v1/models", {}, "{}");
    expect_error(ex, 405, "method_not_allowed");
    EXPECT_EQ(ex.header("allow"), "GET");
  }
}

TEST(MockHandler, InvalidJsonIs400) {
  Harness r;
  auto& ex = r.go("POST", kChat, {}, "{\"model\": \"x\", ");
  expect_error(ex, 400, "invalid_request");
}

TEST(MockHandler, MissingModelIs400) {
  Harness r;
  auto& ex = r.go("POST", kChat, {}, R"({"messages":[{"role":"user","content":"hi"}]})");
  EXPECT_EQ(ex.status_sent(), 400);
  EXPECT_TRUE(ex.finished);
}

TEST(MockHandler, BodyTooLargeIs413) {
  Harness r;
  r.opts.max_body_bytes = 10;
  auto& ex = r.go("POST", kChat, {}, chat_body());
  expect_error(ex, 413, "request_too_large");
}

TEST(MockHandler, InvalidMockHeaderIs400) {
  Harness r;
  auto& ex = r.go("POST", kChat, {{"x-mock-tokens", "lots"}}, chat_body());
  expect_error(ex, 400, "invalid_header");
  EXPECT_NE(ex.body().find("x-mock-tokens"), std::string::npos);
}

// ---- non-streamed generation ----

TEST(MockHandler, ChatCompletion) {
  Harness r;
  std::string req = chat_body("any-model-name");
  auto& ex = r.go("POST", kChat, {{"X-Request-Id", "abc-123"}}, req);
  std::string body = json_reply(ex);
  EXPECT_EQ(ex.header("x-request-id"), "abc-123");
  simdjson::dom::parser p;
  auto e = parse(p, body);
  EXPECT_TRUE(std::string_view(e["id"]).starts_with("chatcmpl-mock-"));
  EXPECT_EQ(std::string_view(e["object"]), "chat.completion");
  EXPECT_EQ(std::string_view(e["model"]), "any-model-name");
  EXPECT_GT(int64_t(e["created"]), 1600000000);
  auto c = e["choices"].at(0);
  EXPECT_EQ(std::string_view(c["message"]["role"]), "assistant");
  EXPECT_EQ(std::string_view(c["message"]["content"]), expected_text(16));
  EXPECT_EQ(std::string_view(c["finish_reason"]), "stop");
  int64_t prompt = e["usage"]["prompt_tokens"];
  EXPECT_GE(prompt, 1);
  EXPECT_EQ(int64_t(e["usage"]["completion_tokens"]), 16);
  EXPECT_EQ(int64_t(e["usage"]["total_tokens"]), prompt + 16);
  EXPECT_EQ(r.stats.tokens, 16u);
  EXPECT_EQ(r.stats.errors, 0u);
}

TEST(MockHandler, MaxTokensAndHeaderSetTheLength) {
  {
    Harness r;
    auto& ex = r.go("POST", kChat, {}, chat_body("m", R"(,"max_tokens":5)"));
    simdjson::dom::parser p;
    std::string body = json_reply(ex);
    auto c = parse(p, body)["choices"].at(0);
    EXPECT_EQ(std::string_view(c["message"]["content"]), expected_text(5));
    EXPECT_EQ(std::string_view(c["finish_reason"]), "length");
  }
  {
    Harness r;
    auto& ex = r.go("POST", kChat, {{"x-mock-tokens", "3"}}, chat_body("m", R"(,"max_tokens":50)"));
    simdjson::dom::parser p;
    std::string body = json_reply(ex);
    auto e = parse(p, body);
    EXPECT_EQ(std::string_view(e["choices"].at(0)["message"]["content"]), expected_text(3));
    EXPECT_EQ(std::string_view(e["choices"].at(0)["finish_reason"]), "stop");
    EXPECT_EQ(int64_t(e["usage"]["completion_tokens"]), 3);
  }
  {
    Harness r;
    r.opts.max_tokens_cap = 20;
    auto& ex = r.go("POST", kChat, {}, chat_body("m", R"(,"max_tokens":100000)"));
    simdjson::dom::parser p;
    std::string body = json_reply(ex);
    EXPECT_EQ(int64_t(parse(p, body)["usage"]["completion_tokens"]), 20);
  }
}

TEST(MockHandler, TextCompletion) {
  Harness r;
  r.opts.default_tokens = 4;
  auto& ex = r.go("POST", kCompletions, {}, completion_body());
  simdjson::dom::parser p;
  std::string body = json_reply(ex);
  auto e = parse(p, body);
  EXPECT_TRUE(std::string_view(e["id"]).starts_with("cmpl-mock-"));
  EXPECT_EQ(std::string_view(e["object"]), "text_completion");
  EXPECT_EQ(std::string_view(e["choices"].at(0)["text"]), expected_text(4));
  EXPECT_EQ(int64_t(e["usage"]["completion_tokens"]), 4);
}

TEST(MockHandler, Embeddings) {
  Harness r;
  std::string req = R"({"model":"emb","input":["one","two","three"]})";
  auto& ex = r.go("POST", "/v1/embeddings", {}, req);
  simdjson::dom::parser p;
  std::string body = json_reply(ex);
  auto e = parse(p, body);
  EXPECT_EQ(std::string_view(e["object"]), "list");
  EXPECT_EQ(std::string_view(e["model"]), "emb");
  simdjson::dom::array data = e["data"];
  ASSERT_EQ(data.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(int64_t(data.at(i)["index"]), int64_t(i));
    EXPECT_EQ(simdjson::dom::array(data.at(i)["embedding"]).size(), 8u);
  }
  int64_t prompt = e["usage"]["prompt_tokens"];
  EXPECT_GE(prompt, 1);
  EXPECT_EQ(int64_t(e["usage"]["total_tokens"]), prompt);
}

TEST(MockHandler, EmbeddingsAreDeterministicAndHonourDimensions) {
  std::string req = R"({"model":"emb","input":"same text","dimensions":3})";
  Harness a, b;
  std::string body_a = json_reply(a.go("POST", "/v1/embeddings", {}, req));
  std::string body_b = json_reply(b.go("POST", "/v1/embeddings", {}, req));
  EXPECT_EQ(body_a, body_b);
  simdjson::dom::parser p;
  EXPECT_EQ(simdjson::dom::array(parse(p, body_a)["data"].at(0)["embedding"]).size(), 3u);

  Harness bad;
  auto& ex = bad.go("POST", "/v1/embeddings", {}, R"({"model":"emb","input":[]})");
  expect_error(ex, 400, "invalid_value");
}

TEST(MockHandler, ModelNameIsEscapedEverywhere) {
  // JSON-escaped in the request: m"o\d<TAB>el
  const std::string model_json = R"(m\"o\\d\tel)";
  const std::string model = "m\"o\\d\tel";
  {
    Harness r;
    auto& ex = r.go("POST", kChat, {}, chat_body(model_json));
    simdjson::dom::parser p;
    std::string body = json_reply(ex);
    EXPECT_EQ(std::string_view(parse(p, body)["model"]), model);
  }
  {
    Harness r;
    auto& ex = r.go("POST", kChat, {},
                    chat_body(model_json, R"(,"stream":true,"stream_options":{"include_usage":true})"));
    Stream s = read_stream(ex, true);
    EXPECT_FALSE(s.malformed);
    EXPECT_EQ(s.model, model);
    EXPECT_EQ(s.content_events, 16);
  }
  {
    Harness r;
    auto& ex = r.go("POST", "/v1/embeddings", {},
                    R"({"model":")" + model_json + R"(","input":"x"})");
    simdjson::dom::parser p;
    std::string body = json_reply(ex);
    EXPECT_EQ(std::string_view(parse(p, body)["model"]), model);
  }
}

// ---- streaming ----

TEST(MockHandler, ChatStreamOneWrite) {
  Harness r;
  std::string req = chat_body("m", R"(,"stream":true)");
  auto& ex = r.go("POST", kChat, {{"x-request-id", "r1"}}, req);
  expect_sse_head(ex);
  EXPECT_EQ(ex.header("x-request-id"), "r1");
  EXPECT_TRUE(ex.finished);
  EXPECT_FALSE(ex.reset_called);
  EXPECT_EQ(ex.writes.size(), 1u);  // unpaced: the whole stream at once
  Stream s = read_stream(ex, true);
  EXPECT_FALSE(s.malformed);
  EXPECT_EQ(s.role_events, 1);
  EXPECT_EQ(s.content_events, 16);
  EXPECT_EQ(s.events, 16 + 2);  // role chunk + tokens + finish chunk
  EXPECT_EQ(s.text, expected_text(16));
  EXPECT_EQ(s.finish_reason, "stop");
  EXPECT_EQ(s.usage_null, 0);  // no usage fields without include_usage
  EXPECT_EQ(s.prompt, -1);
  EXPECT_TRUE(s.done_last);
  EXPECT_EQ(r.stats.streams, 1u);
  EXPECT_EQ(r.stats.tokens, 16u);
}

TEST(MockHandler, ChatStreamIncludeUsage) {
  Harness r;
  std::string req =
      chat_body("m", R"(,"stream":true,"max_tokens":7,"stream_options":{"include_usage":true})");
  auto& ex = r.go("POST", kChat, {}, req);
  expect_sse_head(ex);
  Stream s = read_stream(ex, true);
  EXPECT_FALSE(s.malformed);
  EXPECT_EQ(s.content_events, 7);
  EXPECT_EQ(s.events, 7 + 3);      // role + tokens + finish + usage
  EXPECT_EQ(s.usage_null, 7 + 2);  // every chunk but the usage one says "usage":null
  EXPECT_EQ(s.finish_reason, "length");
  EXPECT_TRUE(s.usage_chunk_last);
  EXPECT_EQ(s.completion, 7);
  EXPECT_GE(s.prompt, 1);
  EXPECT_EQ(s.total, s.prompt + 7);
  EXPECT_TRUE(s.done_last);

  // The usage agrees with a non-streamed answer to the same request.
  Harness plain;
  auto& ex2 = plain.go("POST", kChat, {}, chat_body("m", R"(,"max_tokens":7)"));
  simdjson::dom::parser p;
  std::string body = json_reply(ex2);
  EXPECT_EQ(int64_t(parse(p, body)["usage"]["prompt_tokens"]), s.prompt);
}

TEST(MockHandler, CompletionStream) {
  Harness r;
  auto& ex = r.go("POST", kCompletions, {{"x-mock-tokens", "5"}},
                  completion_body(R"(,"stream":true,"stream_options":{"include_usage":true})"));
  expect_sse_head(ex);
  Stream s = read_stream(ex, false);
  EXPECT_FALSE(s.malformed);
  EXPECT_EQ(s.content_events, 5);
  EXPECT_EQ(s.events, 5 + 2);  // tokens + finish + usage (no role chunk)
  EXPECT_EQ(s.text, expected_text(5));
  EXPECT_EQ(s.finish_reason, "stop");
  EXPECT_EQ(s.completion, 5);
  EXPECT_TRUE(s.done_last);
}

TEST(MockHandler, ZeroTokenStream) {
  Harness r;
  auto& ex = r.go("POST", kChat, {{"x-mock-tokens", "0"}}, chat_body("m", R"(,"stream":true)"));
  Stream s = read_stream(ex, true);
  EXPECT_EQ(s.content_events, 0);
  EXPECT_EQ(s.events, 2);
  EXPECT_TRUE(s.done_last);
  EXPECT_TRUE(ex.finished);
}

// ---- pacing ----

TEST(MockHandler, PacedStreamWritesOneTokenPerWrite) {
  Harness r;
  r.opts.itl_ms = 8;
  auto& ex = r.go("POST", kChat, {{"x-mock-tokens", "6"}, {"x-mock-ttft-ms", "10"}},
                  chat_body("m", R"(,"stream":true,"stream_options":{"include_usage":true})"));
  EXPECT_TRUE(ex.finished);
  ASSERT_EQ(ex.writes.size(), 6u);
  // ttft before the first token, then itl between tokens.
  EXPECT_GE(ex.ms_since_created(ex.write_times[0]), 9.5);
  for (size_t i = 1; i < ex.write_times.size(); ++i) {
    double gap = std::chrono::duration<double, std::milli>(ex.write_times[i] - ex.write_times[i - 1])
                     .count();
    EXPECT_GE(gap, 7.5) << i;
  }
  EXPECT_GE(r.elapsed_ms, 10 + 5 * 8 - 1);
  EXPECT_LT(r.elapsed_ms, 1000);
  Stream s = read_stream(ex, true);
  EXPECT_EQ(s.content_events, 6);
  EXPECT_EQ(s.completion, 6);
  EXPECT_TRUE(s.done_last);
}

TEST(MockHandler, NonStreamedAnswerWaitsForTheWholeGeneration) {
  Harness r;
  auto& ex = r.go("POST", kChat, {{"x-mock-tokens", "4"}, {"x-mock-ttft-ms", "10"},
                                  {"x-mock-itl-ms", "5"}},
                  chat_body());
  json_reply(ex);
  EXPECT_GE(ex.ms_since_created(ex.head_time), 10 + 3 * 5 - 1);
  EXPECT_LT(r.elapsed_ms, 1000);
}

TEST(MockHandler, ClientLeavingStopsAPacedStream) {
  Harness r;
  r.make("POST", kChat, {{"x-mock-tokens", "1000"}, {"x-mock-itl-ms", "5"}},
         chat_body("m", R"(,"stream":true)"));
  r.abort_after(30);
  auto& ex = r.go();
  EXPECT_LT(r.elapsed_ms, 1000);
  EXPECT_FALSE(ex.finished);
  EXPECT_GT(ex.writes.size(), 1u);
  EXPECT_LT(ex.writes.size(), 20u);
  EXPECT_EQ(r.stats.client_aborts, 1u);
  EXPECT_EQ(r.stats.tokens, ex.writes.size());
}

// ---- faults ----

TEST(MockHandler, InjectedStatus) {
  {
    Harness r;
    auto& ex = r.go("POST", kChat, {{"x-mock-status", "503"}}, chat_body());
    expect_error(ex, 503, "mock_injected");
    EXPECT_FALSE(ex.has_header("retry-after"));
    EXPECT_EQ(ex.body_reads, 1);  // the body is drained first
  }
  {
    Harness r;
    auto& ex = r.go("POST", kChat, {{"x-mock-status", "429"}, {"x-mock-ttft-ms", "5000"}},
                    chat_body("m", R"(,"stream":true)"));
    expect_error(ex, 429, "mock_injected");
    EXPECT_EQ(ex.header("retry-after"), "1");
    EXPECT_LT(r.elapsed_ms, 1000);  // at once, ignoring the delay
    simdjson::dom::parser p;
    std::string body = ex.body();
    EXPECT_EQ(std::string_view(parse(p, body)["error"]["type"]), "rate_limit_error");
    EXPECT_EQ(r.stats.errors, 1u);
  }
  {
    Harness r;
    auto& ex = r.go("POST", kChat, {{"x-mock-status", "200"}}, chat_body());
    expect_error(ex, 400, "invalid_header");
  }
}

TEST(MockHandler, FailAfterResetsTheStream) {
  for (int itl : {0, 2}) {
    Harness r;
    r.opts.itl_ms = itl;
    auto& ex = r.go("POST", kChat, {{"x-mock-fail-after", "3"}},
                    chat_body("m", R"(,"stream":true,"stream_options":{"include_usage":true})"));
    expect_sse_head(ex);
    EXPECT_TRUE(ex.reset_called);
    EXPECT_FALSE(ex.finished);
    Stream s = read_stream(ex, true);
    EXPECT_FALSE(s.malformed);
    EXPECT_EQ(s.content_events, 3) << "itl " << itl;
    EXPECT_EQ(s.finish_reason, "");
    EXPECT_FALSE(s.done_last);
    EXPECT_EQ(s.prompt, -1);
    EXPECT_EQ(r.stats.resets, 1u);
    EXPECT_EQ(r.stats.tokens, 3u);
  }
}

TEST(MockHandler, FailAfterAllTokensLosesOnlyTheEnd) {
  Harness r;
  auto& ex = r.go("POST", kChat, {{"x-mock-tokens", "4"}, {"x-mock-fail-after", "4"}},
                  chat_body("m", R"(,"stream":true)"));
  EXPECT_TRUE(ex.reset_called);
  Stream s = read_stream(ex, true);
  EXPECT_EQ(s.content_events, 4);
  EXPECT_EQ(s.finish_reason, "");
  EXPECT_FALSE(s.done_last);
}

TEST(MockHandler, FailAfterBeyondTheAnswerDoesNothing) {
  Harness r;
  auto& ex = r.go("POST", kChat, {{"x-mock-tokens", "4"}, {"x-mock-fail-after", "5"}},
                  chat_body("m", R"(,"stream":true)"));
  EXPECT_FALSE(ex.reset_called);
  EXPECT_TRUE(ex.finished);
  EXPECT_TRUE(read_stream(ex, true).done_last);
}

TEST(MockHandler, FailAfterOnANonStreamedAnswerResetsBeforeTheHead) {
  Harness r;
  auto& ex = r.go("POST", kChat, {{"x-mock-fail-after", "0"}}, chat_body());
  EXPECT_TRUE(ex.reset_called);
  EXPECT_FALSE(ex.head_sent());
  EXPECT_TRUE(ex.writes.empty());
}

TEST(MockHandler, StallAfterWaitsUntilTheClientLeaves) {
  Harness r;
  r.make("POST", kChat, {{"x-mock-stall-after", "2"}}, chat_body("m", R"(,"stream":true)"));
  r.abort_after(40);
  auto& ex = r.go();
  EXPECT_GE(r.elapsed_ms, 39);
  EXPECT_LT(r.elapsed_ms, 1000);
  EXPECT_FALSE(ex.finished);
  EXPECT_FALSE(ex.reset_called);
  Stream s = read_stream(ex, true);
  EXPECT_EQ(s.content_events, 2);
  EXPECT_FALSE(s.done_last);
  EXPECT_EQ(r.stats.stalls, 1u);
  EXPECT_EQ(r.stats.client_aborts, 1u);
}

TEST(MockHandler, StallIsBoundedByTheLimit) {
  Harness r;
  r.opts.stall_limit_ms = 20;
  auto& ex = r.go("POST", kChat, {{"x-mock-stall-after", "1"}, {"x-mock-itl-ms", "1"}},
                  chat_body("m", R"(,"stream":true)"));
  EXPECT_GE(r.elapsed_ms, 19);
  EXPECT_LT(r.elapsed_ms, 1000);
  EXPECT_TRUE(ex.reset_called);
  EXPECT_FALSE(ex.finished);
  EXPECT_EQ(read_stream(ex, true).content_events, 1);
}

TEST(MockHandler, StallOnANonStreamedAnswer) {
  Harness r;
  r.make("POST", kChat, {{"x-mock-stall-after", "0"}}, chat_body());
  r.abort_after(20);
  auto& ex = r.go();
  EXPECT_FALSE(ex.head_sent());
  EXPECT_FALSE(ex.reset_called);
  EXPECT_GE(r.elapsed_ms, 19);
}

TEST(MockHandler, ClientAlreadyGoneBeforeAStall) {
  Harness r;
  auto& ex = r.make("POST", kChat, {{"x-mock-stall-after", "0"}}, chat_body("m", R"(,"stream":true)"));
  ex.abort();
  r.go();
  EXPECT_LT(r.elapsed_ms, 1000);
  EXPECT_FALSE(ex.finished);
}

}  // namespace
}  // namespace sluice::mock
