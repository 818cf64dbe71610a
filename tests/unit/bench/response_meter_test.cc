#include "bench/response_meter.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace sluice::bench {
namespace {

constexpr int64_t kStart = 1'000'000'000;

// An OpenAI chat stream shaped like sluice-mock's: role, n content events,
// finish, [DONE].
std::string chat_stream(int n) {
  std::string s = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
  for (int i = 0; i < n; ++i) {
    s += "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok" + std::to_string(i) + " \"}}]}\n\n";
  }
  s += ": keep-alive comment\n\n";
  s += "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
  s += "data: [DONE]\n\n";
  return s;
}

TEST(ContentEvent, NonEmptyContentOnly) {
  EXPECT_TRUE(is_content_event(R"({"choices":[{"delta":{"content":"hi"}}]})"));
  EXPECT_TRUE(is_content_event(R"({"choices":[{"delta":{"role":"assistant","content":"","x":{"content":"y"}}}]})"));
  EXPECT_FALSE(is_content_event(R"({"choices":[{"delta":{"role":"assistant","content":""}}]})"));
  EXPECT_FALSE(is_content_event(R"({"choices":[{"delta":{},"finish_reason":"stop"}]})"));
  EXPECT_FALSE(is_content_event("[DONE]"));
  EXPECT_FALSE(is_content_event(R"({"content":")"));
}

class MeterTest : public ::testing::Test {
 protected:
  // Feeds `body` in pieces of `piece` bytes, each read 1 ms after the last.
  void run(const std::string& body, size_t piece, int64_t expected, int status = 200, bool sse = true) {
    meter.begin(kStart, expected, &stats);
    meter.on_head(status, sse);
    int64_t t = kStart;
    for (size_t at = 0; at < body.size(); at += piece) {
      t += 1'000'000;
      ASSERT_TRUE(meter.on_body(std::string_view(body).substr(at, piece), t));
    }
    meter.finish(Outcome::kOk, false, t + 1'000'000);
  }
  std::unique_ptr<Stats> owned = std::make_unique<Stats>();
  Stats& stats = *owned;
  ResponseMeter meter;
};

TEST_F(MeterTest, CountsEventsWhateverTheReadBoundaries) {
  const std::string body = chat_stream(20);
  for (size_t piece : {size_t{1}, size_t{7}, size_t{64}, body.size()}) {
    stats = Stats();
    run(body, piece, 20);
    EXPECT_EQ(meter.events(), 23u) << piece;  // role + 20 + finish + [DONE]; the comment is not an event
    EXPECT_EQ(meter.content_events(), 20u) << piece;
    EXPECT_EQ(stats.completed, 1u);
    EXPECT_EQ(stats.streams, 1u);
    EXPECT_EQ(stats.fidelity_expected, 20u);
    EXPECT_EQ(stats.fidelity_received, 20u);
    EXPECT_EQ(stats.streams_missing_events, 0u);
    EXPECT_EQ(stats.ttft.count(), 1u);
    EXPECT_EQ(stats.gap.count(), 19u);
    EXPECT_EQ(stats.latency.count(), 1u);
  }
}

TEST_F(MeterTest, TimesFirstContentAndGaps) {
  const std::string body = chat_stream(3);
  // One event per read: split at the event boundaries.
  std::vector<std::string> events;
  for (size_t at = 0; at < body.size();) {
    size_t end = body.find("\n\n", at) + 2;
    events.push_back(body.substr(at, end - at));
    at = end;
  }
  meter.begin(kStart, 3, &stats);
  meter.on_head(200, true);
  int64_t t = kStart;
  for (const std::string& e : events) {
    t += 5'000'000;
    ASSERT_TRUE(meter.on_body(e, t));
  }
  meter.finish(Outcome::kOk, false, t);
  // The role event came at +5 ms; the first content at +10 ms.
  EXPECT_EQ(meter.first_content_ns(), kStart + 10'000'000);
  EXPECT_EQ(stats.ttft.max(), 10'000'000);
  EXPECT_EQ(stats.gap.count(), 2u);
  EXPECT_EQ(stats.gap.min(), 5'000'000);
  EXPECT_EQ(stats.gap.max(), 5'000'000);
  EXPECT_EQ(stats.latency.max(), t - kStart);
}

TEST_F(MeterTest, MissingAndExtraEvents) {
  run(chat_stream(5), 13, 6);
  EXPECT_EQ(stats.streams_missing_events, 1u);
  run(chat_stream(5), 13, 4);
  EXPECT_EQ(stats.streams_extra_events, 1u);
  run(chat_stream(5), 13, -1);  // unknown expectation: not judged
  EXPECT_EQ(stats.fidelity_streams, 2u);
  EXPECT_EQ(stats.streams, 3u);
}

TEST_F(MeterTest, ReusedAcrossResponsesIncludingABrokenOne) {
  run(chat_stream(4), 9, 4);
  // A stream cut off mid-event...
  meter.begin(kStart, 4, &stats);
  meter.on_head(200, true);
  ASSERT_TRUE(meter.on_body("data: {\"choices\":[{\"delta\":{\"content\":\"par", kStart + 1));
  meter.finish(Outcome::kReset, false, kStart + 2);
  EXPECT_EQ(stats.error(ErrorKind::kReset), 1u);
  // ...does not leak into the next one.
  run(chat_stream(4), 9, 4);
  EXPECT_EQ(stats.streams, 2u);
  EXPECT_EQ(stats.fidelity_received, 8u);
  EXPECT_EQ(stats.streams_missing_events, 0u);
}

TEST_F(MeterTest, ErrorsByKind) {
  run(R"({"error":{"message":"slow down"}})", 100, -1, 429, false);
  EXPECT_EQ(stats.error(ErrorKind::kNon2xx), 1u);
  EXPECT_EQ(stats.status_counts[429], 1u);
  EXPECT_EQ(stats.completed, 0u);
  EXPECT_EQ(stats.latency.count(), 0u);

  meter.begin(kStart, -1, &stats);
  meter.finish(Outcome::kConnect, false, kStart);
  meter.begin(kStart, -1, &stats);
  meter.finish(Outcome::kBadResponse, false, kStart);
  meter.begin(kStart, -1, &stats);
  meter.finish(Outcome::kReset, true, kStart);  // the timeout closed it: a timeout
  EXPECT_EQ(stats.error(ErrorKind::kConnect), 1u);
  EXPECT_EQ(stats.error(ErrorKind::kBadResponse), 1u);
  EXPECT_EQ(stats.error(ErrorKind::kTimeout), 1u);
  EXPECT_EQ(stats.error(ErrorKind::kReset), 0u);
  EXPECT_EQ(stats.total_errors(), 4u);
}

TEST_F(MeterTest, WarmupRequestsAreNotRecorded) {
  meter.begin(kStart, 3, nullptr);
  meter.on_head(200, true);
  ASSERT_TRUE(meter.on_body(chat_stream(3), kStart + 5));
  meter.finish(Outcome::kOk, false, kStart + 10);
  EXPECT_EQ(meter.content_events(), 3u);
  EXPECT_EQ(stats.completed, 0u);
  EXPECT_EQ(stats.gap.count(), 0u);
}

TEST_F(MeterTest, OversizedEventIsABadResponse) {
  ResponseMeter small(64);
  small.begin(kStart, 1, &stats);
  small.on_head(200, true);
  EXPECT_FALSE(small.on_body("data: " + std::string(200, 'x') + "\n\n", kStart + 1));
}

TEST(StatsMerge, AddsEverything) {
  auto a = std::make_unique<Stats>();
  auto b = std::make_unique<Stats>();
  a->completed = 3;
  a->latency.record(100);
  a->count_error(ErrorKind::kReset);
  a->status_counts[503] = 2;
  b->completed = 4;
  b->latency.record(300);
  b->count_error(ErrorKind::kReset);
  b->fidelity_expected = 7;
  a->merge(*b);
  EXPECT_EQ(a->completed, 7u);
  EXPECT_EQ(a->latency.count(), 2u);
  EXPECT_EQ(a->error(ErrorKind::kReset), 2u);
  EXPECT_EQ(a->status_counts[503], 2u);
  EXPECT_EQ(a->fidelity_expected, 7u);
}

}  // namespace
}  // namespace sluice::bench
