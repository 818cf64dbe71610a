#pragma once

#include <string>
#include <string_view>

namespace sluice::http {

// The JSON error shape clients of an OpenAI-compatible API expect:
// {"error":{"message":"...","type":"...","param":null,"code":"..."}}.
// `message` is escaped; an empty `code` is written as null.
std::string error_body(std::string_view message, std::string_view type, std::string_view code);

// The OpenAI error "type" conventionally used for a status (OpenAI answers an
// unknown model or path with 404 invalid_request_error).
std::string_view error_type_for_status(int status);

}  // namespace sluice::http
