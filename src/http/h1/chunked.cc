#include "http/h1/chunked.h"

#include "http/h1/chars.h"

namespace sluice::http::h1 {

namespace {

inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

ChunkedDecoder::ChunkedDecoder(size_t max_trailer_bytes) : max_trailer_bytes_(max_trailer_bytes) {}

void ChunkedDecoder::reset() {
  state_ = State::kSize;
  digits_ = 0;
  remaining_ = 0;
  ext_bytes_ = 0;
  trailer_bytes_ = 0;
  error_ = {};
}

ChunkedDecoder::Step ChunkedDecoder::fail(Step s, size_t consumed, std::string_view msg) {
  state_ = State::kError;
  error_ = msg;
  s.consumed = consumed;
  s.error = true;
  s.error_msg = msg;
  return s;
}

ChunkedDecoder::Step ChunkedDecoder::decode(std::string_view in) {
  Step out;
  if (state_ == State::kDone) {
    out.done = true;
    return out;
  }
  if (state_ == State::kError) {
    out.error = true;
    out.error_msg = error_;
    return out;
  }

  size_t i = 0;
  while (i < in.size()) {
    const char c = in[i];
    switch (state_) {
      case State::kSize: {
        int d = hex_value(c);
        if (d >= 0) {
          if (++digits_ > kMaxSizeDigits) return fail(out, i, "chunk size too long");
          remaining_ = (remaining_ << 4) | static_cast<uint64_t>(d);
          break;
        }
        if (digits_ == 0) return fail(out, i, "invalid chunk size");
        ext_bytes_ = 0;
        if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c == ';') {
          state_ = State::kExt;
        } else if (chars::is_ows(c)) {
          state_ = State::kExtBws;
        } else {
          return fail(out, i, c == '\n' ? "bare LF" : "invalid chunk size");
        }
        break;
      }
      case State::kExtBws:
        // BWS is only allowed before ';': "5 \r\n" is refused.
        if (++ext_bytes_ > kMaxExtensionBytes) return fail(out, i, "chunk extension too long");
        if (c == ';') {
          state_ = State::kExt;
        } else if (!chars::is_ows(c)) {
          return fail(out, i, "invalid chunk extension");
        }
        break;
      case State::kExt:
        if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c == '\n') {
          return fail(out, i, "bare LF");
        } else if (chars::has(c, chars::kCtl) && c != '\t') {
          return fail(out, i, "invalid chunk extension");
        } else if (++ext_bytes_ > kMaxExtensionBytes) {
          return fail(out, i, "chunk extension too long");
        }
        break;
      case State::kSizeLf:
        if (c != '\n') return fail(out, i, "bare CR");
        if (remaining_ == 0) {
          state_ = State::kTrailerStart;
          trailer_bytes_ = 0;
        } else {
          state_ = State::kData;
        }
        break;
      case State::kData: {
        size_t avail = in.size() - i;
        size_t n = remaining_ < avail ? static_cast<size_t>(remaining_) : avail;
        remaining_ -= n;
        if (remaining_ == 0) state_ = State::kDataCr;
        out.data = in.substr(i, n);
        out.consumed = i + n;
        return out;
      }
      case State::kDataCr:
        if (c != '\r') return fail(out, i, c == '\n' ? "bare LF" : "missing CRLF after chunk data");
        state_ = State::kDataLf;
        break;
      case State::kDataLf:
        if (c != '\n') return fail(out, i, "bare CR");
        state_ = State::kSize;
        digits_ = 0;
        remaining_ = 0;
        break;
      case State::kTrailerStart:
      case State::kTrailerName:
      case State::kTrailerValue:
      case State::kTrailerLf:
      case State::kFinalLf:
        if (++trailer_bytes_ > max_trailer_bytes_) {
          return fail(out, i, "trailer section too large");
        }
        if (state_ == State::kTrailerStart) {
          if (c == '\r') {
            state_ = State::kFinalLf;
          } else if (chars::has(c, chars::kTchar)) {
            state_ = State::kTrailerName;
          } else {
            return fail(out, i, c == '\n' ? "bare LF" : "invalid trailer field");
          }
        } else if (state_ == State::kTrailerName) {
          if (c == ':') {
            state_ = State::kTrailerValue;
          } else if (!chars::has(c, chars::kTchar)) {
            return fail(out, i, "invalid trailer field");
          }
        } else if (state_ == State::kTrailerValue) {
          if (c == '\r') {
            state_ = State::kTrailerLf;
          } else if (chars::has(c, chars::kCtl) && c != '\t') {
            return fail(out, i, c == '\n' ? "bare LF" : "invalid trailer field");
          }
        } else if (state_ == State::kTrailerLf) {
          if (c != '\n') return fail(out, i, "bare CR");
          state_ = State::kTrailerStart;
        } else {  // kFinalLf
          if (c != '\n') return fail(out, i, "bare CR");
          state_ = State::kDone;
          out.consumed = i + 1;
          out.done = true;
          return out;
        }
        break;
      case State::kDone:
      case State::kError:
        break;  // handled before the loop
    }
    ++i;
  }
  out.consumed = i;
  return out;
}

}  // namespace sluice::http::h1
