#include "bench/request_builder.h"

#include <charconv>

#include "http/message.h"

namespace sluice::bench {
namespace {

constexpr std::string_view kWords =
    "the river runs past the old mill and under the stone bridge where "
    "children watch boats drift slowly toward the harbour at dusk while "
    "gulls circle above the quiet water and lamps come on along the quay ";

void append_int(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

bool valid_header_text(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u == '\r' || u == '\n' || u == 0) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

Result<RequestTemplate> RequestTemplate::make(std::string path, std::string authority, std::string model,
                                              const std::vector<std::string>& header_args,
                                              std::optional<std::string> fixed_body, int64_t max_input_tokens) {
  RequestTemplate t;
  t.path = std::move(path);
  t.authority = std::move(authority);
  t.model = std::move(model);
  t.fixed_body = std::move(fixed_body);
  t.max_input_tokens = max_input_tokens;
  for (char c : t.model) {
    if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) {
      return Status(Errc::kInvalid, "--model: quotes, backslashes and control characters are not allowed");
    }
  }
  for (const std::string& arg : header_args) {
    size_t colon = arg.find(':');
    std::string_view name = colon == std::string::npos ? std::string_view{} : trim(std::string_view(arg).substr(0, colon));
    if (name.empty() || name.find_first_of(" \t") != std::string_view::npos) {
      return Status(Errc::kInvalid, "-H '" + arg + "': expected 'name: value'");
    }
    std::string_view value = trim(std::string_view(arg).substr(colon + 1));
    if (!valid_header_text(value)) return Status(Errc::kInvalid, "-H '" + arg + "': CR, LF or NUL in value");
    if (http::iequals(name, "host") || http::iequals(name, "content-length") ||
        http::iequals(name, "transfer-encoding") || http::iequals(name, "connection")) {
      return Status(Errc::kInvalid, "-H '" + arg + "': the bench sets this header itself");
    }
    if (http::iequals(name, "x-mock-tokens")) {
      int64_t v = -1;
      auto r = std::from_chars(value.data(), value.data() + value.size(), v);
      if (r.ec != std::errc() || r.ptr != value.data() + value.size() || v < 0) {
        return Status(Errc::kInvalid, "-H '" + arg + "': x-mock-tokens needs a count");
      }
      t.user_mock_tokens = v;
    }
    if (http::iequals(name, "content-type")) t.user_content_type = true;
    t.headers.emplace_back(std::string(name), std::string(value));
  }
  if (!t.fixed_body) {
    t.prompt_text.reserve(static_cast<size_t>(4 * max_input_tokens));
    while (t.prompt_text.size() < static_cast<size_t>(4 * max_input_tokens)) t.prompt_text += kWords;
    t.prompt_text.resize(static_cast<size_t>(4 * max_input_tokens));
  }
  return t;
}

RequestBuilder::RequestBuilder(const RequestTemplate& t) : t_(t) {
  if (!t_.user_content_type) fields_.push_back({"content-type", "application/json"});
  for (const auto& [name, value] : t_.headers) fields_.push_back({name, value});
  fixed_fields_ = fields_.size();
  if (t_.user_mock_tokens < 0 && !t_.fixed_body) fields_.push_back({"x-mock-tokens", {}});
  if (!t_.fixed_body) body_.reserve(128 + t_.model.size() + t_.prompt_text.size());
}

OutgoingRequest RequestBuilder::build(const RequestShape& shape) {
  OutgoingRequest r;
  r.path = t_.path;
  r.authority = t_.authority;
  r.headers = fields_;
  if (t_.fixed_body) {
    r.body = *t_.fixed_body;
    expected_ = t_.user_mock_tokens;
    return r;
  }
  const int64_t out = t_.user_mock_tokens >= 0 ? t_.user_mock_tokens : shape.output_tokens;
  expected_ = out;
  if (t_.user_mock_tokens < 0) {
    auto res = std::to_chars(tokens_text_, tokens_text_ + sizeof tokens_text_, out);
    fields_[fixed_fields_].value = std::string_view(tokens_text_, static_cast<size_t>(res.ptr - tokens_text_));
  }
  body_.clear();
  body_ += "{\"model\":\"";
  body_ += t_.model;
  body_ += shape.stream ? "\",\"stream\":true" : "\",\"stream\":false";
  body_ += ",\"max_tokens\":";
  append_int(body_, out);
  body_ += ",\"messages\":[{\"role\":\"user\",\"content\":\"";
  auto n = static_cast<size_t>(4 * std::min(shape.input_tokens, t_.max_input_tokens));
  body_.append(t_.prompt_text.data(), n);
  body_ += "\"}]}";
  r.body = body_;
  return r;
}

}  // namespace sluice::bench
