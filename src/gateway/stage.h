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

  static StageResult next() { return {}; }
  static StageResult suspend() { return {StageAction::kSuspend, 0, {}, {}, {}, {}}; }
  static StageResult error(int status, std::string code, std::string message) {
    return {StageAction::kRespond, status, std::move(code), std::move(message), {}, {}};
  }
  static StageResult reply(int status, std::string body) {
    return {StageAction::kRespond, status, {}, {}, std::move(body), {}};
  }
  static StageResult method_not_allowed(std::string_view path, std::string_view allow) {
    return {StageAction::kRespond, 405, "method_not_allowed",
            "use " + std::string(allow) + " for " + std::string(path), {}, allow};
  }
};

class Stage {
 public:
  virtual ~Stage() = default;
  virtual std::string_view name() const = 0;
  virtual StageResult process(RequestContext& rc) = 0;
  virtual boost::asio::awaitable<StageResult> resume(RequestContext& rc);
};

// The stages in order: admit, validate, inspect (reads the body), route.
// `draining` is read by admit at each request.
std::vector<std::unique_ptr<Stage>> make_default_stages(const bool* draining);

}  // namespace sluice::gateway
