#include "bench/options.h"

#include <cmath>

#include "bench/target.h"

namespace sluice::bench {
namespace {
Status usage(std::string msg) { return Status(Errc::kInvalid, std::move(msg)); }

Status check_length(const LengthSpec& l, const char* what) {
  std::string w(what);
  if (!(l.mean >= 1) || !std::isfinite(l.mean)) return usage("--" + w + "-mean must be >= 1");
  if (!(l.sigma >= 0) || l.sigma > 4) return usage("--" + w + "-sigma must be in [0, 4]");
  if (l.max < 1 || l.max > 1'000'000) return usage("--" + w + "-max must be in [1, 1000000]");
  return Status::ok();
}
}  // namespace

Status validate_options(BenchOptions& o) {
  if (o.url.empty()) return usage("a URL is required");
  auto t = parse_target(o.url);
  if (!t) return t.status();
  if (o.rate < 0 || !std::isfinite(o.rate)) return usage("--rate must be > 0");
  if (o.rate > 0 && o.concurrency > 0) return usage("--concurrency (closed loop) and --rate (open loop) exclude each other");
  if (o.rate <= 0 && o.connections > 0) return usage("--connections is for open loop (--rate); closed loop uses --concurrency");
  if (o.closed_loop() && o.concurrency == 0) o.concurrency = 1;
  if (!o.closed_loop() && o.connections == 0) o.connections = 64;
  if (o.streams_per_connection == 0) return usage("--streams must be >= 1");
  if (!o.http2 && o.streams_per_connection != 1) {
    return usage("--streams is for HTTP/2 (--h2): HTTP/1.1 carries one request at a time per connection");
  }
  if (o.threads == 0) return usage("--threads must be >= 1");
  if (o.threads > o.total_connections()) {
    return usage("--threads " + std::to_string(o.threads) + " is more than the " +
                 std::to_string(o.total_connections()) + " connections to share between them");
  }
  if (o.duration_s < 0 || o.warmup_s < 0 || !std::isfinite(o.duration_s) || !std::isfinite(o.warmup_s)) {
    return usage("--duration and --warmup must be >= 0");
  }
  if (o.duration_s == 0 && o.requests == 0) o.duration_s = 10;
  if (!(o.timeout_s > 0) || !(o.connect_timeout_s > 0)) return usage("timeouts must be > 0");
  if (o.stream_share < 0 || o.stream_share > 1 || !std::isfinite(o.stream_share)) {
    return usage("--stream-share must be in [0, 1]");
  }
  Status s = check_length(o.input, "input");
  if (!s) return s;
  s = check_length(o.output, "output");
  if (!s) return s;
  if (o.model.empty()) return usage("--model must not be empty");
  return Status::ok();
}

}  // namespace sluice::bench
