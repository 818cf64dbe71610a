// The pipeline stages, run on an in-memory Exchange: no sockets.
#include "gateway/stage.h"
#include "gateway/shared_policy.h"
#include "policy/api_keys.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "unit/mock/fake_exchange.h"

namespace sluice::gateway {
namespace {

namespace asio = boost::asio;
using testing::FakeExchange;

std::shared_ptr<Settings> settings_with(std::vector<ModelRoute> models, uint64_t max_body = 1 << 20) {
  auto s = std::make_shared<Settings>();
  s->upstreams.push_back(Upstream{.name = "pool"});
  s->models = std::move(models);
  s->server.max_body_bytes = max_body;
  s->index_models();
  return s;
}

struct Outcome {
  StageResult result;
  std::string last_stage;
  bool done = false;
};

asio::awaitable<void> run_stages(std::vector<std::unique_ptr<Stage>>* stages, RequestContext* rc, Outcome* out) {
  for (auto& st : *stages) {
    out->last_stage = std::string(st->name());
    StageResult r = st->process(*rc);
    if (r.action == StageAction::kSuspend) r = co_await st->resume(*rc);
    if (r.action == StageAction::kRespond) {
      out->result = std::move(r);
      break;
    }
  }
  out->done = true;
}

struct Case {
  std::string method, path, body;
  std::vector<std::pair<std::string, std::string>> headers;
};

Outcome run(std::shared_ptr<Settings> s, const Case& c, RequestContext** keep = nullptr,
            SharedPolicy* policy = nullptr) {
  asio::io_context ctx;
  static std::unique_ptr<FakeExchange> ex;
  static std::unique_ptr<RequestContext> rc;
  ex = std::make_unique<FakeExchange>(ctx, c.method, c.path, c.headers, c.body);
  rc = std::make_unique<RequestContext>(*ex, nullptr, s, nullptr, policy);
  auto stages = make_default_stages();
  Outcome out;
  asio::co_spawn(ctx, run_stages(&stages, rc.get(), &out), asio::detached);
  ctx.run();
  EXPECT_TRUE(out.done);
  if (keep) *keep = rc.get();
  return out;
}

const char* kChat = R"({"model":"llama","messages":[{"role":"user","content":"hi"}]})";

TEST(Stages, RoutesByNameAliasAndWildcard) {
  auto s = settings_with({ModelRoute{.name = "llama", .aliases = {"l3"}}});
  RequestContext* rc = nullptr;
  Outcome o = run(s, {"POST", "/v1/chat/completions", kChat}, &rc);
  EXPECT_EQ(o.result.action, StageAction::kContinue);
  ASSERT_NE(rc->route, nullptr);
  EXPECT_EQ(rc->route->name, "llama");
  EXPECT_EQ(rc->request_id.size(), 32u);

  o = run(s, {"POST", "/v1/chat/completions", R"({"model":"l3","messages":[]})"}, &rc);
  ASSERT_NE(rc->route, nullptr);
  EXPECT_EQ(rc->route->name, "llama");

  o = run(s, {"POST", "/v1/chat/completions", R"({"model":"gpt-9","messages":[]})"});
  EXPECT_EQ(o.result.status, 404);
  EXPECT_EQ(o.result.code, "model_not_found");

  auto wild = settings_with({ModelRoute{.name = "*"}});
  o = run(wild, {"POST", "/v1/chat/completions", R"({"model":"gpt-9","messages":[]})"}, &rc);
  EXPECT_EQ(o.result.action, StageAction::kContinue);
  EXPECT_EQ(rc->route->name, "*");
}

TEST(Stages, LocalErrorsTable) {
  auto s = settings_with({ModelRoute{.name = "*"}}, /*max_body=*/64);
  struct Row {
    Case c;
    int status;
    std::string code;
    std::string stage;
  } rows[] = {
      {{"POST", "/v2/chat", "{}"}, 404, "unknown_url", "validate"},
      {{"GET", "/v1/chat/completions", ""}, 405, "method_not_allowed", "validate"},
      {{"POST", "/v1/models", ""}, 405, "method_not_allowed", "validate"},
      {{"POST", "/v1/chat/completions", "{not json"}, 400, "invalid_request", "inspect"},
      {{"POST", "/v1/chat/completions", ""}, 400, "invalid_request", "inspect"},
      {{"POST", "/v1/chat/completions", R"({"model":"m","stream":"yes","messages":[]})"}, 400, "invalid_request",
       "inspect"},
      {{"POST", "/v1/chat/completions", std::string(100, ' ') + "{}"}, 413, "request_too_large", "inspect"},
  };
  for (const auto& r : rows) {
    Outcome o = run(s, r.c);
    EXPECT_EQ(o.result.action, StageAction::kRespond) << r.c.path << " " << r.c.body;
    EXPECT_EQ(o.result.status, r.status) << r.c.path << " " << r.c.body;
    EXPECT_EQ(o.result.code, r.code) << r.c.path << " " << r.c.body;
    EXPECT_EQ(o.last_stage, r.stage) << r.c.path << " " << r.c.body;
  }
}

TEST(Stages, ModelsListNamesAndAliasesButNotWildcard) {
  auto s = settings_with({ModelRoute{.name = "llama", .aliases = {"l3"}}, ModelRoute{.name = "*"}});
  Outcome o = run(s, {"GET", "/v1/models", ""});
  EXPECT_EQ(o.result.status, 200);
  EXPECT_NE(o.result.body.find("\"id\":\"llama\""), std::string::npos);
  EXPECT_NE(o.result.body.find("\"id\":\"l3\""), std::string::npos);
  EXPECT_EQ(o.result.body.find("\"id\":\"*\""), std::string::npos);
}

TEST(Stages, RequestIdKeptWhenValidReplacedWhenNot) {
  auto s = settings_with({ModelRoute{.name = "*"}});
  RequestContext* rc = nullptr;
  run(s, {"POST", "/v1/chat/completions", kChat, {{"x-request-id", "abc-123_x.y:z"}}}, &rc);
  EXPECT_EQ(rc->request_id, "abc-123_x.y:z");
  run(s, {"POST", "/v1/chat/completions", kChat, {{"x-request-id", "bad id with spaces"}}}, &rc);
  EXPECT_EQ(rc->request_id.size(), 32u);
  EXPECT_NE(rc->request_id, "bad id with spaces");
}

TEST(Stages, StreamWithoutUsageAsksUpstreamForIt) {
  auto s = settings_with({ModelRoute{.name = "*"}});
  RequestContext* rc = nullptr;
  run(s, {"POST", "/v1/chat/completions", R"({"model":"m","stream":true,"messages":[]})"}, &rc);
  EXPECT_TRUE(rc->strip_usage_chunk);
  EXPECT_NE(rc->body.find("include_usage"), std::string::npos);

  run(s, {"POST", "/v1/chat/completions",
          R"({"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[]})"}, &rc);
  EXPECT_FALSE(rc->strip_usage_chunk);

  run(s, {"POST", "/v1/embeddings", R"({"model":"m","input":"x"})"}, &rc);
  EXPECT_FALSE(rc->strip_usage_chunk);
}

TEST(Stages, AliasesAndUpstreamModelRewriteTheBodyModel) {
  auto s = settings_with({ModelRoute{.name = "meta-llama/Meta-Llama-3.1-8B-Instruct",
                                     .aliases = {"llama3"},
                                     .upstream_model = "meta-llama/Meta-Llama-3.1-8B-Instruct"},
                          ModelRoute{.name = "mini", .upstream_model = "gpt-4o-mini-2024-07-18"},
                          ModelRoute{.name = "*"}});
  RequestContext* rc = nullptr;
  run(s, {"POST", "/v1/chat/completions", R"({"model":"llama3","messages":[]})"}, &rc);
  EXPECT_EQ(rc->body, R"({"model":"meta-llama/Meta-Llama-3.1-8B-Instruct","messages":[]})");
  EXPECT_EQ(rc->info.model, "llama3");  // what the client asked for, for the log
  run(s, {"POST", "/v1/chat/completions", R"({"model":"mini","stream":true,"messages":[]})"}, &rc);
  EXPECT_EQ(rc->body,
            R"({"stream_options":{"include_usage":true},"model":"gpt-4o-mini-2024-07-18","stream":true,"messages":[]})");
  // The canonical name itself and the catch-all leave the body alone.
  const std::string canonical = R"({"model":"meta-llama/Meta-Llama-3.1-8B-Instruct","messages":[]})";
  run(s, {"POST", "/v1/chat/completions", canonical}, &rc);
  EXPECT_EQ(rc->body, canonical);
  run(s, {"POST", "/v1/embeddings", R"({"model":"other","input":"x"})"}, &rc);
  EXPECT_EQ(rc->body, R"({"model":"other","input":"x"})");
}

TEST(Stages, RequestsWithoutAModelTakeTheDefaultRoute) {
  auto wild = settings_with({ModelRoute{.name = "a"}, ModelRoute{.name = "*"}});
  RequestContext* rc = nullptr;
  Outcome o = run(wild, {"GET", "/v1/files", ""}, &rc);
  EXPECT_EQ(o.result.action, StageAction::kContinue);
  ASSERT_NE(rc->route, nullptr);
  EXPECT_EQ(rc->route->name, "*");

  auto dflt = settings_with({ModelRoute{.name = "a"}});
  dflt->default_route = ModelRoute{.upstream = 0};
  o = run(dflt, {"GET", "/v1/files", ""}, &rc);
  EXPECT_EQ(o.result.action, StageAction::kContinue);
  EXPECT_EQ(rc->route, &*dflt->default_route);
  // The default route does not take unknown models.
  o = run(dflt, {"POST", "/v1/responses", R"({"model":"zzz"})"});
  EXPECT_EQ(o.result.status, 404);
  EXPECT_EQ(o.result.code, "model_not_found");

  auto none = settings_with({ModelRoute{.name = "a"}});
  o = run(none, {"GET", "/v1/files", ""});
  EXPECT_EQ(o.result.status, 404);
  EXPECT_EQ(o.result.code, "no_default_route");
  EXPECT_NE(o.result.message.find("default_upstream"), std::string::npos);
}

TEST(Stages, MethodNotAllowedNamesTheMethodsAndHeadWorks) {
  auto s = settings_with({ModelRoute{.name = "*"}});
  Outcome o = run(s, {"DELETE", "/v1/models", ""});
  EXPECT_EQ(o.result.status, 405);
  EXPECT_EQ(o.result.allow, "GET, HEAD");
  o = run(s, {"GET", "/v1/chat/completions", ""});
  EXPECT_EQ(o.result.status, 405);
  EXPECT_EQ(o.result.allow, "POST");
  o = run(s, {"HEAD", "/v1/models", ""});
  EXPECT_EQ(o.result.status, 200);
}

TEST(Stages, HeaderRulesRefuseNamingTheHeaderNeverItsValue) {
  auto s = settings_with({ModelRoute{.name = "*"}});
  auto rules = policy::HeaderRules::compile({{"authorization", "^Bearer [A-Za-z0-9._~+/-]+=*$", true}}, 64);
  ASSERT_TRUE(rules.has_value());
  s->admission.header_rules = std::move(*rules);
  RequestContext* rc = nullptr;
  Outcome o = run(s, {"POST", "/v1/chat/completions", kChat, {{"authorization", "Basic c2VjcmV0LXZhbHVl"}}}, &rc);
  EXPECT_EQ(o.result.status, 400);
  EXPECT_EQ(o.result.code, "invalid_header");
  EXPECT_EQ(o.last_stage, "validate");
  EXPECT_NE(o.result.message.find("'authorization'"), std::string::npos) << o.result.message;
  EXPECT_EQ(o.result.message.find("c2VjcmV0"), std::string::npos) << o.result.message;
  ASSERT_TRUE(rc->header_violation.has_value());
  EXPECT_EQ(rc->header_violation->rule, "pattern:authorization");

  o = run(s, {"POST", "/v1/chat/completions", kChat});
  EXPECT_EQ(o.result.code, "missing_header");
  o = run(s, {"POST", "/v1/chat/completions", kChat, {{"authorization", "Bearer ok"}, {"x-big", std::string(65, 'v')}}});
  EXPECT_EQ(o.result.status, 431);
  EXPECT_EQ(o.result.code, "header_value_too_large");
  EXPECT_NE(o.result.message.find("'x-big'"), std::string::npos);
  o = run(s, {"POST", "/v1/chat/completions", kChat, {{"authorization", "Bearer ok"}}});
  EXPECT_EQ(o.result.action, StageAction::kContinue);
}

TEST(Stages, AllowListRejectModeRefusesUnlistedHeaders) {
  auto s = settings_with({ModelRoute{.name = "*",
                                     .allow_headers = policy::AllowHeaders{policy::AllowHeaders::Mode::kReject,
                                                                           {"content-type"}}}});
  // The gateway's own headers (credentials, framing, request id) are not subject to it.
  Outcome o = run(s, {"POST", "/v1/chat/completions", kChat,
                      {{"content-type", "application/json"}, {"authorization", "Bearer k"}, {"x-request-id", "abc"}}});
  EXPECT_EQ(o.result.action, StageAction::kContinue);
  RequestContext* rc = nullptr;
  o = run(s, {"POST", "/v1/chat/completions", kChat, {{"x-debug", "1"}}}, &rc);
  EXPECT_EQ(o.result.status, 400);
  EXPECT_EQ(o.result.code, "header_not_allowed");
  EXPECT_EQ(o.last_stage, "route");
  EXPECT_EQ(rc->header_violation->rule, "allow_headers");
}

TEST(Stages, MemorySheddingAnswers503WithRetryAfter) {
  auto s = settings_with({ModelRoute{.name = "*"}});
  s->admission.memory.retry_after = std::chrono::milliseconds(2500);
  SharedPolicy policy(*s);
  *policy.shedding = true;
  Outcome o = run(s, {"POST", "/v1/chat/completions", kChat}, nullptr, &policy);
  EXPECT_EQ(o.result.status, 503);
  EXPECT_EQ(o.result.code, "overloaded");
  EXPECT_EQ(o.result.retry_after_s, 3);
  EXPECT_EQ(o.last_stage, "admit");
  *policy.shedding = false;
  o = run(s, {"POST", "/v1/chat/completions", kChat}, nullptr, &policy);
  EXPECT_EQ(o.result.action, StageAction::kContinue);
}

TEST(Stages, ConcurrencyLimitsTakeSlotsAndRejectWhenTheQueueIsFull) {
  auto s = settings_with({ModelRoute{.name = "m", .concurrency = {.max = 1, .queue = 0, .status = 429}},
                          ModelRoute{.name = "*"}});
  s->admission.concurrency = {.max = 2, .queue = 0};
  SharedPolicy policy(*s);
  const char* m = R"({"model":"m","messages":[]})";
  RequestContext* rc = nullptr;
  Outcome o = run(s, {"POST", "/v1/chat/completions", m}, &rc, &policy);
  EXPECT_EQ(o.result.action, StageAction::kContinue);
  EXPECT_EQ(rc->slots.count, 2u);  // global and model
  EXPECT_EQ(policy.global->active(), 1u);
  o = run(s, {"POST", "/v1/chat/completions", kChat}, &rc, &policy);  // the previous request ends first
  EXPECT_EQ(o.result.action, StageAction::kContinue);
  EXPECT_EQ(policy.global->active(), 1u);
  EXPECT_EQ(policy.per_model[0]->active(), 0u);
  run(s, {"GET", "/not-the-api", ""}, nullptr, &policy);  // ends it: no slot held now
  EXPECT_EQ(policy.global->active(), 0u);
  ASSERT_TRUE(policy.global->try_acquire());
  ASSERT_TRUE(policy.global->try_acquire());  // the global limit is now held by others
  o = run(s, {"POST", "/v1/chat/completions", kChat}, nullptr, &policy);  // no queue: refused at once
  EXPECT_EQ(o.result.status, 503);
  EXPECT_EQ(o.result.code, "overloaded");
  EXPECT_EQ(o.last_stage, "limit");
  policy.global->release();
  policy.global->release();
  ASSERT_TRUE(policy.per_model[0]->try_acquire());  // the model's one slot taken
  o = run(s, {"POST", "/v1/chat/completions", m}, nullptr, &policy);
  EXPECT_EQ(o.result.status, 429);  // the model route answers 429
  EXPECT_EQ(o.result.retry_after_s, 1);
  // run() keeps the last request alive until the next call: end it (and its
  // global slot) while `policy` still exists.
  EXPECT_EQ(policy.global->active(), 1u);  // the refused request still holds the global slot it took first
  run(s, {"GET", "/not-the-api", ""});
  EXPECT_EQ(policy.global->active(), 0u);  // and gives it back when it ends
  policy.per_model[0]->release();
}

TEST(Stages, ApiKeysAuthenticateAndLimitModels) {
  auto s = settings_with({ModelRoute{.name = "llama", .aliases = {"l3"}}, ModelRoute{.name = "*"}});
  const std::string key_a = policy::new_key(), key_b = policy::new_key();
  s->auth.keys.push_back(ApiKey{.id = "a", .team = "t", .team_index = 0, .models = {"llama"}});
  s->auth.index.add(*policy::parse_key_hash(policy::hash_key(key_a)), 0);
  s->auth.keys.push_back(ApiKey{.id = "b"});
  s->auth.index.add(*policy::parse_key_hash(policy::hash_key(key_b)), 1);
  RequestContext* rc = nullptr;

  Outcome o = run(s, {"POST", "/v1/chat/completions", kChat});
  EXPECT_EQ(o.result.status, 401);
  EXPECT_EQ(o.result.code, "invalid_api_key");
  EXPECT_EQ(o.last_stage, "authenticate");
  o = run(s, {"POST", "/v1/chat/completions", kChat, {{"authorization", "Bearer " + key_a + "x"}}});
  EXPECT_EQ(o.result.status, 401);
  EXPECT_EQ(o.result.message.find(key_a), std::string::npos);
  o = run(s, {"POST", "/v1/chat/completions", kChat, {{"authorization", "Basic " + key_a}}});
  EXPECT_EQ(o.result.status, 401);

  o = run(s, {"POST", "/v1/chat/completions", kChat, {{"Authorization", "bearer " + key_a}}}, &rc);
  EXPECT_EQ(o.result.action, StageAction::kContinue);
  ASSERT_NE(rc->principal, nullptr);
  EXPECT_EQ(rc->principal->id, "a");
  // An alias of an allowed route is allowed; another model is not.
  o = run(s, {"POST", "/v1/chat/completions", R"({"model":"l3","messages":[]})", {{"x-api-key", key_a}}}, &rc);
  EXPECT_EQ(o.result.action, StageAction::kContinue);
  EXPECT_EQ(rc->principal->id, "a");
  o = run(s, {"POST", "/v1/chat/completions", R"({"model":"gpt-9","messages":[]})", {{"x-api-key", key_a}}});
  EXPECT_EQ(o.result.status, 403);
  EXPECT_EQ(o.result.code, "model_not_allowed");
  EXPECT_NE(o.result.message.find("'a'"), std::string::npos);
  // A key without a models list may use any.
  o = run(s, {"POST", "/v1/chat/completions", R"({"model":"gpt-9","messages":[]})", {{"x-api-key", key_b}}}, &rc);
  EXPECT_EQ(o.result.action, StageAction::kContinue);
  EXPECT_EQ(rc->principal->id, "b");
}

}  // namespace
}  // namespace sluice::gateway
