// The access log: one JSON object per line, per finished request.
//
// Each worker appends to its own AccessLogBuffer without locking. A buffer
// that reaches Options::flush_bytes, or that maybe_flush() finds older than
// Options::flush_interval_ns, is handed as one batch to a single writer thread
// (one mutex acquisition per batch, not per line). The writer alone touches
// the sink. A worker never waits for the sink: when the batches queued for the
// writer exceed Options::max_pending_bytes, new batches are dropped and their
// lines counted in dropped_lines().
//
//   auto& buf = log->add_buffer();                // once per worker
//   buf.begin().str("request_id", id).num("status", 200).boolean("stream", true)
//       .num_f("ttft_ms", 12.5).end();            // {"ts":"...","request_id":...}
//   buf.maybe_flush(clock.now_ns());              // from a periodic worker timer
#pragma once

#include <atomic>
#include <cassert>
#include <charconv>
#include <concepts>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/status.h"
#include "core/json_escape.h"

namespace sluice::obs {

class AccessLogBuffer;

// Writes the fields of one JSON object into a buffer. String values are
// escaped with json_escape_append; keys must be plain ASCII (see field()). The line is closed by end() or, if
// end() was not called, by the destructor.
class JsonLine {
 public:
  JsonLine(const JsonLine&) = delete;
  JsonLine& operator=(const JsonLine&) = delete;
  ~JsonLine() {
    if (!ended_) end();
  }

  JsonLine& str(std::string_view key, std::string_view value) {
    field(key);
    *out_ += '"';
    json_escape_append(*out_, value);
    *out_ += '"';
    return *this;
  }
  template <std::integral T>
    requires(!std::same_as<T, bool>)
  JsonLine& num(std::string_view key, T value) {
    field(key);
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, value);
    out_->append(buf, r.ptr);
    return *this;
  }
  // Shortest round-trip form; NaN and infinities (not JSON) become null.
  JsonLine& num_f(std::string_view key, double value);
  JsonLine& boolean(std::string_view key, bool value) {
    field(key);
    *out_ += value ? "true" : "false";
    return *this;
  }
  JsonLine& null(std::string_view key) {
    field(key);
    *out_ += "null";
    return *this;
  }
  void end();

 private:
  friend class AccessLogBuffer;
  explicit JsonLine(AccessLogBuffer& buffer);
  // Keys come from our code, not from clients, so they are copied as they
  // are: plain ASCII without '"', '\\' or control characters.
  void field(std::string_view key) {
    assert(plain_key(key));
    out_->append(",\"", 2);
    out_->append(key);
    out_->append("\":", 2);
  }
  static bool plain_key(std::string_view key) {
    for (char c : key) {
      if (c < 0x20 || c == '"' || c == '\\' || static_cast<unsigned char>(c) >= 0x80) return false;
    }
    return true;
  }

  AccessLogBuffer& buffer_;
  std::string* out_;
  bool ended_ = false;
};

class AccessLog;

// One worker's lines. Used by its owner thread only.
class AccessLogBuffer {
 public:
  AccessLogBuffer(const AccessLogBuffer&) = delete;
  AccessLogBuffer& operator=(const AccessLogBuffer&) = delete;

  // Starts a line whose first field is "ts": the wall-clock time (RFC 3339,
  // UTC, milliseconds), now or at `wall_us` microseconds since the epoch.
  // One line at a time: end the previous line before beginning the next.
  JsonLine begin();
  JsonLine begin(int64_t wall_us);

  // Flushes when the buffer holds flush_bytes or the last flush was at least
  // flush_interval_ns ago (`now_ns` is monotonic). Call it from a periodic
  // timer. An empty buffer only restarts the interval.
  void maybe_flush(int64_t now_ns);
  // Hands the buffered lines to the writer now.
  void flush();

  // False for the "off" sink: callers may skip building lines altogether.
  bool enabled() const;
  size_t buffered_bytes() const { return data_.size(); }

 private:
  friend class AccessLog;
  friend class JsonLine;
  explicit AccessLogBuffer(AccessLog& log);
  void line_done();

