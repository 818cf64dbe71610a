#include "obs/metrics.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace sluice::obs {
namespace {

bool contains(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

TEST(Metrics, ExpositionIsExact) {
  Registry reg;
  auto req = reg.counter("sluice_requests_total", "Requests by model and status.",
                         {"model", "status"});
  auto in_flight = reg.gauge("sluice_in_flight", "Requests in flight.");
  auto lat = reg.histogram("sluice_latency_seconds", "Request latency.\nSecond line \\ here.",
                           {0.1, 1}, {"model"});
  reg.counter("sluice_unused_total", "Never used, so not rendered.", {"x"});
  Shard& a = reg.add_shard();
  Shard& b = reg.add_shard();

  a.counter(req, {"llama", "200"}).inc(3);
  b.counter(req, {"llama", "200"}).inc(2);
  b.counter(req, {"gpt", "429"}).inc();
  a.gauge(in_flight).add(5);
  b.gauge(in_flight).add(-2);
  a.histogram(lat, {"llama"}).observe(0.0625);
  b.histogram(lat, {"llama"}).observe(0.5);
  b.histogram(lat, {"llama"}).observe(2);

  EXPECT_EQ(reg.render_prometheus(),
            "# HELP sluice_in_flight Requests in flight.\n"
            "# TYPE sluice_in_flight gauge\n"
            "sluice_in_flight 3\n"
            "# HELP sluice_latency_seconds Request latency.\\nSecond line \\\\ here.\n"
            "# TYPE sluice_latency_seconds histogram\n"
            "sluice_latency_seconds_bucket{model=\"llama\",le=\"0.1\"} 1\n"
            "sluice_latency_seconds_bucket{model=\"llama\",le=\"1\"} 2\n"
            "sluice_latency_seconds_bucket{model=\"llama\",le=\"+Inf\"} 3\n"
            "sluice_latency_seconds_sum{model=\"llama\"} 2.5625\n"
            "sluice_latency_seconds_count{model=\"llama\"} 3\n"
            "# HELP sluice_requests_total Requests by model and status.\n"
            "# TYPE sluice_requests_total counter\n"
            "sluice_requests_total{model=\"gpt\",status=\"429\"} 1\n"
            "sluice_requests_total{model=\"llama\",status=\"200\"} 5\n");
}

TEST(Metrics, UnlabelledSeriesExistFromTheStart) {
  Registry reg;
  reg.counter("c_total", "C.");
  reg.histogram("h", "H.", {1});
  reg.add_shard();
  EXPECT_EQ(reg.render_prometheus(),
            "# HELP c_total C.\n# TYPE c_total counter\nc_total 0\n"
            "# HELP h H.\n# TYPE h histogram\n"
            "h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n");
}

TEST(Metrics, MergesThreeShards) {
  Registry reg;
  auto c = reg.counter("tokens_total", "Tokens.", {"model"});
  auto g = reg.gauge("open_streams", "Streams.", {"model"});
  auto h = reg.histogram("ttft_seconds", "TTFT.", {0.5, 1}, {"model"});
  std::vector<Shard*> shards = {&reg.add_shard(), &reg.add_shard(), &reg.add_shard()};
  for (int i = 0; i < 3; ++i) {
    shards[i]->counter(c, {"m"}).inc(10 * (i + 1));
    shards[i]->gauge(g, {"m"}).set(i + 1);
    shards[i]->histogram(h, {"m"}).observe(0.25 * (i + 1));  // 0.25, 0.5, 0.75
  }
  shards[2]->counter(c, {"only_in_third"}).inc(7);
  const std::string text = reg.render_prometheus();
  EXPECT_TRUE(contains(text, "\ntokens_total{model=\"m\"} 60\n")) << text;
  EXPECT_TRUE(contains(text, "\ntokens_total{model=\"only_in_third\"} 7\n")) << text;
  EXPECT_TRUE(contains(text, "\nopen_streams{model=\"m\"} 6\n")) << text;
  EXPECT_TRUE(contains(text, "\nttft_seconds_bucket{model=\"m\",le=\"0.5\"} 2\n")) << text;
  EXPECT_TRUE(contains(text, "\nttft_seconds_bucket{model=\"m\",le=\"1\"} 3\n")) << text;
  EXPECT_TRUE(contains(text, "\nttft_seconds_sum{model=\"m\"} 1.5\n")) << text;
  EXPECT_TRUE(contains(text, "\nttft_seconds_count{model=\"m\"} 3\n")) << text;
}

TEST(Metrics, HistogramBucketsAreInclusiveAndCumulative) {
  Registry reg;
  auto f = reg.histogram("h", "H.", {1, 2, 4});
  Shard& s = reg.add_shard();
  Histogram& h = s.histogram(f);
  for (double v : {0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 4.5, 100.0, -1.0}) h.observe(v);
  h.observe(NAN);  // ignored
  EXPECT_EQ(h.bucket(0), 3u);  // -1, 0.5, 1
  EXPECT_EQ(h.bucket(1), 2u);  // 1.5, 2
  EXPECT_EQ(h.bucket(2), 2u);  // 3, 4
  EXPECT_EQ(h.bucket(3), 2u);  // 4.5, 100 (+Inf)
  EXPECT_EQ(h.count(), 9u);
  EXPECT_DOUBLE_EQ(h.sum(), 115.5);
  EXPECT_EQ(reg.render_prometheus(),
            "# HELP h H.\n# TYPE h histogram\n"
            "h_bucket{le=\"1\"} 3\nh_bucket{le=\"2\"} 5\nh_bucket{le=\"4\"} 7\n"
            "h_bucket{le=\"+Inf\"} 9\nh_sum 115.5\nh_count 9\n");
}

TEST(Metrics, TrailingInfBoundIsImplicit) {
  Registry reg;
  auto f = reg.histogram("h", "H.", {1, INFINITY});
  reg.add_shard().histogram(f).observe(5);
  EXPECT_TRUE(contains(reg.render_prometheus(),
                       "h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 1\n"));
}

TEST(Metrics, LabelValuesAreEscapedAndMadeUtf8) {
  Registry reg;
  auto c = reg.counter("c_total", "Help with \\ and\nnewline and \"quotes\".", {"model"});
  Shard& s = reg.add_shard();
  s.counter(c, {"a\\b\"c\nd"}).inc();
  s.counter(c, {"caf\xC3\xA9"}).inc();  // valid UTF-8 is kept
  // Two raw values that differ only in ill-formed bytes render as one series.
  s.counter(c, {"x\xFFy"}).inc();
  s.counter(c, {"x\xFEy"}).inc(2);
  EXPECT_EQ(reg.render_prometheus(),
            "# HELP c_total Help with \\\\ and\\nnewline and \"quotes\".\n"
            "# TYPE c_total counter\n"
            "c_total{model=\"a\\\\b\\\"c\\nd\"} 1\n"
            "c_total{model=\"caf\xC3\xA9\"} 1\n"
            "c_total{model=\"x\xEF\xBF\xBDy\"} 3\n");
}

TEST(Metrics, SeriesBeyondTheLimitGoToOverflow) {
  Registry reg(/*series_limit=*/3);
  auto c = reg.counter("c_total", "C.", {"model", "code"});
  Shard& s = reg.add_shard();
  Shard& other = reg.add_shard();
  for (int i = 0; i < 10; ++i) s.counter(c, {"m" + std::to_string(i), "200"}).inc();
  s.counter(c, {"m0", "200"}).inc();  // existing series still found
  other.counter(c, {"m9", "200"}).inc();  // the limit is per shard
  EXPECT_EQ(reg.render_prometheus(),
            "# HELP c_total C.\n# TYPE c_total counter\n"
            "c_total{model=\"__overflow__\",code=\"__overflow__\"} 7\n"
            "c_total{model=\"m0\",code=\"200\"} 2\n"
            "c_total{model=\"m1\",code=\"200\"} 1\n"
            "c_total{model=\"m2\",code=\"200\"} 1\n"
            "c_total{model=\"m9\",code=\"200\"} 1\n");
}

TEST(Metrics, LongLabelValuesAreTruncated) {
  Registry reg;
  auto c = reg.counter("c_total", "C.", {"model"});
  Shard& s = reg.add_shard();
  const std::string long_a(1000, 'a');
  const std::string long_b = std::string(kMaxLabelValueBytes, 'a') + "different tail";
  Counter& x = s.counter(c, {long_a});
  EXPECT_EQ(&x, &s.counter(c, {long_a}));
  EXPECT_EQ(&x, &s.counter(c, {long_b}));
  EXPECT_EQ(&x, &s.counter(c, {std::string(kMaxLabelValueBytes, 'a')}));
}

TEST(Metrics, CellsDoNotMoveWhenSeriesAreAdded) {
  Registry reg;
  auto c = reg.counter("c_total", "C.", {"k"});
  auto h = reg.histogram("h", "H.", token_buckets(), {"k"});
  Shard& s = reg.add_shard();
  Counter& first = s.counter(c, {"first"});
  Histogram& first_h = s.histogram(h, {"first"});
  first.inc();
  for (int i = 0; i < 5000; ++i) {
    s.counter(c, {std::to_string(i)}).inc();
    s.histogram(h, {std::to_string(i)}).observe(i);
  }
  EXPECT_EQ(&first, &s.counter(c, {"first"}));
  EXPECT_EQ(&first_h, &s.histogram(h, {"first"}));
  EXPECT_EQ(first.value(), 1u);
  for (int i = 0; i < 5000; ++i) {  // every series is found again, each its own
    ASSERT_EQ(s.counter(c, {std::to_string(i)}).value(), 1u) << i;
    ASSERT_EQ(s.histogram(h, {std::to_string(i)}).count(), 1u) << i;
  }
}

TEST(Metrics, BadDeclarationsThrow) {
  Registry reg;
  reg.counter("ok_total", "Ok.");
  EXPECT_THROW(reg.counter("ok_total", "Again."), std::invalid_argument);
  EXPECT_THROW(reg.counter("1bad", "Bad."), std::invalid_argument);
  EXPECT_THROW(reg.counter("bad-name", "Bad."), std::invalid_argument);
  EXPECT_THROW(reg.counter("c", "C.", {"__reserved"}), std::invalid_argument);
  EXPECT_THROW(reg.counter("c", "C.", {"a", "a"}), std::invalid_argument);
  EXPECT_THROW(reg.histogram("h", "H.", {1}, {"le"}), std::invalid_argument);
  EXPECT_THROW(reg.histogram("h", "H.", {2, 1}), std::invalid_argument);
  EXPECT_THROW(reg.histogram("h", "H.", {1, NAN}), std::invalid_argument);
  reg.add_shard();
  EXPECT_THROW(reg.gauge("late", "Late."), std::logic_error);
}

TEST(Metrics, BucketLayouts) {
  auto lat = latency_buckets();
  auto tok = token_buckets();
  EXPECT_EQ(lat.front(), 0.0005);
  EXPECT_EQ(lat.back(), 60);
  EXPECT_TRUE(std::is_sorted(lat.begin(), lat.end()));
  EXPECT_GE(lat.size(), 18u);
  EXPECT_LE(lat.size(), 24u);
  EXPECT_EQ(tok.front(), 1);
  EXPECT_EQ(tok.back(), 32768);
  EXPECT_EQ(tok.size(), 16u);
  Registry reg;
  reg.histogram("a", "A.", lat);  // both layouts are accepted
  reg.histogram("b", "B.", tok);
}

// Each worker hammers its own shard, creating series as it goes, while
// another thread scrapes in a loop. Run under TSan this checks the
// single-writer design; the final counts must be exact.
TEST(Metrics, ConcurrentWritersAndScraper) {
  constexpr int kThreads = 4;
  constexpr int kIterations = 100'000;
  constexpr int kModels = 8;
  Registry reg;
  auto req = reg.counter("req_total", "R.", {"model", "status"});
  auto fresh = reg.counter("fresh_total", "Series created during the run.", {"n"});
  auto in_flight = reg.gauge("in_flight", "G.");
  auto lat = reg.histogram("lat_seconds", "L.", latency_buckets(), {"model"});
  std::vector<Shard*> shards;
  for (int t = 0; t < kThreads; ++t) shards.push_back(&reg.add_shard());

  std::vector<std::string> models;
  for (int m = 0; m < kModels; ++m) models.push_back("model-" + std::to_string(m));

  std::atomic<bool> scraping{false};
  std::atomic<int> running{kThreads};
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      while (!scraping.load()) std::this_thread::yield();  // overlap with the scraper
      Shard& s = *shards[t];
      Gauge& g = s.gauge(in_flight);
      for (int i = 0; i < kIterations; ++i) {
        const std::string& model = models[i % kModels];
        g.add(1);
        s.counter(req, {model, "200"}).inc();
        s.histogram(lat, {model}).observe(0.001 * (i % 100));
        if (i % 1000 == 0) s.counter(fresh, {std::to_string(i)}).inc();
        g.add(-1);
      }
      running.fetch_sub(1);
    });
  }
  int scrapes = 0;
  std::thread scraper([&] {
    scraping.store(true);
    do {
      std::string text = reg.render_prometheus();
      EXPECT_TRUE(contains(text, "# TYPE in_flight gauge\n"));  // unlabelled: always there
      ++scrapes;
    } while (running.load() > 0);
  });
  for (auto& w : workers) w.join();
  scraper.join();

  const std::string text = reg.render_prometheus();
  const int per_model = kThreads * kIterations / kModels;
  for (const auto& m : models) {
    EXPECT_TRUE(contains(text, "req_total{model=\"" + m + "\",status=\"200\"} " +
                                   std::to_string(per_model) + "\n"))
        << m;
    EXPECT_TRUE(contains(text, "lat_seconds_count{model=\"" + m + "\"} " +
                                   std::to_string(per_model) + "\n"))
        << m;
  }
  EXPECT_TRUE(contains(text, "fresh_total{n=\"99000\"} " + std::to_string(kThreads) + "\n"));
  EXPECT_TRUE(contains(text, "\nin_flight 0\n"));
  EXPECT_GT(scrapes, 0);
}

TEST(Metrics, ProcessMetrics) {
  const std::string text = render_process_metrics();
  for (const char* name :
       {"process_cpu_seconds_total ", "process_open_fds ", "process_resident_memory_bytes ",
        "process_start_time_seconds ", "process_virtual_memory_bytes ", "process_max_fds "}) {
    EXPECT_TRUE(contains(text, std::string("\n") + name)) << name << "\n" << text;
  }
  EXPECT_TRUE(contains(text, "# TYPE process_cpu_seconds_total counter\n"));
  auto value_of = [&](const std::string& name) {
    const auto pos = text.find("\n" + name + " ");
    return std::stod(text.substr(pos + name.size() + 2));
  };
  EXPECT_GT(value_of("process_resident_memory_bytes"), 1e5);
  EXPECT_GE(value_of("process_open_fds"), 3);
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_NEAR(value_of("process_start_time_seconds"), now, 3600);
}

}  // namespace
}  // namespace sluice::obs
