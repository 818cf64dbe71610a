#include "obs/access_log.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <iterator>
#include <utility>

#include <fmt/format.h>

#include "core/clock.h"

namespace sluice::obs {

// ---- JsonLine --------------------------------------------------------------

JsonLine::JsonLine(AccessLogBuffer& buffer) : buffer_(buffer), out_(&buffer.data_) {}

JsonLine& JsonLine::num_f(std::string_view key, double value) {
  field(key);
  if (!std::isfinite(value)) {
    *out_ += "null";
    return *this;
  }
  // fmt's shortest round-trip formatting is several times cheaper than
  // libstdc++'s std::to_chars(double) and prints the same digits.
  fmt::format_to(std::back_inserter(*out_), "{}", value);
  return *this;
}

void JsonLine::end() {
  if (ended_) return;
  ended_ = true;
  *out_ += "}\n";
  buffer_.line_done();
}

// ---- AccessLogBuffer -------------------------------------------------------

namespace {

void put2(char* p, int v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}

}  // namespace

AccessLogBuffer::AccessLogBuffer(AccessLog& log) : log_(log) {
  if (log.enabled()) data_.reserve(log.options().flush_bytes + 1024);
}

bool AccessLogBuffer::enabled() const { return log_.enabled(); }

JsonLine AccessLogBuffer::begin() { return begin(wall_us()); }

JsonLine AccessLogBuffer::begin(int64_t wall_us) {
  using namespace std::chrono;
  const int64_t sec = wall_us >= 0 ? wall_us / 1'000'000 : -((-wall_us + 999'999) / 1'000'000);
  const int ms = static_cast<int>((wall_us - sec * 1'000'000) / 1000);
  if (sec != ts_second_) {
    // Formatting a date is the costly part; lines within one second share it.
    const auto tp = sys_seconds(seconds(sec));
    const auto day = floor<days>(tp);
    const year_month_day ymd(day);
    const hh_mm_ss hms(tp - day);
    const int y = static_cast<int>(ymd.year());
    ts_prefix_[0] = static_cast<char>('0' + y / 1000 % 10);
    ts_prefix_[1] = static_cast<char>('0' + y / 100 % 10);
    put2(ts_prefix_ + 2, y % 100);
    ts_prefix_[4] = '-';
    put2(ts_prefix_ + 5, static_cast<int>(static_cast<unsigned>(ymd.month())));
    ts_prefix_[7] = '-';
    put2(ts_prefix_ + 8, static_cast<int>(static_cast<unsigned>(ymd.day())));
    ts_prefix_[10] = 'T';
    put2(ts_prefix_ + 11, static_cast<int>(hms.hours().count()));
    ts_prefix_[13] = ':';
    put2(ts_prefix_ + 14, static_cast<int>(hms.minutes().count()));
    ts_prefix_[16] = ':';
    put2(ts_prefix_ + 17, static_cast<int>(hms.seconds().count()));
    ts_second_ = sec;
  }
  assert(!line_open_ && "begin() while another line is open");
  line_open_ = true;
  char frac[7] = {'.', static_cast<char>('0' + ms / 100), 0, 0, 'Z', '"'};
  put2(frac + 2, ms % 100);
  data_ += "{\"ts\":\"";
  data_.append(ts_prefix_, sizeof ts_prefix_);
  data_.append(frac, 6);
  return JsonLine(*this);
}

void AccessLogBuffer::line_done() {
  line_open_ = false;
  ++lines_;
  if (data_.size() >= log_.options().flush_bytes) flush();
}

void AccessLogBuffer::maybe_flush(int64_t now_ns) {
  if (lines_ == 0) {
    last_flush_ns_ = now_ns;
    return;
  }
  if (data_.size() >= log_.options().flush_bytes ||
      now_ns - last_flush_ns_ >= log_.options().flush_interval_ns) {
    flush();
    last_flush_ns_ = now_ns;
  }
}

void AccessLogBuffer::flush() {
  if (lines_ == 0) return;
  log_.submit(data_, lines_);
  lines_ = 0;
}

// ---- AccessLog: set-up and shutdown ----------------------------------------

namespace {

int open_append(const std::string& path) {
  return ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

}  // namespace

Result<std::unique_ptr<AccessLog>> AccessLog::open(std::string_view sink, Options options) {
  if (sink == "off") return std::unique_ptr<AccessLog>(new AccessLog(-1, false, "", options));
  if (sink == "stdout") return from_fd(STDOUT_FILENO, false, options);
  if (sink == "stderr") return from_fd(STDERR_FILENO, false, options);
  if (sink.empty()) return Status(Errc::kInvalid, "access log: empty sink");
  std::string path(sink);
  const int fd = open_append(path);
  if (fd < 0) {
    return Status(Errc::kIo,
                  fmt::format("access log: cannot open {}: {}", path, std::strerror(errno)));
  }
  return std::unique_ptr<AccessLog>(new AccessLog(fd, true, std::move(path), options));
}

std::unique_ptr<AccessLog> AccessLog::from_fd(int fd, bool owned, Options options) {
  return std::unique_ptr<AccessLog>(new AccessLog(fd, owned, "", options));
}

AccessLog::AccessLog(int fd, bool owned, std::string path, Options options)
    : options_(options), path_(std::move(path)), enabled_(fd >= 0), owned_(owned), fd_(fd) {
  if (!enabled_) return;
  struct stat st {};
  if (::fstat(fd_, &st) == 0) {
    regular_file_ = S_ISREG(st.st_mode);
    socket_ = S_ISSOCK(st.st_mode);
  }
  writer_ = std::thread([this] { run_writer(); });
}

AccessLog::~AccessLog() {
  flush_all_and_stop();
  if (owned_ && fd_ >= 0) ::close(fd_);
  if (reopened_fd_ >= 0) ::close(reopened_fd_);
}

AccessLogBuffer& AccessLog::add_buffer() {
  std::lock_guard lock(mu_);
  buffers_.push_back(std::unique_ptr<AccessLogBuffer>(new AccessLogBuffer(*this)));
  return *buffers_.back();
}

void AccessLog::flush_all_and_stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
  }
  for (auto& b : buffers_) b->flush();
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    stop_deadline_ns_.store(SteadyClock::mono_ns() + options_.stop_timeout_ns,
                            std::memory_order_relaxed);
  }
  work_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

void AccessLog::sync() {
  std::unique_lock lock(mu_);
  const uint64_t target = submitted_;
  done_cv_.wait(lock, [&] { return finished_ >= target; });
}

Status AccessLog::reopen() {
  if (path_.empty()) return Status::ok();
  const int fd = open_append(path_);
  if (fd < 0) {
    return Status(Errc::kIo,
                  fmt::format("access log: cannot reopen {}: {}", path_, std::strerror(errno)));
  }
  std::lock_guard lock(mu_);
  if (reopened_fd_ >= 0) ::close(reopened_fd_);
  reopened_fd_ = fd;
  return Status::ok();
}

uint64_t AccessLog::dropped_lines() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

uint64_t AccessLog::written_lines() const {
  std::lock_guard lock(mu_);
  return written_;
}

uint64_t AccessLog::write_errors() const {
  std::lock_guard lock(mu_);
  return errors_;
}

// ---- AccessLog: the hand-over and the writer -------------------------------

void AccessLog::submit(std::string& data, uint32_t lines) {
  if (!enabled_) {
    data.clear();
    return;
  }
  std::string spare;
  {
    std::lock_guard lock(mu_);
    if (stopping_ || pending_bytes_ + data.size() > options_.max_pending_bytes) {
      dropped_ += lines;
      data.clear();
      return;
    }
    pending_bytes_ += data.size();
    ++submitted_;
    queue_.push_back(Batch{std::move(data), lines});
    if (!spares_.empty()) {
      spare = std::move(spares_.back());
      spares_.pop_back();
    }
  }
  work_cv_.notify_one();
  data = std::move(spare);
  data.clear();
  // Allocate outside the lock, and only when no written batch came back.
  if (data.capacity() < options_.flush_bytes) data.reserve(options_.flush_bytes + 1024);
}

void AccessLog::run_writer() {
  // A pipe whose reader went away must fail the write with EPIPE, not kill the
  // process. SIGPIPE from write(2) goes to the writing thread, so blocking it
  // here is enough.
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);

  std::unique_lock lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [this] { return !queue_.empty() || stopping_; });
    if (queue_.empty()) break;  // stopping, and everything is written
    Batch batch = std::move(queue_.front());
    queue_.pop_front();
    const int new_fd = std::exchange(reopened_fd_, -1);
    lock.unlock();

