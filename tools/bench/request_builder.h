// Turns a RequestShape into an OpenAI chat request: the prompt is cut from a
// fixed text to 4 bytes per input token (the gateway's own estimate, see
// llm/token_estimate.h), and the output length goes to the server twice: as
// max_tokens and as x-mock-tokens, which sluice-mock generates exactly, so
// the bench knows how many content events each stream must carry.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bench/client_connection.h"
#include "bench/request_mix.h"
#include "core/status.h"

namespace sluice::bench {

// What every request of a run shares; built once, read by all threads.
struct RequestTemplate {
  std::string path;
  std::string authority;
  std::string model = "mock-1";
  std::vector<std::pair<std::string, std::string>> headers;  // from -H, in order
  std::optional<std::string> fixed_body;                      // --body-file
  int64_t max_input_tokens = 0;
  std::string prompt_text;  // 4 * max_input_tokens bytes of plain ASCII words

  // -1 unless the user set x-mock-tokens with -H (then it wins over the mix).
  int64_t user_mock_tokens = -1;
  bool user_content_type = false;

  // Parses "name: value" header arguments and prepares the prompt text.
  static Result<RequestTemplate> make(std::string path, std::string authority, std::string model,
                                      const std::vector<std::string>& header_args,
                                      std::optional<std::string> fixed_body, int64_t max_input_tokens);
};

// Per connection: the buffers of the request being sent, reused.
class RequestBuilder {
 public:
  explicit RequestBuilder(const RequestTemplate& t);
  RequestBuilder(const RequestBuilder&) = delete;  // fields_ points into this object
  RequestBuilder& operator=(const RequestBuilder&) = delete;

  // Views in the result stay valid until the next build().
  OutgoingRequest build(const RequestShape& shape);

  // Content events the server should send for the last built request if it
  // streams, or -1 when unknown (--body-file without -H x-mock-tokens).
  int64_t expected_content_events() const { return expected_; }

 private:
  const RequestTemplate& t_;
  std::string body_;
  char tokens_text_[24];
  std::vector<HeaderField> fields_;
  size_t fixed_fields_ = 0;
  int64_t expected_ = -1;
};

}  // namespace sluice::bench
