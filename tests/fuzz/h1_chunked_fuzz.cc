// Fuzzes the chunked decoder: whole input, byte by byte and in pieces chosen
// by the input all give the same payload, consumption and outcome; data views
// stay inside the input; a decoded payload re-encoded decodes to itself.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "h1_fuzz_util.h"
#include "http/h1/chunked.h"

using sluice::fuzz::check;
using sluice::fuzz::inside;
using sluice::http::h1::ChunkedDecoder;

namespace {

struct Outcome {
  std::string payload;
  size_t consumed = 0;
  bool done = false;
  bool error = false;
  std::string_view error_msg;
};

bool operator==(const Outcome& a, const Outcome& b) {
  return a.payload == b.payload && a.consumed == b.consumed && a.done == b.done &&
         a.error == b.error && a.error_msg == b.error_msg;
}

// Feeds `in` in pieces of `piece` bytes (0 = all at once); unconsumed bytes
// stay in front of the next piece, as in a connection's read buffer.
Outcome decode(std::string_view in, size_t piece, size_t max_trailer) {
  ChunkedDecoder dec(max_trailer);
  Outcome out;
  std::string pending;
  size_t fed = 0;
  for (;;) {
    size_t n = piece == 0 ? in.size() - fed : std::min(piece, in.size() - fed);
    pending.append(in.substr(fed, n));
    fed += n;
    std::string_view view = pending;
    for (;;) {
      ChunkedDecoder::Step s = dec.decode(view);
      check(s.consumed <= view.size());
      check(inside(view.substr(0, s.consumed), s.data));
      check(!(s.done && s.error));
      if (s.error) check(!s.error_msg.empty() && s.data.empty());
      out.payload.append(s.data);
      view.remove_prefix(s.consumed);
      out.consumed += s.consumed;
      if (s.error || s.done) {
        out.error = s.error;
        out.done = s.done;
        out.error_msg = s.error_msg;
        check(dec.done() == s.done);
        return out;
      }
      if (s.consumed == 0 && s.data.empty()) break;
    }
    pending.erase(0, pending.size() - view.size());
    check(pending.size() == view.size());
    if (fed == in.size()) return out;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the trailer limit and a piece size; the rest is the body.
  size_t max_trailer = data[0] & 0x80 ? 16 * 1024 : (data[0] & 0x7f);
  size_t piece = (data[0] % 13) + 2;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);

  Outcome whole = decode(in, 0, max_trailer);
  check(whole.consumed <= in.size());
  check(whole.payload.size() <= whole.consumed);
  if (!whole.done && !whole.error) check(whole.consumed == in.size());
  check(decode(in, 1, max_trailer) == whole);
  check(decode(in, piece, max_trailer) == whole);

  if (whole.done) {
    // Re-encode as one chunk and decode again.
    std::string again;
    if (!whole.payload.empty()) {
      static constexpr char kHex[] = "0123456789abcdef";
      std::string size_line;
      for (size_t n = whole.payload.size(); n != 0; n >>= 4) size_line.insert(0, 1, kHex[n & 0xf]);
      again = size_line + "\r\n" + whole.payload + "\r\n";
    }
    again += "0\r\n\r\n";
    Outcome round = decode(again, 0, 16 * 1024);
    check(round.done && round.payload == whole.payload && round.consumed == again.size());
  }
  return 0;
}
