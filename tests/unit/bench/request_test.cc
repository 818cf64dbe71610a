// The pieces between the mix and the wire: URL, options, request bodies.
#include <gtest/gtest.h>
#include <simdjson.h>

#include "bench/options.h"
#include "bench/request_builder.h"
#include "bench/target.h"
#include "llm/token_estimate.h"

namespace sluice::bench {
namespace {

TEST(Target, ParsesUrls) {
  auto a = parse_target("http://127.0.0.1:8080");
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->tls);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  EXPECT_EQ(a->authority, "127.0.0.1:8080");
  EXPECT_EQ(a->path, "/v1/chat/completions");
  EXPECT_TRUE(a->host_is_ip);

  auto b = parse_target("https://api.example.com/v1/chat/completions?x=1");
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->tls);
  EXPECT_EQ(b->port, 443);
  EXPECT_EQ(b->path, "/v1/chat/completions?x=1");
  EXPECT_FALSE(b->host_is_ip);

  auto c = parse_target("http://[::1]:9000/custom");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->authority, "[::1]:9000");
  EXPECT_EQ(c->path, "/custom");

  for (const char* bad : {"", "ftp://x", "http://", "http://:80", "http://h:0", "http://h:99999", "http://u@h/",
                          "http://[::1", "http://h/a b", "http://h/#frag"}) {
    EXPECT_FALSE(parse_target(bad)) << bad;
  }
}

TEST(Options, DefaultsAndUsageErrors) {
  BenchOptions o;
  o.url = "http://127.0.0.1:1";
  ASSERT_TRUE(validate_options(o));
  EXPECT_EQ(o.concurrency, 1u);
  EXPECT_EQ(o.duration_s, 10);

  BenchOptions open;
  open.url = "http://127.0.0.1:1";
  open.rate = 100;
  open.requests = 50;
  ASSERT_TRUE(validate_options(open));
  EXPECT_EQ(open.connections, 64u);
  EXPECT_EQ(open.duration_s, 0);  // --requests alone: no time limit

  auto bad = [](auto mutate) {
    BenchOptions b;
    b.url = "http://127.0.0.1:1";
    mutate(b);
    return !validate_options(b);
  };
  EXPECT_TRUE(bad([](BenchOptions& b) { b.url = "nope"; }));
  EXPECT_TRUE(bad([](BenchOptions& b) { b.rate = 10, b.concurrency = 2; }));
  EXPECT_TRUE(bad([](BenchOptions& b) { b.connections = 2; }));
  EXPECT_TRUE(bad([](BenchOptions& b) { b.concurrency = 2, b.threads = 3; }));
  EXPECT_TRUE(bad([](BenchOptions& b) { b.stream_share = 1.5; }));
  EXPECT_TRUE(bad([](BenchOptions& b) { b.input.max = 0; }));
  EXPECT_TRUE(bad([](BenchOptions& b) { b.output.mean = 0; }));
  EXPECT_TRUE(bad([](BenchOptions& b) { b.timeout_s = 0; }));
}

RequestTemplate make_template(std::vector<std::string> headers = {}, std::optional<std::string> body = {}) {
  auto t = RequestTemplate::make("/v1/chat/completions", "127.0.0.1:8080", "mock-1", headers, std::move(body), 8192);
  EXPECT_TRUE(t) << t.status().message();
  return std::move(*t);
}

std::string_view header(const OutgoingRequest& r, std::string_view name) {
  for (const HeaderField& h : r.headers) {
    if (h.name == name) return h.value;
  }
  return {};
}

TEST(RequestBuilder, BodyCarriesTheDrawnShape) {
  RequestTemplate t = make_template({"x-mock-itl-ms: 5", "Authorization:Bearer k"});
  RequestBuilder b(t);
  simdjson::ondemand::parser parser;
  for (RequestShape shape : {RequestShape{1, 1, false}, RequestShape{300, 77, true}, RequestShape{8192, 2048, true}}) {
    OutgoingRequest r = b.build(shape);
    EXPECT_EQ(r.path, "/v1/chat/completions");
    EXPECT_EQ(header(r, "content-type"), "application/json");
    EXPECT_EQ(header(r, "x-mock-itl-ms"), "5");
    EXPECT_EQ(header(r, "Authorization"), "Bearer k");
    EXPECT_EQ(header(r, "x-mock-tokens"), std::to_string(shape.output_tokens));
    EXPECT_EQ(b.expected_content_events(), shape.output_tokens);

    simdjson::padded_string json(r.body);
    auto doc = parser.iterate(json);
    EXPECT_EQ(std::string_view(doc["model"].get_string().value()), "mock-1");
    EXPECT_EQ(bool(doc["stream"].get_bool().value()), shape.stream);
    EXPECT_EQ(int64_t(doc["max_tokens"].get_int64().value()), shape.output_tokens);
    auto messages = doc["messages"].get_array().value();
    auto first = *messages.begin();
    std::string_view content = first.value()["content"].get_string().value();
    // Both ends agree on the prompt length: the gateway estimates 4 bytes per token.
    EXPECT_EQ(content.size(), static_cast<size_t>(4 * shape.input_tokens));
    EXPECT_EQ(llm::estimate_tokens_for_bytes(static_cast<int64_t>(content.size())), shape.input_tokens);
  }
}

TEST(RequestBuilder, UserMockTokensAndBodyFile) {
  RequestTemplate t = make_template({"x-mock-tokens: 9"});
  RequestBuilder b(t);
  OutgoingRequest r = b.build({10, 500, true});
  EXPECT_EQ(header(r, "x-mock-tokens"), "9");
  EXPECT_EQ(b.expected_content_events(), 9);
  EXPECT_NE(r.body.find("\"max_tokens\":9,"), std::string_view::npos);

  RequestTemplate fixed = make_template({}, std::string(R"({"model":"m","stream":true})"));
  RequestBuilder f(fixed);
  OutgoingRequest fr = f.build({10, 500, false});
  EXPECT_EQ(fr.body, R"({"model":"m","stream":true})");
  EXPECT_EQ(header(fr, "x-mock-tokens"), "");
  EXPECT_EQ(f.expected_content_events(), -1);  // unknown: fidelity is not judged
}

TEST(RequestBuilder, RejectsBadHeaders) {
  for (const char* bad : {"novalue", ": x", "host: other", "content-length: 5", "bad name: x", "x-mock-tokens: lots"}) {
    auto t = RequestTemplate::make("/", "h", "m", {bad}, std::nullopt, 16);
    EXPECT_FALSE(t) << bad;
  }
  EXPECT_FALSE(RequestTemplate::make("/", "h", "bad\"model", {}, std::nullopt, 16));
}

}  // namespace
}  // namespace sluice::bench
