// One /metrics out of several processes' (server.processes: the supervisor
// scrapes each worker process and serves the sum).
//
// Samples with the same name and labels are added up; gauges that describe
// the build or configuration rather than load (…_info, …_generation,
// …_timestamp_seconds, …_start_time_seconds, …_limit_bytes) take the largest
// value instead. Counters (and histogram/summary series) never go backwards
// when a worker process is replaced: what the dead one had counted at its
// last scrape is carried into the sum (what it counted after that scrape is
// lost; the supervisor scrapes at every /metrics request and once a second).
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::obs {

class MetricsMerger {
 public:
  explicit MetricsMerger(size_t slots) : current_(slots) {}

  // The latest exposition of worker `slot` (Prometheus text format 0.0.4).
  void update(size_t slot, std::string_view text);
  // Worker `slot` is gone: its counters are kept in the sum, its gauges leave it.
  void retire(size_t slot);
  // The merged exposition.
  std::string render() const;

 private:
  struct Family {
    std::string help, type;  // type: counter, gauge, histogram, summary, untyped
    std::vector<std::string> series;  // "name{labels}" in order of first appearance
  };
  static bool cumulative(const std::string& type) { return type == "counter" || type == "histogram" || type == "summary"; }
  Family* family_of(const std::string& sample_name);  // the family a sample belongs to, or null

  std::map<std::string, Family> families_;   // by family name
  std::vector<std::string> family_order_;
  std::vector<std::map<std::string, double>> current_;  // per slot: series -> value
  std::map<std::string, double> carried_;               // counters of retired workers
};

}  // namespace sluice::obs
