#include "upstream/pool.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

namespace sluice::upstream {
namespace {

struct Pools {
  explicit Pools(size_t n) {
    for (size_t i = 0; i < n; ++i) {
      health.push_back(std::make_unique<Health>());
      Target t;
      t.host = "127.0.0.1";
      t.port = static_cast<uint16_t>(9000 + i);
      owned.push_back(std::make_unique<EndpointPool>(ctx.get_executor(), t, nullptr, 4, health.back().get()));
      views.push_back(owned.back().get());
    }
  }
  boost::asio::io_context ctx;
  std::vector<std::unique_ptr<Health>> health;
  std::vector<std::unique_ptr<EndpointPool>> owned;
  std::vector<EndpointPool*> views;
};

constexpr int64_t kNow = 1'000'000'000'000;

TEST(PickEndpoint, SpreadsLoadAndPrefersLessBusy) {
  Pools p(3);
  uint64_t rr = 0;
  std::vector<int> counts(3);
  for (int i = 0; i < 300; ++i) counts[pick_endpoint(p.views, kNow, rr, {})]++;
  for (int c : counts) EXPECT_EQ(c, 100);  // idle pools: plain rotation

  p.views[1]->in_flight = 5;
  for (int i = 0; i < 30; ++i) EXPECT_NE(pick_endpoint(p.views, kNow, rr, {}), 1);
}

TEST(PickEndpoint, SkipsDownAndExcludedEndpoints) {
  Pools p(3);
  uint64_t rr = 0;
  p.health[0]->failure(kNow);
  for (int i = 0; i < 20; ++i) EXPECT_NE(pick_endpoint(p.views, kNow, rr, {}), 0);
  EXPECT_EQ(pick_endpoint(p.views, kNow, rr, {1, 2}), 0);  // all healthy ones tried: the down one is a last resort
  EXPECT_EQ(pick_endpoint(p.views, kNow, rr, {0, 1, 2}), -1);
  std::vector<EndpointPool*> none;
  EXPECT_EQ(pick_endpoint(none, kNow, rr, {}), -1);
}

TEST(Health, BackoffGrowsAndRecovers) {
  Health h;
  h.failure(kNow);
  EXPECT_FALSE(h.up(kNow + 400'000'000));
  EXPECT_TRUE(h.up(kNow + 600'000'000));
  h.failure(kNow);
  h.failure(kNow);  // third failure: 2 s
  EXPECT_FALSE(h.up(kNow + 1'900'000'000));
  EXPECT_TRUE(h.up(kNow + 2'100'000'000));
  EXPECT_EQ(h.consecutive_failures(), 3u);
  h.success();
  EXPECT_TRUE(h.up(kNow));
  EXPECT_EQ(h.consecutive_failures(), 0u);
  for (int i = 0; i < 50; ++i) h.failure(kNow);
  EXPECT_TRUE(h.up(kNow + 30'000'000'001));  // capped at 30 s
}

}  // namespace
}  // namespace sluice::upstream
