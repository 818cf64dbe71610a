// llm/: what is LLM-specific and pure (no sockets, no Asio).
//
// SseScanner splits an upstream's text/event-stream body, arriving in
// arbitrary pieces, into events, so the gateway can forward each event
// verbatim as soon as it is complete and read usage from its data.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "core/status.h"

namespace sluice::llm {

struct SseEvent {
  // The exact bytes of the event including its terminating empty line. All
  // raw views plus take_pending() concatenate back to the input, byte for byte.
  // One exception to "starts at a line": when a CR ends one event at the very
  // end of a feed and the next feed starts with LF, that LF (the rest of the
  // CRLF) opens the next event's raw.
  std::string_view raw;
  std::string_view data;  // data field values joined with "\n" (may be empty)
  std::string_view name;  // the event field, empty if none
  bool done = false;      // data == "[DONE]"
};

// Parses by the WHATWG line rules: lines end with CRLF, LF or CR (also when
// the CR and LF of a CRLF arrive in different feeds); an empty line ends an
// event; data values are joined with "\n"; one space after the colon is
// dropped; lines starting with ':' are comments; a UTF-8 BOM at stream start
// is ignored (but kept in raw). Every empty line ends an event, so keep-alive
// comments and stray blank lines come out as events with no data: forward
// their raw and ignore them otherwise.
//
// Zero-copy while an event lies inside one feed; an event split across feeds
// is gathered into an internal buffer. Data of several data lines is joined
// into a reused scratch string. No allocation on the common path.
class SseScanner {
 public:
  explicit SseScanner(size_t max_event_bytes = size_t{1} << 20);

  // Calls on_event(const SseEvent&) for each event completed by `in`, in
  // order; the views are valid only during the call. Returns
  // Errc::kBodyTooLarge once an event (complete or not) exceeds
  // max_event_bytes, not counting a leading BOM and the line ending of the
  // blank line that ends it; the scanner then stays failed.
  template <class F>
  Status feed(std::string_view in, F&& on_event) {
    if (!failed_.is_ok()) return failed_;
    begin(in);
    SseEvent event;
    for (;;) {
      switch (next(event)) {
        case Step::kEvent:
          on_event(std::as_const(event));
          break;
        case Step::kNeedMore:
          return Status::ok();
        case Step::kFailed:
          return failed_;
      }
    }
  }

  // Bytes of the incomplete event held so far.
  size_t pending_bytes() const { return release_ ? 0 : buf_.size(); }

  // At end of stream: the incomplete trailing event (no final blank line), as
  // raw bytes, or empty. Valid until the next call on this scanner.
  std::string_view take_pending();

 private:
  enum class Step { kEvent, kNeedMore, kFailed };

  void begin(std::string_view in);
  Step next(SseEvent& event);
  Step fail();

  size_t max_event_bytes_;
  Status failed_;

  std::string_view in_;   // the current feed
  size_t pos_ = 0;        // scan position in in_
  size_t event_at_ = 0;   // where the current event starts in in_ (0 if it started earlier)

  std::string buf_;       // the current event's bytes from earlier feeds
  bool release_ = false;  // buf_ was handed out as an event: clear it on the next step
  std::string joined_;    // data of several data lines
  std::string taken_;     // what take_pending() returned

  size_t skip_ = 0;                // leading bytes of the event that are not a line (BOM, LF of a split CRLF)
  bool line_has_content_ = false;  // the line being scanned has bytes before pos_
  bool after_cr_ = false;          // the previous feed ended with a CR line ending
  bool at_stream_start_ = true;    // still looking for a BOM
  uint8_t bom_matched_ = 0;
};

}  // namespace sluice::llm