    if (new_fd >= 0) {
      ::close(fd_);
      fd_ = new_fd;
    }
    const bool ok = write_batch(batch.data);

    lock.lock();
    pending_bytes_ -= batch.data.size();
    if (ok) {
      written_ += batch.lines;
    } else {
      dropped_ += batch.lines;  // a batch that fails part-way counts whole
      ++errors_;
    }
    ++finished_;
    done_cv_.notify_all();
    if (spares_.size() < 4) spares_.push_back(std::move(batch.data));
  }
}

bool AccessLog::write_batch(const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    size_t n = data.size() - off;
    if (!regular_file_) {
      // Pipes, terminals and sockets can stop draining. Wait for room in
      // short steps, so shutdown can give up at stop_deadline_ns_, and write
      // at most PIPE_BUF bytes, which a writable pipe takes without blocking.
      const int64_t left_ms =
          (stop_deadline_ns_.load(std::memory_order_relaxed) - SteadyClock::mono_ns()) / 1'000'000;
      pollfd p{fd_, POLLOUT, 0};
      const int r = ::poll(&p, 1, static_cast<int>(std::clamp<int64_t>(left_ms, 0, 100)));
      if (r < 0 && errno != EINTR) return false;
      if (r <= 0) {
        if (left_ms <= 0) return false;  // stopping, and the sink did not drain in time
        continue;
      }
      n = std::min<size_t>(n, PIPE_BUF);
    }
    const ssize_t w = socket_ ? ::send(fd_, data.data() + off, n, MSG_DONTWAIT | MSG_NOSIGNAL)
                              : ::write(fd_, data.data() + off, n);
    if (w < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      if (errno == EPIPE && !socket_) {
        // Consume the SIGPIPE left pending on this thread.
        sigset_t pipe_set;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        const timespec zero{};
        while (sigtimedwait(&pipe_set, nullptr, &zero) > 0) {
        }
      }
      return false;
    }
    off += static_cast<size_t>(w);
  }
  return true;
}

}  // namespace sluice::obs
