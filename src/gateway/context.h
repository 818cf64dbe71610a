// gateway/: the request pipeline. The only folder that knows codecs, LLM
// logic, upstreams, policy and observability together.
#pragma once

#include <cstdint>
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "gateway/caller_limits.h"
#include "gateway/settings.h"
#include "http/exchange.h"
#include "llm/request_inspector.h"
#include "llm/usage.h"
#include "policy/concurrency.h"
#include "policy/header_rules.h"

namespace sluice::upstream {
class Call;
}

namespace sluice::gateway {

class WorkerContext;
struct WorkerGeneration;
struct SharedPolicy;

// Everything one request accumulates on its way through the stages.
struct RequestContext {
  RequestContext(http::Exchange& e, WorkerContext* wc, std::shared_ptr<const Settings> s,
                 WorkerGeneration* g = nullptr, const SharedPolicy* p = nullptr)
      : ex(e), w(wc), settings(std::move(s)), gen(g), policy(p) {}

  http::Exchange& ex;
  WorkerContext* w;  // null in stage unit tests
  // The snapshot this request started with. From a worker it shares the
  // ownership of the worker's generation, which keeps `gen` alive too.
  std::shared_ptr<const Settings> settings;
  WorkerGeneration* gen;        // null in stage unit tests
  const SharedPolicy* policy;   // the snapshot's admission policy; null: none

  std::string request_id;
  std::string body;
  bool body_read = false;
  llm::ApiKind kind = llm::ApiKind::kOther;
  llm::RequestInfo info;
  const ModelRoute* route = nullptr;
  const ApiKey* principal = nullptr;  // the caller's key (points into the settings); null: auth is off
  bool strip_usage_chunk = false;  // the gateway asked upstream for usage the client did not want

  // Outcome, filled by the stage that answers or by the forwarder.
  int status = 0;
  std::string error_code;  // empty on success
  std::string error_detail;  // for the log only (e.g. the upstream address that failed); never sent to clients
  llm::Usage usage;
  bool usage_estimated = false;
  int64_t ttft_ns = -1;          // request start -> first body byte to the client
  int64_t upstream_wait_ns = 0;  // time spent waiting on the upstream
  int64_t events = 0;            // SSE events forwarded
  std::string_view upstream_name;  // points into the settings snapshot
  std::string_view endpoint;       // points into the worker's pool
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;

  // While the request runs: the upstream call in use (the forwarder's), and
  // why the gateway itself cut the request, if it did (e.g. "drain_deadline").
  upstream::Call* live_call = nullptr;
  const char* cut = nullptr;
  // The worker's list of running requests (WorkerContext::cut_live_requests).
  RequestContext* live_prev = nullptr;
  RequestContext* live_next = nullptr;

  // What the request charged to its key's and team's limits (settled in settle()).
  Reservation reservation;

  // A header rule the request broke (for the audit log and its metric).
  std::optional<policy::HeaderViolation> header_violation;
  // Concurrency slots held until the request ends (released by ~Slots).
  struct Slots {
    std::array<policy::ConcurrencyLimit*, 5> held{};
    size_t count = 0;
    size_t next_gate = 0;  // the limit stage's progress through the gates
    Slots() = default;
    Slots(const Slots&) = delete;
    Slots& operator=(const Slots&) = delete;
    ~Slots() {
      while (count > 0) held[--count]->release();
    }
  } slots;
};

}  // namespace sluice::gateway
