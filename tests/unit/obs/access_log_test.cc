#include "obs/access_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"

namespace sluice::obs {
namespace {

// ---- a strict JSON checker, enough for one access-log line -----------------

// Parses one JSON value (RFC 8259), rejecting raw control characters and
// ill-formed UTF-8 in strings. String members of the top-level object are
// decoded into `strings` so tests can compare them with what was logged.
class JsonChecker {
 public:
  explicit JsonChecker(std::string_view s) : s_(s) {}

  bool object_line(std::vector<std::pair<std::string, std::string>>* strings) {
    ws();
    if (!object(strings)) return false;
    ws();
    return i_ == s_.size();
  }

 private:
  bool object(std::vector<std::pair<std::string, std::string>>* strings) {
    if (!eat('{')) return false;
    ws();
    if (eat('}')) return true;
    for (;;) {
      std::string key;
      ws();
      if (!string(&key)) return false;
      ws();
      if (!eat(':')) return false;
      ws();
      if (strings && peek() == '"') {
        std::string v;
        if (!string(&v)) return false;
        strings->emplace_back(key, v);
      } else if (!value()) {
        return false;
      }
      ws();
      if (eat('}')) return true;
      if (!eat(',')) return false;
    }
  }
  bool array() {
    if (!eat('[')) return false;
    ws();
    if (eat(']')) return true;
    for (;;) {
      ws();
      if (!value()) return false;
      ws();
      if (eat(']')) return true;
      if (!eat(',')) return false;
    }
  }
  bool value() {
    switch (peek()) {
      case '{': return object(nullptr);
      case '[': return array();
      case '"': return string(nullptr);
      case 't': return word("true");
      case 'f': return word("false");
      case 'n': return word("null");
      default: return number();
    }
  }
  bool number() {
    const size_t start = i_;
    eat('-');
    if (eat('0')) {
    } else if (!digits()) {
      return false;
    }
    if (eat('.') && !digits()) return false;
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      if (!eat('+')) eat('-');
      if (!digits()) return false;
    }
    return i_ > start;
  }
  bool digits() {
    const size_t start = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
    return i_ > start;
  }
  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | cp >> 6);
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | cp >> 12);
      out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | cp >> 18);
      out += static_cast<char>(0x80 | (cp >> 12 & 0x3F));
      out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  bool hex4(uint32_t* cp) {
    if (i_ + 4 > s_.size()) return false;
    *cp = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      *cp <<= 4;
      if (c >= '0' && c <= '9') {
        *cp |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        *cp |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        *cp |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    return true;
  }
  bool string(std::string* out) {
    std::string tmp;
    if (!out) out = &tmp;
    if (!eat('"')) return false;
    while (i_ < s_.size()) {
      const auto c = static_cast<uint8_t>(s_[i_]);
      if (c == '"') {
        ++i_;
        return true;
      }
      if (c < 0x20) return false;
      if (c == '\\') {
        ++i_;
        if (i_ >= s_.size()) return false;
        const char e = s_[i_++];
        switch (e) {
          case '"': *out += '"'; break;
          case '\\': *out += '\\'; break;
          case '/': *out += '/'; break;
          case 'b': *out += '\b'; break;
          case 'f': *out += '\f'; break;
          case 'n': *out += '\n'; break;
          case 'r': *out += '\r'; break;
          case 't': *out += '\t'; break;
          case 'u': {
            uint32_t cp;
            if (!hex4(&cp)) return false;
            if (cp >= 0xD800 && cp <= 0xDFFF) return false;  // we never write surrogates
            put_utf8(*out, cp);
            break;
          }
          default: return false;
        }
        continue;
      }
      // Raw UTF-8 must be well formed: decode and re-encode to check.
      int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                         : (c & 0xF8) == 0xF0 ? 4 : 0;
      if (len == 0 || i_ + len > s_.size()) return false;
      uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
      for (int k = 1; k < len; ++k) {
        const auto b = static_cast<uint8_t>(s_[i_ + k]);
        if ((b & 0xC0) != 0x80) return false;
        cp = cp << 6 | (b & 0x3F);
      }
      const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
      if (cp < min[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
      out->append(s_.substr(i_, len));
      i_ += len;
    }
    return false;
  }
  bool word(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  bool eat(char c) {
    if (peek() != c || i_ >= s_.size()) return false;
    ++i_;
    return true;
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }

  std::string_view s_;
  size_t i_ = 0;
};

// ---- helpers ----------------------------------------------------------------

class TempFile {
 public:
  TempFile() {
    static int n = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("sluice_obs_" + std::to_string(::getpid()) + "_" + std::to_string(n++) + ".log");
    std::filesystem::remove(path_);
  }
  ~TempFile() { std::filesystem::remove(path_); }
  std::string path() const { return path_.string(); }
  std::string read() const {
    std::ifstream in(path_, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  std::filesystem::path path_;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::unique_ptr<AccessLog> open_or_die(const std::string& sink, AccessLog::Options o = {}) {
  auto r = AccessLog::open(sink, o);
  EXPECT_TRUE(r.has_value()) << (r.has_value() ? "" : r.status().message());
  return std::move(r).value();
}

constexpr int64_t kMs = 1'000'000;
constexpr int64_t kWhen = 1714566896789123;  // 2024-05-01T12:34:56.789123Z

std::string escaped(std::string_view s) {
  std::string out;
  json_escape_append(out, s);
  return out;
}

// ---- escaping ----------------------------------------------------------------

TEST(JsonEscape, QuotesBackslashAndControlCharacters) {
  EXPECT_EQ(escaped("plain text / ok"), "plain text / ok");
  EXPECT_EQ(escaped("say \"hi\" \\ bye"), "say \\\"hi\\\" \\\\ bye");
  EXPECT_EQ(escaped("\b\f\n\r\t"), "\\b\\f\\n\\r\\t");
  EXPECT_EQ(escaped(std::string_view("\x00\x01\x1f\x7f", 4)), "\\u0000\\u0001\\u001f\x7f");
}

TEST(JsonEscape, ValidUtf8IsKept) {
  EXPECT_EQ(escaped("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9D\x84\x9E"), "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9D\x84\x9E");
  EXPECT_EQ(escaped("\xEF\xBF\xBF\xF4\x8F\xBF\xBF"), "\xEF\xBF\xBF\xF4\x8F\xBF\xBF");  // U+FFFF, U+10FFFF
}

TEST(JsonEscape, IllFormedUtf8BecomesReplacementCharacters) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(escaped("a\x80z"), "a" + r + "z");              // lone continuation byte
  EXPECT_EQ(escaped("a\xC0\xAFz"), "a" + r + r + "z");      // overlong '/': C0 is never valid
  EXPECT_EQ(escaped("a\xE0\x80\xAFz"), "a" + r + r + r + "z");  // overlong 3-byte form
  EXPECT_EQ(escaped("a\xED\xA0\x80z"), "a" + r + r + r + "z");  // UTF-16 surrogate D800
  EXPECT_EQ(escaped("a\xF4\x90\x80\x80z"), "a" + r + r + r + r + "z");  // above U+10FFFF
  EXPECT_EQ(escaped("a\xF5z"), "a" + r + "z");
  EXPECT_EQ(escaped("a\xE2\x82z"), "a" + r + "z");  // truncated: one maximal subpart
  EXPECT_EQ(escaped("a\xE2\x82"), "a" + r);          // truncated at the end
  EXPECT_EQ(escaped("\xF0\x9D\x84"), r);
  EXPECT_EQ(escaped("\xFF\"\x01"), r + "\\\"\\u0001");
}

// ---- lines -------------------------------------------------------------------

TEST(AccessLog, WritesExactLines) {
  TempFile f;
  auto log = open_or_die(f.path());
  AccessLogBuffer& buf = log->add_buffer();
  buf.begin(kWhen)
      .str("request_id", "r-1")
      .num("status", 200)
      .num("bytes", uint64_t{18446744073709551615u})
      .num("delta", int64_t{-5})
      .boolean("stream", true)
      .boolean("cached", false)
      .num_f("ttft_ms", 12.5)
      .num_f("nan", NAN)
      .null("user")
      .str("model", "gpt\"4\n")
      .end();
  buf.begin(0).end();
  buf.begin(951782400000999).str("k", "").end();  // leap day; ms truncated, not rounded
  {
    // A line whose end() is forgotten is closed by the destructor.
    auto line = buf.begin(4102444799999000);
    line.num("n", 1);
  }
  buf.flush();
  log->sync();
  EXPECT_EQ(f.read(),
            "{\"ts\":\"2024-05-01T12:34:56.789Z\",\"request_id\":\"r-1\",\"status\":200,"
            "\"bytes\":18446744073709551615,\"delta\":-5,\"stream\":true,\"cached\":false,"
            "\"ttft_ms\":12.5,\"nan\":null,\"user\":null,\"model\":\"gpt\\\"4\\n\"}\n"
            "{\"ts\":\"1970-01-01T00:00:00.000Z\"}\n"
            "{\"ts\":\"2000-02-29T00:00:00.000Z\",\"k\":\"\"}\n"
            "{\"ts\":\"2099-12-31T23:59:59.999Z\",\"n\":1}\n");
  EXPECT_EQ(log->written_lines(), 4u);
  EXPECT_EQ(log->dropped_lines(), 0u);
}

TEST(AccessLog, HostileStringsStillGiveValidJson) {
  TempFile f;
  auto log = open_or_die(f.path());
  AccessLogBuffer& buf = log->add_buffer();
  std::mt19937 rng(42);
  std::vector<std::string> valid_inputs;
  const std::vector<std::string> multibyte = {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9D\x84\x9E"};
  constexpr int kLines = 500;
  for (int i = 0; i < kLines; ++i) {
    std::string any_bytes, valid;
    const int len = static_cast<int>(rng() % 64);
    for (int k = 0; k < len; ++k) {
      any_bytes += static_cast<char>(rng() % 256);
      if (rng() % 4 == 0) {
        valid += multibyte[rng() % multibyte.size()];
      } else {
        valid += static_cast<char>(rng() % 128);
      }
    }
    valid_inputs.push_back(valid);
    buf.begin(kWhen + i).str("any", any_bytes).str("valid", valid).num("i", i).end();
  }
  log->flush_all_and_stop();
  const auto lines = lines_of(f.read());
  ASSERT_EQ(lines.size(), static_cast<size_t>(kLines));
  for (int i = 0; i < kLines; ++i) {
    std::vector<std::pair<std::string, std::string>> strings;
    ASSERT_TRUE(JsonChecker(lines[i]).object_line(&strings)) << "line " << i << ": " << lines[i];
    ASSERT_EQ(strings.size(), 3u);
    EXPECT_EQ(strings[0].first, "ts");
    EXPECT_EQ(strings[2].first, "valid");
    EXPECT_EQ(strings[2].second, valid_inputs[i]) << "line " << i;  // round-trips exactly
  }
}

// ---- batching ----------------------------------------------------------------

TEST(AccessLog, BatchesUntilSizeOrInterval) {
  TempFile f;
  AccessLog::Options o;
  o.flush_bytes = 1024;
  o.flush_interval_ns = 200 * kMs;
  auto log = open_or_die(f.path(), o);
  AccessLogBuffer& buf = log->add_buffer();
  ManualClock clock;

  buf.maybe_flush(clock.now_ns());  // empty: starts the interval
  buf.begin(kWhen).num("n", 0).end();
  log->sync();
  EXPECT_EQ(f.read(), "");
  clock.advance_ms(100);
  buf.maybe_flush(clock.now_ns());
  log->sync();
  EXPECT_EQ(f.read(), "") << "flushed before the interval";
  clock.advance_ms(150);
  buf.maybe_flush(clock.now_ns());
  log->sync();
  EXPECT_EQ(lines_of(f.read()).size(), 1u);

  // Size: lines accumulate until the buffer reaches flush_bytes.
  int n = 1;
  while (true) {
    buf.begin(kWhen).num("n", n++).end();
    if (buf.buffered_bytes() == 0) break;  // that line crossed 1024 bytes
    log->sync();
    ASSERT_EQ(lines_of(f.read()).size(), 1u) << "written before the size threshold";
    ASSERT_LT(n, 1000);
  }
  log->sync();
  EXPECT_EQ(lines_of(f.read()).size(), static_cast<size_t>(n));
  EXPECT_GT(n, 10);
}

TEST(AccessLog, EachBufferIsItsOwnBatch) {
  TempFile f;
  auto log = open_or_die(f.path());
  AccessLogBuffer& a = log->add_buffer();
  AccessLogBuffer& b = log->add_buffer();
  a.begin(kWhen).str("from", "a").end();
  b.begin(kWhen).str("from", "b").end();
  b.flush();
  log->sync();
  EXPECT_EQ(lines_of(f.read()).size(), 1u);
  log->flush_all_and_stop();  // flushes a too
  EXPECT_EQ(lines_of(f.read()).size(), 2u);
  log->flush_all_and_stop();  // idempotent
}

// ---- sinks -------------------------------------------------------------------

TEST(AccessLog, OffSinkWritesNothing) {
  auto log = open_or_die("off");
  EXPECT_FALSE(log->enabled());
  AccessLogBuffer& buf = log->add_buffer();
  EXPECT_FALSE(buf.enabled());
  for (int i = 0; i < 1000; ++i) buf.begin(kWhen).num("i", i).end();
  buf.flush();
  log->sync();
  EXPECT_EQ(log->written_lines(), 0u);
  EXPECT_EQ(log->dropped_lines(), 0u);
}

TEST(AccessLog, BadPathIsAnError) {
  auto r = AccessLog::open("/nonexistent-dir/x/access.log");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.status().code(), Errc::kIo);
  EXPECT_NE(r.status().message().find("/nonexistent-dir/x/access.log"), std::string::npos);
  EXPECT_FALSE(AccessLog::open("").has_value());
}

TEST(AccessLog, AppendsToAnExistingFile) {
  TempFile f;
  { std::ofstream(f.path()) << "earlier\n"; }
  auto log = open_or_die(f.path());
  log->add_buffer().begin(kWhen).end();
  log->flush_all_and_stop();
  EXPECT_EQ(f.read(), "earlier\n{\"ts\":\"2024-05-01T12:34:56.789Z\"}\n");
}

TEST(AccessLog, ReopenFollowsRotation) {
  TempFile f, rotated;
  auto log = open_or_die(f.path());
  AccessLogBuffer& buf = log->add_buffer();
  buf.begin(kWhen).num("n", 1).end();
  buf.flush();
  log->sync();
  std::filesystem::rename(f.path(), rotated.path());
  ASSERT_TRUE(log->reopen().is_ok());
  buf.begin(kWhen).num("n", 2).end();
  buf.flush();
  log->sync();
  EXPECT_EQ(rotated.read(), "{\"ts\":\"2024-05-01T12:34:56.789Z\",\"n\":1}\n");
  EXPECT_EQ(f.read(), "{\"ts\":\"2024-05-01T12:34:56.789Z\",\"n\":2}\n");
}

// ---- a sink that does not keep up --------------------------------------------

struct Pipe {
  Pipe() { EXPECT_EQ(::pipe2(fd, O_CLOEXEC), 0); }
  ~Pipe() {
    for (int f : fd) {
      if (f >= 0) ::close(f);
    }
  }
  void close_read() {
    ::close(fd[0]);
    fd[0] = -1;
  }
  int fd[2] = {-1, -1};
};

void log_line(AccessLogBuffer& buf, int i) {
  static const std::string pad(100, 'x');
  buf.begin(kWhen).num("i", i).str("pad", pad).end();
}

TEST(AccessLog, StalledSinkDropsInsteadOfBlocking) {
  Pipe p;
  AccessLog::Options o;
  o.flush_bytes = 1024;
  o.max_pending_bytes = 64 * 1024;
  auto log = AccessLog::from_fd(p.fd[1], /*owned=*/true, o);
  p.fd[1] = -1;  // the log closes it
  AccessLogBuffer& buf = log->add_buffer();

  // Nobody reads: the pipe fills, then the queue, then batches are dropped.
  // Every call returns at once, so this loop ends quickly.
  uint64_t total = 0;
  const auto started = std::chrono::steady_clock::now();
  while (log->dropped_lines() == 0 && total < 100'000) log_line(buf, static_cast<int>(total++));
  EXPECT_GT(log->dropped_lines(), 0u);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
  for (int i = 0; i < 1000; ++i) log_line(buf, static_cast<int>(total++));

  // Now drain: everything that was not dropped arrives, whole.
  uint64_t read_lines = 0;
  std::string partial;
  std::thread reader([&] {
    char chunk[65536];
    for (ssize_t n; (n = ::read(p.fd[0], chunk, sizeof chunk)) > 0;) {
      for (ssize_t k = 0; k < n; ++k) read_lines += chunk[k] == '\n';
      partial.assign(chunk + n - std::min<ssize_t>(n, 1), 1);
    }
  });
  log->flush_all_and_stop();
  const uint64_t dropped = log->dropped_lines();
  const uint64_t written = log->written_lines();
  log.reset();  // closes the write end: the reader sees EOF
  reader.join();
  EXPECT_EQ(written, read_lines);
  EXPECT_EQ(read_lines + dropped, total);
  EXPECT_EQ(partial, "\n");
}

TEST(AccessLog, StopGivesUpOnAStalledSink) {
  Pipe p;
  AccessLog::Options o;
  o.flush_bytes = 1024;
  o.max_pending_bytes = 256 * 1024;
  o.stop_timeout_ns = 300 * kMs;
  auto log = AccessLog::from_fd(p.fd[1], /*owned=*/false, o);
  AccessLogBuffer& buf = log->add_buffer();
  uint64_t total = 0;
  for (; total < 2000; ++total) log_line(buf, static_cast<int>(total));  // > pipe capacity
  const auto started = std::chrono::steady_clock::now();
  log->flush_all_and_stop();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
  EXPECT_GT(log->dropped_lines(), 0u);
  EXPECT_GE(log->write_errors(), 1u);
  EXPECT_EQ(log->written_lines() + log->dropped_lines(), total);
}

TEST(AccessLog, ClosedReaderCountsDropsWithoutSigpipe) {
  Pipe p;
  p.close_read();
  auto log = AccessLog::from_fd(p.fd[1], /*owned=*/false, {});
  AccessLogBuffer& buf = log->add_buffer();
  for (int i = 0; i < 10; ++i) log_line(buf, i);
  buf.flush();
  log->sync();  // the process would die here if SIGPIPE were delivered
  EXPECT_EQ(log->dropped_lines(), 10u);
  EXPECT_EQ(log->written_lines(), 0u);
  EXPECT_EQ(log->write_errors(), 1u);
}

TEST(AccessLog, BuffersOnSeveralThreads) {
  TempFile f;
  AccessLog::Options o;
  o.flush_bytes = 2048;
  auto log = open_or_die(f.path(), o);
  constexpr int kThreads = 4, kLines = 5000;
  std::vector<AccessLogBuffer*> bufs;
  for (int t = 0; t < kThreads; ++t) bufs.push_back(&log->add_buffer());
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < kLines; ++i) {
        bufs[t]->begin().num("t", t).num("i", i).end();
        bufs[t]->maybe_flush(SteadyClock::mono_ns());
      }
    });
  }
  for (auto& w : workers) w.join();
  log->flush_all_and_stop();
  const auto lines = lines_of(f.read());
  EXPECT_EQ(lines.size(), static_cast<size_t>(kThreads * kLines));
  for (const auto& l : lines) ASSERT_TRUE(JsonChecker(l).object_line(nullptr)) << l;
}

}  // namespace
}  // namespace sluice::obs
