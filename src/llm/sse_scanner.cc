#include "llm/sse_scanner.h"

#include <cstring>

namespace sluice::llm {

namespace {

constexpr std::string_view kBom = "\xEF\xBB\xBF";

// The first CR or LF in b[from, n), or n. Two memchr calls beat a byte loop:
// data lines are long and CR is rare.
size_t find_eol(const char* b, size_t from, size_t n) {
  const void* lf = std::memchr(b + from, '\n', n - from);
  const size_t end = lf ? static_cast<size_t>(static_cast<const char*>(lf) - b) : n;
  const void* cr = std::memchr(b + from, '\r', end - from);
  return cr ? static_cast<size_t>(static_cast<const char*>(cr) - b) : end;
}

// Gathers the fields of one event from its non-empty lines.
class Fields {
 public:
  explicit Fields(std::string& joined) : joined_(joined) {}

  void line(std::string_view line) {
    if (line.front() == ':') return;  // comment
    std::string_view field = line;
    std::string_view value;
    if (const void* colon = std::memchr(line.data(), ':', line.size())) {
      const size_t at = static_cast<size_t>(static_cast<const char*>(colon) - line.data());
      field = line.substr(0, at);
      value = line.substr(at + 1);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "data") {
      if (data_lines_ == 0) {
        data_ = value;
      } else {
        if (data_lines_ == 1) joined_.assign(data_);
        joined_ += '\n';
        joined_.append(value);
        data_ = joined_;
      }
      ++data_lines_;
    } else if (field == "event") {
      name_ = value;
    }
  }

  void fill(SseEvent& event) const {
    event.data = data_;
    event.name = name_;
    event.done = data_ == "[DONE]";
  }

 private:
  std::string& joined_;
  std::string_view data_;
  std::string_view name_;
  size_t data_lines_ = 0;
};

// Reads the lines of a complete event up to its empty line.
void parse_lines(std::string_view raw, Fields& fields) {
  const size_t n = raw.size();
  size_t pos = 0;
  while (pos < n) {
    const size_t eol = find_eol(raw.data(), pos, n);
    if (eol == pos) return;
    fields.line(raw.substr(pos, eol - pos));
    if (eol == n) return;
    pos = eol + (raw[eol] == '\r' && eol + 1 < n && raw[eol + 1] == '\n' ? 2 : 1);
  }
}

}  // namespace

SseScanner::SseScanner(size_t max_event_bytes) : max_event_bytes_(max_event_bytes) {}

void SseScanner::begin(std::string_view in) {
  in_ = in;
  pos_ = 0;
  event_at_ = 0;
  if (in.empty()) return;
  if (after_cr_) {
    after_cr_ = false;
    if (in[0] == '\n') {
      pos_ = 1;  // the rest of a CRLF; if the CR ended an event, the LF opens the next one
      if (buf_.empty()) skip_ = 1;
    }
  }
  while (at_stream_start_ && pos_ < in.size()) {
    if (in[pos_] != kBom[bom_matched_]) {
      at_stream_start_ = false;
      if (bom_matched_ > 0) line_has_content_ = true;  // a partial BOM is text
      break;
    }
    ++pos_;
    if (++bom_matched_ == kBom.size()) {
      at_stream_start_ = false;
      skip_ = kBom.size();
    }
  }
}

SseScanner::Step SseScanner::next(SseEvent& event) {
  if (release_) {
    buf_.clear();
    release_ = false;
  }
  const char* const b = in_.data();
  const size_t n = in_.size();
  // An event that starts in this feed is parsed as it is scanned, in place;
  // one that started earlier is parsed from buf_ once complete.
  const bool direct = buf_.empty();
  Fields fields(joined_);
  size_t line_at = event_at_ + skip_;
  size_t pos = pos_;
  while (pos < n) {
    const size_t eol = find_eol(b, pos, n);
    if (eol == n) {
      line_has_content_ = true;
      break;
    }
    const bool empty_line = !line_has_content_ && eol == pos;
    size_t after = eol + 1;
    if (b[eol] == '\r') {
      if (after == n) {
        after_cr_ = true;
      } else if (b[after] == '\n') {
        ++after;
      }
    }
    line_has_content_ = false;
    if (!empty_line) {
      if (direct) fields.line(std::string_view(b + line_at, eol - line_at));
      pos = line_at = after;
      continue;
    }

    std::string_view raw;
    if (direct) {
      raw = std::string_view(b + event_at_, after - event_at_);
    } else {
      buf_.append(b, after);
      raw = buf_;
      parse_lines(raw.substr(skip_), fields);
      release_ = true;
    }
    // The size leaves out the prefix and the blank line's line ending, so it
    // does not depend on whether a CRLF was split between feeds.
    if (raw.size() - skip_ - (after - eol) > max_event_bytes_) return fail();
    fields.fill(event);
    event.raw = raw;
    skip_ = 0;
    pos_ = event_at_ = after;
    return Step::kEvent;
  }
  // The feed ends inside an event: keep its bytes for the next feed.
  if (n > event_at_) buf_.append(b + event_at_, n - event_at_);
  pos_ = event_at_ = n;
  // Bytes that may yet turn out to be the BOM do not count either.
  const size_t maybe_bom = at_stream_start_ ? bom_matched_ : 0;
  if (buf_.size() - skip_ - maybe_bom > max_event_bytes_) return fail();
  return Step::kNeedMore;
}

SseScanner::Step SseScanner::fail() {
  failed_ = Status(Errc::kBodyTooLarge,
                   "server-sent event larger than " + std::to_string(max_event_bytes_) + " bytes");
  return Step::kFailed;
}

std::string_view SseScanner::take_pending() {
  if (release_) {
    buf_.clear();
    release_ = false;
  }
  taken_.swap(buf_);
  buf_.clear();
  skip_ = 0;
  line_has_content_ = false;
  after_cr_ = false;
  return taken_;
}

}  // namespace sluice::llm
