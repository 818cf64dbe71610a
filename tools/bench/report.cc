#include "bench/report.h"

#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <ctime>

#include "http/message.h"
#include "core/json_escape.h"

namespace sluice::bench {
namespace {

void appendf(std::string& out, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void appendf(std::string& out, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n > 0) out.append(buf, std::min<size_t>(static_cast<size_t>(n), sizeof buf - 1));
}

double ms(int64_t ns) { return static_cast<double>(ns) / 1e6; }
double us(double ns) { return ns / 1e3; }

const char* protocol_name(const BenchOptions& o) { return o.http2 ? "HTTP/2" : "HTTP/1.1"; }

double qps(const BenchResult& r) {
  return r.elapsed_s > 0 ? static_cast<double>(r.stats.completed) / r.elapsed_s : 0.0;
}

std::string iso_time(int64_t wall_us) {
  time_t secs = static_cast<time_t>(wall_us / 1'000'000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string s = buf;
  appendf(s, ".%06" PRId64 "Z", wall_us % 1'000'000);
  return s;
}

bool is_secret_header(std::string_view name) {
  for (std::string_view s : {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie",
                             "x-goog-api-key"}) {
    if (http::iequals(name, s)) return true;
  }
  return false;
}

void table_row(std::string& out, const char* name, const Histogram& h) {
  if (h.count() == 0) {
    appendf(out, "  %-9s %10s\n", name, "-");
    return;
  }
  appendf(out, "  %-9s %10.3f %10.3f %10.3f %10.3f %10.3f %10.3f %10" PRIu64 "\n", name, h.mean() / 1e6,
          ms(h.percentile(50)), ms(h.percentile(90)), ms(h.percentile(99)), ms(h.percentile(99.9)),
          ms(h.max()), h.count());
}

void json_string(std::string& out, std::string_view s) {
  out += '"';
  json_escape_append(out, s);
  out += '"';
}

void json_histogram(std::string& out, const char* name, const Histogram& h) {
  appendf(out, "  \"%s\": {\"count\": %" PRIu64, name, h.count());
  appendf(out, ", \"mean\": %.3f, \"min\": %.3f, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f", us(h.mean()),
          us(static_cast<double>(h.min())), us(static_cast<double>(h.percentile(50))),
          us(static_cast<double>(h.percentile(90))), us(static_cast<double>(h.percentile(99))));
  appendf(out, ", \"p99_9\": %.3f, \"max\": %.3f, \"saturated\": %" PRIu64 "},\n",
          us(static_cast<double>(h.percentile(99.9))), us(static_cast<double>(h.max())), h.saturated());
}

void json_length(std::string& out, const char* name, const LengthSpec& l) {
  appendf(out, "    \"%s\": {\"distribution\": \"lognormal\", \"mean\": %g, \"sigma\": %g, \"max\": %" PRId64 "},\n",
          name, l.mean, l.sigma, l.max);
}

}  // namespace

std::string redact_header_arg(std::string_view arg) {
  size_t colon = arg.find(':');
  if (colon == std::string_view::npos) return std::string(arg);
  std::string_view name = arg.substr(0, colon);
  while (!name.empty() && (name.back() == ' ' || name.back() == '\t')) name.remove_suffix(1);
  if (!is_secret_header(name)) return std::string(arg);
  return std::string(arg.substr(0, colon)) + ": <redacted>";
}

std::string format_table(const BenchOptions& o, const BenchResult& r) {
  const Stats& s = r.stats;
  std::string out;
  appendf(out, "sluice-bench %s\n", o.url.c_str());
  appendf(out, "  %s, ", protocol_name(o));
  if (o.closed_loop() && !o.http2) {
    appendf(out, "closed loop, %u connections", o.concurrency);
  } else if (o.closed_loop()) {
    appendf(out, "closed loop, %u requests in flight on %u connection%s", o.concurrency, o.total_connections(),
            o.total_connections() == 1 ? "" : "s");
  } else {
    appendf(out, "open loop at %.1f req/s on %u connections", o.rate, o.connections);
  }
  if (o.http2) appendf(out, " (up to %u streams each)", o.streams_per_connection);
  appendf(out, ", %u thread%s, measured %.2f s after %.2f s warm-up%s\n", o.threads, o.threads == 1 ? "" : "s",
          r.elapsed_s, o.warmup_s, r.interrupted ? " (interrupted)" : "");
  if (o.body_file.empty()) {
    appendf(out, "  mix (seed %" PRIu64 "): input lognormal(mean %g, sigma %g, max %" PRId64
                 "), output lognormal(mean %g, sigma %g, max %" PRId64 "), stream share %.2f\n",
            o.seed, o.input.mean, o.input.sigma, o.input.max, o.output.mean, o.output.sigma, o.output.max,
            o.stream_share);
  } else {
    appendf(out, "  body: %s\n", o.body_file.c_str());
  }
  out += "\n";
  appendf(out, "  requests  %" PRIu64 " completed, %.1f req/s, %" PRIu64 " streams, %" PRIu64 " errors, %" PRIu64
               " connections opened\n\n",
          s.completed, qps(r), s.streams, s.total_errors(), r.connects);
  appendf(out, "  %-9s %10s %10s %10s %10s %10s %10s %10s\n", "(ms)", "mean", "p50", "p90", "p99", "p99.9", "max",
          "count");
  table_row(out, "latency", s.latency);
  if (s.streams > 0) {
    table_row(out, "ttft", s.ttft);
    table_row(out, "gap", s.gap);
  }
  if (!o.closed_loop()) table_row(out, "wait", s.wait);
  out += "\n";
  if (s.streams > 0) {
    appendf(out, "  events    %" PRIu64 " received, %" PRIu64 " with content\n", s.events, s.content_events);
    if (s.fidelity_streams > 0) {
      double ratio = s.fidelity_expected ? 100.0 * static_cast<double>(s.fidelity_received) /
                                               static_cast<double>(s.fidelity_expected)
                                         : 100.0;
      appendf(out, "  fidelity  %.2f%% (%" PRIu64 "/%" PRIu64 " content events), %" PRIu64
                   " streams missing events, %" PRIu64 " with extra\n",
              ratio, s.fidelity_received, s.fidelity_expected, s.streams_missing_events, s.streams_extra_events);
    } else {
      out += "  fidelity  not checked (expected lengths unknown: --body-file without -H 'x-mock-tokens: N')\n";
    }
  }
  out += "  errors   ";
  for (size_t k = 0; k < kErrorKinds; ++k) {
    appendf(out, " %s %" PRIu64, std::string(error_kind_name(static_cast<ErrorKind>(k))).c_str(), s.errors[k]);
  }
  out += "\n";
  bool any_status = false;
  for (size_t st = 0; st < s.status_counts.size(); ++st) {
    if (!s.status_counts[st]) continue;
    if (!any_status) out += "  statuses ";
    any_status = true;
    appendf(out, " %zu: %" PRIu64, st, s.status_counts[st]);
  }
  if (any_status) out += "\n";
  return out;
}

std::string format_json(const BenchOptions& o, const BenchResult& r, std::string_view command_line) {
  const Stats& s = r.stats;
  std::string out = "{\n  \"tool\": \"sluice-bench\",\n  \"schema_version\": 1,\n  \"command_line\": ";
  json_string(out, command_line);
  out += ",\n  \"start_time\": ";
  json_string(out, iso_time(r.start_wall_us));
  appendf(out, ",\n  \"start_time_unix_us\": %" PRId64 ",\n", r.start_wall_us);

  out += "  \"config\": {\n    \"url\": ";
  json_string(out, o.url);
  appendf(out, ",\n    \"mode\": \"%s\",\n", o.closed_loop() ? "closed_loop" : "open_loop");
  appendf(out, "    \"protocol\": \"%s\",\n    \"streams_per_connection\": %u,\n", protocol_name(o),
          o.streams_per_connection);
  appendf(out, "    \"concurrency\": %u,\n    \"rate\": %g,\n    \"connections\": %u,\n    \"threads\": %u,\n",
          o.concurrency, o.rate, o.total_connections(), o.threads);
  appendf(out, "    \"duration_s\": %g,\n    \"requests\": %" PRIu64 ",\n    \"warmup_s\": %g,\n", o.duration_s,
          o.requests, o.warmup_s);
  appendf(out, "    \"timeout_s\": %g,\n    \"connect_timeout_s\": %g,\n    \"seed\": %" PRIu64 ",\n", o.timeout_s,
          o.connect_timeout_s, o.seed);
  json_length(out, "input_tokens", o.input);
  json_length(out, "output_tokens", o.output);
  appendf(out, "    \"stream_share\": %g,\n    \"model\": ", o.stream_share);
  json_string(out, o.model);
  out += ",\n    \"body_file\": ";
  if (o.body_file.empty()) {
    out += "null";
  } else {
    json_string(out, o.body_file);
  }
  out += ",\n    \"headers\": [";
  for (size_t i = 0; i < o.headers.size(); ++i) {
    if (i) out += ", ";
    json_string(out, redact_header_arg(o.headers[i]));
  }
  appendf(out, "],\n    \"insecure\": %s,\n    \"cacert\": ", o.insecure ? "true" : "false");
  if (o.ca_file.empty()) {
    out += "null";
  } else {
    json_string(out, o.ca_file);
  }
  out += "\n  },\n";

  appendf(out, "  \"elapsed_s\": %.6f,\n  \"interrupted\": %s,\n  \"connections_opened\": %" PRIu64 ",\n",
          r.elapsed_s, r.interrupted ? "true" : "false", r.connects);
  appendf(out, "  \"requests\": {\"completed\": %" PRIu64 ", \"qps\": %.3f, \"streams\": %" PRIu64
               ", \"body_bytes\": %" PRIu64 "},\n",
          s.completed, qps(r), s.streams, s.body_bytes);
  json_histogram(out, "latency_us", s.latency);
  json_histogram(out, "ttft_us", s.ttft);
  json_histogram(out, "gap_us", s.gap);
  json_histogram(out, "wait_us", s.wait);
  appendf(out, "  \"events\": {\"received\": %" PRIu64 ", \"content\": %" PRIu64 "},\n", s.events,
          s.content_events);
  appendf(out, "  \"fidelity\": {\"streams_checked\": %" PRIu64 ", \"expected\": %" PRIu64 ", \"received\": %" PRIu64,
          s.fidelity_streams, s.fidelity_expected, s.fidelity_received);
  if (s.fidelity_expected) {
    appendf(out, ", \"ratio\": %.6f",
            static_cast<double>(s.fidelity_received) / static_cast<double>(s.fidelity_expected));
  } else {
    out += ", \"ratio\": null";
  }
  appendf(out, ", \"streams_missing_events\": %" PRIu64 ", \"streams_extra_events\": %" PRIu64 "},\n",
          s.streams_missing_events, s.streams_extra_events);
  appendf(out, "  \"errors\": {\"total\": %" PRIu64, s.total_errors());
  for (size_t k = 0; k < kErrorKinds; ++k) {
    appendf(out, ", \"%s\": %" PRIu64, std::string(error_kind_name(static_cast<ErrorKind>(k))).c_str(), s.errors[k]);
  }
  out += "},\n  \"status_counts\": {";
  bool first = true;
  for (size_t st = 0; st < s.status_counts.size(); ++st) {
    if (!s.status_counts[st]) continue;
    appendf(out, "%s\"%zu\": %" PRIu64, first ? "" : ", ", st, s.status_counts[st]);
    first = false;
  }
  out += "}\n}\n";
  return out;
}

}  // namespace sluice::bench