  AccessLog& log_;
  std::string data_;
  uint32_t lines_ = 0;
  int64_t last_flush_ns_ = 0;
  bool line_open_ = false;  // checks the one-line-at-a-time rule in debug builds
  int64_t ts_second_ = -1;  // the second ts_prefix_ was formatted for
  char ts_prefix_[19] = {};  // "YYYY-MM-DDTHH:MM:SS"
};

class AccessLog {
 public:
  struct Options {
    size_t flush_bytes = 16 * 1024;
    int64_t flush_interval_ns = 200'000'000;
    // Bound on bytes handed to the writer and not yet written.
    size_t max_pending_bytes = size_t{64} << 20;
    // How long flush_all_and_stop() keeps trying a sink that does not drain.
    int64_t stop_timeout_ns = 2'000'000'000;
  };

  // `sink` is "off", "stdout", "stderr", or a file path opened with
  // O_WRONLY|O_CREAT|O_APPEND (mode 0644). A path that cannot be opened is an
  // Errc::kIo Status naming the path and the reason; nothing throws.
  static Result<std::unique_ptr<AccessLog>> open(std::string_view sink, Options options);
  static Result<std::unique_ptr<AccessLog>> open(std::string_view sink) {
    return open(sink, Options{});
  }
  // Writes to a descriptor the caller opened (a pipe, a socket). The log
  // closes it on destruction if `owned`.
  static std::unique_ptr<AccessLog> from_fd(int fd, bool owned, Options options);

  ~AccessLog();  // flush_all_and_stop()
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  // One per worker; the address is stable for the log's lifetime. Thread-safe.
  AccessLogBuffer& add_buffer();
  bool enabled() const { return enabled_; }
  const Options& options() const { return options_; }

  // Flushes every buffer, writes out what is queued and joins the writer.
  // When the sink does not drain, gives up after stop_timeout_ns and counts
  // the rest as dropped. Call once worker threads have stopped (buffers are
  // not thread-safe). Idempotent.
  void flush_all_and_stop();
  // Blocks until every batch handed over before the call is written or
  // dropped. Used by tests and before reporting a reopen as done.
  void sync();
  // Reopens a file sink after rotation (e.g. on SIGHUP); the writer switches
  // before its next batch. A no-op for off/stdout/stderr/from_fd logs.
  Status reopen();

  uint64_t dropped_lines() const;  // refused by the queue bound or failed to write
  uint64_t written_lines() const;
  uint64_t write_errors() const;  // failed write(2) calls and stop timeouts

 private:
  friend class AccessLogBuffer;
  struct Batch {
    std::string data;
    uint32_t lines;
  };

  AccessLog(int fd, bool owned, std::string path, Options options);
  // Takes `data` (leaving it empty, with capacity when a spare is at hand).
  void submit(std::string& data, uint32_t lines);
  void run_writer();
  bool write_batch(const std::string& data);

  const Options options_;
  const std::string path_;  // non-empty only for file sinks
  const bool enabled_;
  const bool owned_;
  int fd_;                     // -1 when off; the writer's alone once it runs
  bool regular_file_ = false;  // writer-only, like fd_
  bool socket_ = false;        // writer-only, like fd_

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // writer waits for batches
  std::condition_variable done_cv_;  // sync() waits for progress
  std::deque<Batch> queue_;
  std::vector<std::string> spares_;  // written batches' storage, reused
  size_t pending_bytes_ = 0;
  uint64_t submitted_ = 0, finished_ = 0;  // batches, for sync()
  uint64_t dropped_ = 0, written_ = 0, errors_ = 0;
  int reopened_fd_ = -1;
  bool stopping_ = false;
  bool stopped_ = false;
  // Monotonic time after which the writer gives up on a stalled sink; read by
  // the writer between write attempts without taking mu_.
  std::atomic<int64_t> stop_deadline_ns_{INT64_MAX};
  std::deque<std::unique_ptr<AccessLogBuffer>> buffers_;
  std::thread writer_;
};

}  // namespace sluice::obs
