// Reservation and settlement of key and team limits (no sockets).
#include "gateway/caller_limits.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "gateway/context.h"
#include "unit/mock/fake_exchange.h"

namespace sluice::gateway {
namespace {

constexpr int64_t kT0 = int64_t{1'700'000'040} * 1'000'000'000;  // a whole minute, in ns
constexpr int64_t kWall = 1'700'000'000;

struct Fixture {
  boost::asio::io_context ctx;
  std::shared_ptr<Settings> s = std::make_shared<Settings>();
  std::unique_ptr<testing::FakeExchange> ex;
  std::unique_ptr<RequestContext> rc;
  // For a request kept while others come and go (request() replaces rc).
  std::unique_ptr<testing::FakeExchange> kept_ex;
  std::unique_ptr<RequestContext> kept;

  Fixture(Limits key, Limits team) {
    s->auth.teams.push_back(Team{.name = "t", .limits = team});
    s->auth.keys.push_back(ApiKey{.id = "k", .team = "t", .team_index = 0, .limits = key});
    s->pricing.push_back(Price{.model = "m", .input_per_mtok = 2, .output_per_mtok = 10});
  }
  RequestContext& request(int64_t prompt, std::optional<int64_t> max_tokens) {
    return make(ex, rc, prompt, max_tokens);
  }
  RequestContext& kept_request(int64_t prompt, std::optional<int64_t> max_tokens) {
    return make(kept_ex, kept, prompt, max_tokens);
  }

 private:
  RequestContext& make(std::unique_ptr<testing::FakeExchange>& e, std::unique_ptr<RequestContext>& r, int64_t prompt,
                       std::optional<int64_t> max_tokens) {
    e = std::make_unique<testing::FakeExchange>(ctx, "POST", "/v1/chat/completions",
                                                std::vector<std::pair<std::string, std::string>>{}, "");
    r = std::make_unique<RequestContext>(*e, nullptr, s);
    r->principal = &s->auth.keys[0];
    r->info.model = "m";
    r->info.estimated_prompt_tokens = prompt;
    r->info.max_tokens = max_tokens;
    return *r;
  }
};

TEST(CallerLimits, ReservationsThatDoNotFitAreRefused) {
  Fixture f(Limits{.tpm = 1000}, Limits{});
  WorkerLimits w(*f.s, 1);
  RequestContext& a = f.request(100, 500);
  ASSERT_FALSE(w.reserve(a, kT0, kWall).has_value());
  EXPECT_EQ(a.reservation.tokens, 600u);
  // A second request for 500 does not fit beside the first's 600...
  RequestContext& b = f.request(0, 500);
  auto refusal = w.reserve(b, kT0, kWall);
  ASSERT_TRUE(refusal.has_value());
  EXPECT_EQ(refusal->status, 429);
  EXPECT_EQ(refusal->code, "rate_limit_exceeded");
}

TEST(CallerLimits, AReloadKeepsCountsAndAppliesNewLimits) {
  Fixture f(Limits{.rpm = 3, .tpm = 1000}, Limits{});
  WorkerLimits w(*f.s, 1);
  RequestContext& a = f.kept_request(100, 500);
  ASSERT_FALSE(w.reserve(a, kT0, kWall).has_value());  // 1 request, 600 tokens

  // The same key with a higher tpm, a new key, the team gone.
  auto next = std::make_shared<Settings>(*f.s);
  next->auth.keys[0].limits.tpm = 1200;
  next->auth.keys[0].team_index = static_cast<size_t>(-1);
  next->auth.keys.push_back(ApiKey{.id = "new", .limits = Limits{.rpm = 1}});
  next->auth.teams.clear();
  WorkerLimits w2(*next, 1, &w, f.s.get());
  auto old = f.s;
  f.s = next;
  // 600 of 1200 used (carried over): 500 more fits, 700 would not.
  ASSERT_TRUE(w2.reserve(f.request(0, 700), kT0 + 1, kWall).has_value());
  ASSERT_FALSE(w2.reserve(f.request(0, 500), kT0 + 1, kWall).has_value());  // 1100
  // The request reserved under the old snapshot settles into the same
  // counters: 500 refunded, so 600 fits now.
  a.usage.prompt_tokens = 100;
  a.usage.completion_tokens = 0;
  w.settle(a, kT0 + 2, kWall);
  ASSERT_FALSE(w2.reserve(f.request(0, 600), kT0 + 3, kWall).has_value());
  // Three requests in this minute, two of them before the reload: rpm 3 is reached.
  auto refusal = w2.reserve(f.request(0, 1), kT0 + 4, kWall);
  ASSERT_TRUE(refusal.has_value());
  EXPECT_NE(refusal->message.find("requests per minute (3)"), std::string::npos) << refusal->message;
  RequestContext& c = f.request(0, 600);
  c.principal = &f.s->auth.keys[1];
  EXPECT_FALSE(w2.reserve(c, kT0 + 5, kWall).has_value());  // the new key starts empty
}

TEST(CallerLimits, SettlingFreesWhatWasNotUsed) {
  Fixture f(Limits{.tpm = 1000}, Limits{});
  WorkerLimits w(*f.s, 1);
  RequestContext& a = f.kept_request(100, 500);
  ASSERT_FALSE(w.reserve(a, kT0, kWall).has_value());  // 600 charged
  ASSERT_TRUE(w.reserve(f.request(0, 500), kT0, kWall).has_value());  // 1100 would not fit
  a.usage.prompt_tokens = 100;
  a.usage.completion_tokens = 20;
  w.settle(a, kT0 + 1, kWall);  // 120 used: 480 refunded
  EXPECT_FALSE(w.reserve(f.request(0, 500), kT0 + 2, kWall).has_value());  // 620 fits
}

TEST(CallerLimits, SettlementArithmetic) {
  Fixture f(Limits{.tpm = 1000, .tokens_per_day = 700, .usd_per_day = 0.01}, Limits{.tpm = 5000});
  WorkerLimits w(*f.s, 1);
  RequestContext& a = f.request(100, 400);
  ASSERT_FALSE(w.reserve(a, kT0, kWall).has_value());
  EXPECT_EQ(a.reservation.tokens, 500u);
  EXPECT_EQ(a.reservation.micro_usd, 100u * 2 + 400u * 10);  // micro-dollars: tokens x price per million
  a.usage.prompt_tokens = 100;
  a.usage.completion_tokens = 20;  // a stream cut short: charged what was observed
  w.settle(a, kT0 + 1, kWall);
  EXPECT_FALSE(a.reservation.active);
  // 120 of the day's 700 used: 580 left, so a 500 reservation fits, a 600 one not.
  RequestContext& b = f.request(0, 600);
  auto r = w.reserve(b, kT0 + 2, kWall);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->code, "insufficient_quota");
  RequestContext& c = f.request(0, 500);
  EXPECT_FALSE(w.reserve(c, kT0 + 3, kWall).has_value());
}

TEST(CallerLimits, TeamLimitsApplyToo) {
  Fixture f(Limits{}, Limits{.rpm = 2});
  WorkerLimits w(*f.s, 1);
  for (int i = 0; i < 2; ++i) {
    RequestContext& rc = f.request(1, 1);
    ASSERT_FALSE(w.reserve(rc, kT0 + i, kWall).has_value());
  }
  RequestContext& rc = f.request(1, 1);
  auto r = w.reserve(rc, kT0 + 5, kWall);
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->message.find("team 't'"), std::string::npos) << r->message;
  EXPECT_GE(r->retry_after_s, 1);
}

TEST(CallerLimits, RefusedReservationsChargeNothing) {
  Fixture f(Limits{.rpm = 2, .tpm = 500}, Limits{.tpm = 300});
  WorkerLimits w(*f.s, 1);
  // The key has room for 400, the team does not: what the key was charged is given back...
  auto r = w.reserve(f.request(0, 400), kT0, kWall);
  ASSERT_TRUE(r.has_value());
  EXPECT_NE(r->message.find("team 't'"), std::string::npos);
  // ...so 300 more fit the key's 500 (they would not beside a kept 400), and
  // its requests per minute were not spent either.
  EXPECT_FALSE(w.reserve(f.request(0, 300), kT0 + 1, kWall).has_value());
  EXPECT_FALSE(w.reserve(f.request(0, 0), kT0 + 2, kWall).has_value());
}

}  // namespace
}  // namespace sluice::gateway
