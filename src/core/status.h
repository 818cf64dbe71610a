// core/: what every other folder builds on: errors as values, the clock, buffers.
//
// On the request path errors are values (Status, Result<T>), never exceptions
// thrown across the event loop. See DESIGN.md section 5.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace sluice {

enum class Errc : uint8_t {
  kOk = 0,
  kInvalid,         // malformed input (client, upstream or config)
  kHeaderTooLarge,  // header block over its limit
  kBodyTooLarge,    // body over its limit
  kUnsupported,     // valid but not implemented (e.g. a transfer coding)
  kTimeout,
  kClosed,          // the peer closed or reset
  kIo,              // other socket or TLS failure
  kUnavailable,     // nothing to send it to (no healthy endpoint, overload)
  kNotFound,
  kCancelled,
  kInternal,        // a broken invariant: a bug
};

std::string_view errc_name(Errc c);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Errc code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return {}; }

  bool is_ok() const { return code_ == Errc::kOk; }
  explicit operator bool() const { return is_ok(); }
  Errc code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  Errc code_ = Errc::kOk;
  std::string message_;
};

// A value or the Status saying why there is none. Small on purpose: C++20 has
// no std::expected.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status s) : v_(std::move(s)) {}     // NOLINT(google-explicit-constructor)

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Status& status() const { return std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace sluice
