#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "gateway/context.h"

namespace sluice::gateway {

// Three outcomes, as in Envoy's filters: go on, answer locally, or suspend
// for asynchronous work (then resume() runs and returns the final outcome).
enum class StageAction { kContinue, kRespond, kSuspend };

struct StageResult {
  StageAction action = StageAction::kContinue;
  int status = 0;
  std::string code;     // OpenAI error code, e.g. "model_not_found"
  std::string message;  // client-facing
  std::string body;     // a full JSON body instead of an error (e.g. GET /v1/models)
  std::string_view allow;  // 405: the methods the path takes (the Allow header)
  int retry_after_s = 0;   // 429/503: the Retry-After header, when > 0

  static StageResult next() { return {}; }
  static StageResult suspend() { return {StageAction::kSuspend}; }
  static StageResult error(int status, std::string code, std::string message) {
    return {StageAction::kRespond, status, std::move(code), std::move(message)};
  }
  static StageResult reply(int status, std::string body) {
    return {StageAction::kRespond, status, {}, {}, std::move(body)};
  }
  static StageResult method_not_allowed(std::string_view path, std::string_view allow) {
    return {StageAction::kRespond, 405, "method_not_allowed",
            "use " + std::string(allow) + " for " + std::string(path), {}, allow};
  }
  static StageResult overloaded(int status, std::string message, int retry_after_s) {
    return {StageAction::kRespond, status, "overloaded", std::move(message), {}, {}, retry_after_s};
  }
};

class Stage {
 public:
  virtual ~Stage() = default;
  virtual std::string_view name() const = 0;
  virtual StageResult process(RequestContext& rc) = 0;
  virtual boost::asio::awaitable<StageResult> resume(RequestContext& rc);
};

struct SharedPolicy;

// Request headers the gateway handles itself and never forwards as they came:
// hop-by-hop and framing fields, the client's credentials for the gateway,
// the request id. Route allow-lists do not apply to them.
bool gateway_owned_header(std::string_view name);

// The stages in order: admit (memory shedding), validate (path, method,
// header rules), authenticate (API key -> principal), inspect (reads the
// body), route (model, allow-lists), limit (concurrency, may wait in a
// queue). The shedding flag and the limits come from the request's snapshot
// (RequestContext::policy). A request that reaches a draining gateway (on a
// connection accepted before its listeners closed, an HTTP/2 stream before
// the final GOAWAY) is served: the drain deadline bounds it.
std::vector<std::unique_ptr<Stage>> make_default_stages();

}  // namespace sluice::gateway
