#include "http/error_body.h"

#include "core/json_escape.h"


namespace sluice::http {
namespace {

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  json_escape_append(out, s);
  out.push_back('"');
}

}  // namespace

std::string error_body(std::string_view message, std::string_view type, std::string_view code) {
  std::string out;
  out.reserve(64 + message.size());
  out += "{\"error\":{\"message\":";
  append_json_string(out, message);
  out += ",\"type\":";
  append_json_string(out, type);
  out += ",\"param\":null,\"code\":";
  if (code.empty()) out += "null";
  else append_json_string(out, code);
  out += "}}\n";
  return out;
}

std::string_view error_type_for_status(int status) {
  if (status == 401) return "authentication_error";
  if (status == 403) return "permission_error";
  if (status == 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

}  // namespace sluice::http
