// Incremental, zero-copy decoder for the chunked transfer coding (RFC 9112 7.1).
// State survives between calls, so the body may arrive split at any byte.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice::http::h1 {

class ChunkedDecoder {
 public:
  struct Step {
    size_t consumed = 0;         // bytes of input consumed by this step
    std::string_view data;       // payload bytes (a sub-view of the input), may be empty
    bool done = false;           // the last chunk and trailers were read
    bool error = false;
    std::string_view error_msg;  // static text, set when error
  };

  // Chunk extensions are skipped but bounded by kMaxExtensionBytes per chunk;
  // trailer fields are checked for syntax, discarded, and bounded in total.
  static constexpr size_t kMaxExtensionBytes = 4 * 1024;
  static constexpr int kMaxSizeDigits = 16;

  explicit ChunkedDecoder(size_t max_trailer_bytes = 16 * 1024);

  // Decodes from `in` up to and including the next run of payload bytes. Call
  // repeatedly, advancing by `consumed`, until it returns consumed == 0 &&
  // data.empty() (needs more input) or done/error. After done, nothing more is
  // consumed: bytes that follow belong to the next message.
  Step decode(std::string_view in);

  bool done() const { return state_ == State::kDone; }
  void reset();

 private:
  enum class State : uint8_t {
    kSize,          // hex digits of chunk-size
    kExtBws,        // whitespace after the size, before ';'
    kExt,           // inside chunk-ext, up to CR
    kSizeLf,        // CR seen at the end of the size line
    kData,          // chunk payload, remaining_ bytes left
    kDataCr,        // CRLF after the payload
    kDataLf,
    kTrailerStart,  // start of a trailer line, or the final CRLF
    kTrailerName,
    kTrailerValue,
    kTrailerLf,
    kFinalLf,
    kDone,
    kError,
  };

  Step fail(Step s, size_t consumed, std::string_view msg);

  size_t max_trailer_bytes_;
  State state_ = State::kSize;
  int digits_ = 0;
  uint64_t remaining_ = 0;  // chunk-size while reading it, then payload bytes left
  size_t ext_bytes_ = 0;
  size_t trailer_bytes_ = 0;
  std::string_view error_;
};

}  // namespace sluice::http::h1
