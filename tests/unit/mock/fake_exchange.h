// An in-memory Exchange for handler tests: the request comes from strings, the
// response is recorded (head, each write with its time, finish, reset), and the
// test can make the client go away (abort) at a chosen moment.
#pragma once

#include <chrono>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "http/exchange.h"

namespace sluice::testing {

namespace asio = boost::asio;

class FakeExchange final : public http::Exchange {
 public:
  using Clock = std::chrono::steady_clock;

  FakeExchange(asio::io_context& ctx, std::string method, std::string target,
               std::vector<std::pair<std::string, std::string>> headers = {},
               std::string body = {})
      : ctx_(ctx), body_(std::move(body)) {
    // RequestHead holds views: keep the strings in stable storage.
    head_.method = keep(std::move(method));
    head_.target = keep(std::move(target));
    for (auto& [name, value] : headers) {
      std::string_view n = keep(std::move(name));
      head_.headers.push_back({n, keep(std::move(value))});
    }
    head_.content_length = body_.size();
    created_ = Clock::now();
  }

  std::string_view protocol() const override { return "HTTP/1.1"; }

  asio::awaitable<Status> read_body(std::string& out, uint64_t limit) override {
    ++body_reads;
    if (body_.size() > limit) co_return Status(Errc::kBodyTooLarge, "body too large");
    out = body_;
    co_return Status::ok();
  }

  asio::awaitable<Status> send_head(int status, std::span<const http::Header> headers,
                                    std::optional<uint64_t> content_length) override {
    if (head_sent_) co_return Status(Errc::kInternal, "head sent twice");
    head_sent_ = true;
    status_sent_ = status;
    for (const auto& h : headers) resp_headers.emplace_back(h.name, h.value);
    resp_content_length = content_length;
    head_time = Clock::now();
    co_return Status::ok();
  }

  asio::awaitable<Status> write(std::string_view data) override {
    if (!head_sent_ || finished || reset_called) co_return Status(Errc::kInternal, "bad write");
    if (aborted()) co_return Status(Errc::kClosed, "client gone");
    writes.emplace_back(data);
    write_times.push_back(Clock::now());
    body_bytes_sent_ += data.size();
    if (abort_after_writes && writes.size() >= *abort_after_writes) notify_aborted();
    co_return Status::ok();
  }

  asio::awaitable<Status> finish() override {
    if (!head_sent_ || finished || reset_called) co_return Status(Errc::kInternal, "bad finish");
    finished = true;
    co_return Status::ok();
  }

  void reset() override { reset_called = true; }

  asio::any_io_executor executor() const override { return ctx_.get_executor(); }

  // The client goes away now.
  void abort() { notify_aborted(); }

  // ---- inspection ----
  std::string body() const {
    std::string b;
    for (const auto& w : writes) b += w;
    return b;
  }
  std::string header(std::string_view name) const {
    for (const auto& [n, v] : resp_headers) {
      if (http::iequals(n, name)) return v;
    }
    return {};
  }
  bool has_header(std::string_view name) const {
    for (const auto& h : resp_headers) {
      if (http::iequals(h.first, name)) return true;
    }
    return false;
  }
  // The payloads of the SSE events ("data: X\n\n" -> "X"); "" marks a
  // malformed event.
  std::vector<std::string> events() const {
    std::vector<std::string> out;
    std::string b = body();
    size_t pos = 0;
    while (pos < b.size()) {
      size_t end = b.find("\n\n", pos);
      if (end == std::string::npos) {
        out.emplace_back();
        break;
      }
      std::string_view ev(b.data() + pos, end - pos);
      out.emplace_back(ev.starts_with("data: ") ? std::string(ev.substr(6)) : std::string());
      pos = end + 2;
    }
    return out;
  }
  double ms_since_created(Clock::time_point t) const {
    return std::chrono::duration<double, std::milli>(t - created_).count();
  }

  std::vector<std::pair<std::string, std::string>> resp_headers;
  std::optional<uint64_t> resp_content_length;
  std::vector<std::string> writes;
  std::vector<Clock::time_point> write_times;
  Clock::time_point head_time{};
  bool finished = false;
  bool reset_called = false;
  int body_reads = 0;
  std::optional<size_t> abort_after_writes;  // the client leaves after this many writes

 private:
  std::string_view keep(std::string s) { return storage_.emplace_back(std::move(s)); }

  asio::io_context& ctx_;
  std::string body_;
  std::deque<std::string> storage_;
  Clock::time_point created_;
};

}  // namespace sluice::testing
