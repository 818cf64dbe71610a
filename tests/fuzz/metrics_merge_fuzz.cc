// The supervisor's /metrics merge (obs/metrics_merge.h) over arbitrary text:
// no crash, and what it renders is a fixed point (merging its own output
// again gives the same text), also after a worker is retired.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "obs/metrics_merge.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t split = in.find('\f');  // two workers' expositions, split by a form feed
  const std::string_view a = in.substr(0, split);
  const std::string_view b = split == std::string_view::npos ? std::string_view{} : in.substr(split + 1);
  sluice::obs::MetricsMerger m(2);
  m.update(0, a);
  m.update(1, b);
  const std::string merged = m.render();
  m.retire(0);
  m.update(0, a);
  (void)m.render();

  sluice::obs::MetricsMerger again(1);
  again.update(0, merged);
  const std::string twice = again.render();
  sluice::obs::MetricsMerger third(1);
  third.update(0, twice);
  if (third.render() != twice) std::abort();  // rendering is stable once normalised
  return 0;
}
