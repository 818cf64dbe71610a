#include "obs/metrics_merge.h"

#include <gtest/gtest.h>

namespace sluice::obs {
namespace {

constexpr const char* kWorker = R"(# HELP req_total Requests.
# TYPE req_total counter
req_total{code="200"} 5
# HELP active Open streams.
# TYPE active gauge
active 2
# TYPE build_info gauge
build_info{version="1"} 1
# TYPE lat histogram
lat_bucket{le="0.1"} 1
lat_bucket{le="+Inf"} 3
lat_sum 0.5
lat_count 3
)";

TEST(MetricsMerger, SumsCountersAndGaugesButNotInfo) {
  MetricsMerger m(2);
  m.update(0, kWorker);
  m.update(1, kWorker);
  const std::string out = m.render();
  EXPECT_NE(out.find("req_total{code=\"200\"} 10\n"), std::string::npos) << out;
  EXPECT_NE(out.find("active 4\n"), std::string::npos) << out;
  EXPECT_NE(out.find("build_info{version=\"1\"} 1\n"), std::string::npos) << out;  // the largest, not 2
  EXPECT_NE(out.find("lat_bucket{le=\"+Inf\"} 6\n"), std::string::npos) << out;
  EXPECT_NE(out.find("lat_sum 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("# HELP req_total Requests.\n# TYPE req_total counter\n"), std::string::npos) << out;
}

TEST(MetricsMerger, ARetiredWorkersCountersStayGaugesGo) {
  MetricsMerger m(2);
  m.update(0, kWorker);
  m.update(1, kWorker);
  m.retire(0);  // worker 0 died; its replacement starts from zero
  m.update(0, "# TYPE req_total counter\nreq_total{code=\"200\"} 1\n# TYPE active gauge\nactive 0\n");
  const std::string out = m.render();
  EXPECT_NE(out.find("req_total{code=\"200\"} 11\n"), std::string::npos) << out;  // 5 carried + 5 + 1
  EXPECT_NE(out.find("active 2\n"), std::string::npos) << out;                     // only the live ones
  EXPECT_NE(out.find("lat_count 6\n"), std::string::npos) << out;                  // histograms carry too
}

TEST(MetricsMerger, IgnoresMalformedLines) {
  MetricsMerger m(1);
  m.update(0, "# TYPE x counter\nx 1\nx{a=\"1\"} not-a-number\ngarbage\n{}\n y\n");
  EXPECT_EQ(m.render(), "# TYPE x counter\nx 1\n");
}

}  // namespace
}  // namespace sluice::obs
