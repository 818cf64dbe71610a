// sluice-bench: command line -> BenchOptions -> run -> table (+ JSON).
#include <cstdio>
#include <fstream>
#include <string>

#include <CLI/CLI.hpp>

#include "bench/options.h"
#include "bench/report.h"
#include "bench/runner.h"

namespace {

// The command line for the JSON record, shell-quoted, credentials redacted.
std::string command_line(int argc, char** argv) {
  std::string out;
  bool header_next = false;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (header_next) {
      a = sluice::bench::redact_header_arg(a);
    } else if (a.starts_with("--header=")) {
      a = "--header=" + sluice::bench::redact_header_arg(a.substr(9));
    } else if (a.starts_with("-H") && a.size() > 2) {
      a = "-H" + sluice::bench::redact_header_arg(a.substr(2));
    }
    header_next = a == "-H" || a == "--header";
    if (i) out += ' ';
    if (!a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,@%+") ==
                          std::string::npos) {
      out += a;
    } else {
      out += '\'';
      for (char c : a) {
        if (c == '\'') {
          out += "'\\''";
        } else {
          out += c;
        }
      }
      out += '\'';
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using sluice::bench::BenchOptions;
  BenchOptions o;
  std::string json_file;
  CLI::App app{
      "sluice-bench: an LLM-aware HTTP load generator for OpenAI-compatible chat endpoints.\n"
      "Closed loop (--concurrency) or open loop (--rate, latency measured from each request's intended\n"
      "send time). Prompt and output lengths are drawn per request from truncated log-normal distributions:\n"
      "X = exp(mu + sigma*Z), mu = ln(mean) - sigma^2/2 (so `mean` is the untruncated mean, `sigma` the\n"
      "standard deviation of ln X), rounded, redrawn when outside [1, max]. The prompt is 4 bytes per\n"
      "input token; the output length is sent as max_tokens and x-mock-tokens. HTTP/1.1 by default;\n"
      "--h2 multiplexes requests over HTTP/2 connections (--streams per connection)."};
  app.add_option("url", o.url, "http[s]://host[:port][/path] (path default /v1/chat/completions)")->required();
  app.add_option("-c,--concurrency", o.concurrency, "closed loop: requests in flight, each sending the next when it completes; HTTP/1.1: one connection each, --h2: ceil(c / --streams) connections (default 1)");
  app.add_option("-r,--rate", o.rate, "open loop: requests/s at fixed intended send times, over all threads");
  app.add_option("--connections", o.connections, "open loop: connection pool size (default 64); with --h2 each carries up to --streams requests at once");
  app.add_flag("--h2", o.http2, "HTTP/2: h2c with prior knowledge for http://, ALPN h2 for https://");
  app.add_option("-m,--streams", o.streams_per_connection, "with --h2: at most this many requests in flight per connection, like h2load -m (fewer if the server's SETTINGS_MAX_CONCURRENT_STREAMS is lower)")
      ->capture_default_str();
  app.add_option("-t,--threads", o.threads, "event-loop threads, each with its own share of the connections")->capture_default_str();
  app.add_option("-d,--duration", o.duration_s, "seconds of measured load after warm-up (default 10 unless --requests)");
  app.add_option("-n,--requests", o.requests, "stop after this many measured requests");
  app.add_option("--warmup", o.warmup_s, "seconds of load before measuring starts")->capture_default_str();
  app.add_option("--timeout", o.timeout_s, "seconds per request, send to last byte")->capture_default_str();
  app.add_option("--connect-timeout", o.connect_timeout_s, "seconds per connect (+ TLS handshake)")->capture_default_str();
  app.add_option("--seed", o.seed, "seed of the request mix")->capture_default_str();
  app.add_option("--input-mean", o.input.mean, "prompt tokens: mean of the log-normal")->capture_default_str();
  app.add_option("--input-sigma", o.input.sigma, "prompt tokens: sigma (std. dev. of ln X)")->capture_default_str();
  app.add_option("--input-max", o.input.max, "prompt tokens: upper bound")->capture_default_str();
  app.add_option("--output-mean", o.output.mean, "output tokens: mean of the log-normal")->capture_default_str();
  app.add_option("--output-sigma", o.output.sigma, "output tokens: sigma (std. dev. of ln X)")->capture_default_str();
  app.add_option("--output-max", o.output.max, "output tokens: upper bound")->capture_default_str();
  app.add_option("--stream-share", o.stream_share, "share of requests with \"stream\":true, 0..1")->capture_default_str();
  app.add_option("--model", o.model, "model name in the request body")->capture_default_str();
  app.add_option("-H,--header", o.headers, "extra request header 'name: value' (repeatable), e.g. 'x-mock-itl-ms: 5' or 'authorization: Bearer KEY'");
  app.add_option("--body-file", o.body_file, "send this file as every request body instead of generated ones");
  app.add_flag("-k,--insecure", o.insecure, "https: do not verify the server certificate");
  app.add_option("--cacert", o.ca_file, "https: verify the server against the CAs in this PEM file instead of the system store");
  app.add_option("--json", json_file, "also write every figure as JSON to this file");
  CLI11_PARSE(app, argc, argv);

  sluice::Status st = sluice::bench::validate_options(o);
  if (!st) {
    std::fprintf(stderr, "sluice-bench: %s\nRun with --help for usage.\n", st.message().c_str());
    return 2;
  }
  auto r = sluice::bench::run_bench(o, {.handle_signals = true});
  if (!r) {
    std::fprintf(stderr, "sluice-bench: %s\n", r.status().message().c_str());
    return 1;
  }
  std::fputs(sluice::bench::format_table(o, *r).c_str(), stdout);
  if (!json_file.empty()) {
    std::ofstream out(json_file);
    out << sluice::bench::format_json(o, *r, command_line(argc, argv));
    if (!out) {
      std::fprintf(stderr, "sluice-bench: cannot write %s\n", json_file.c_str());
      return 1;
    }
  }
  return 0;
}
