// Fuzzes SseScanner: the same bytes fed whole, split at two fuzzer-chosen
// points, and one byte at a time must give the same events (name, data,
// done), and the raw views plus the pending tail must give back the input.
//
// Input: bytes 0-1 and 2-3 choose the split points, byte 4 the event size
// limit (small limits exercise kBodyTooLarge); the rest is the stream.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "llm/sse_scanner.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

struct Event {
  std::string data, name;
  bool done;
  bool operator==(const Event&) const = default;
};

struct Outcome {
  std::vector<Event> events;
  std::string bytes;  // raw of each event, then the pending tail
  sluice::Errc code = sluice::Errc::kOk;
};

Outcome scan(const std::vector<std::string_view>& pieces, size_t max) {
  sluice::llm::SseScanner scanner(max);
  Outcome out;
  for (std::string_view piece : pieces) {
    const std::string copy(piece);  // a view that outlives its feed shows up under ASan
    sluice::Status s = scanner.feed(copy, [&](const sluice::llm::SseEvent& e) {
      check(e.done == (e.data == "[DONE]"));
      check(e.raw.size() <= max + 5);  // + a BOM and the blank line's CRLF
      out.events.push_back({std::string(e.data), std::string(e.name), e.done});
      out.bytes.append(e.raw);
    });
    if (!s) {
      check(s.code() == sluice::Errc::kBodyTooLarge);
      out.code = s.code();
      return out;
    }
    check(scanner.pending_bytes() <= max + 3);
  }
  out.bytes.append(scanner.take_pending());
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 5) return 0;
  const size_t a = static_cast<size_t>(data[0]) << 8 | data[1];
  const size_t b = static_cast<size_t>(data[2]) << 8 | data[3];
  const size_t max = data[4] < 16 ? size_t{1} + data[4] * 8 : size_t{1} << 20;
  const std::string_view in(reinterpret_cast<const char*>(data) + 5, size - 5);
  size_t i = a % (in.size() + 1);
  size_t j = b % (in.size() + 1);
  if (i > j) std::swap(i, j);

  const Outcome whole = scan({in}, max);
  const Outcome split = scan({in.substr(0, i), in.substr(i, j - i), in.substr(j)}, max);
  check(whole.code == split.code);
  check(whole.events == split.events);
  if (whole.code == sluice::Errc::kOk) {
    check(whole.bytes == in);
    check(split.bytes == in);
  }
  if (in.size() <= 512) {
    std::vector<std::string_view> bytes;
    for (size_t k = 0; k < in.size(); ++k) bytes.push_back(in.substr(k, 1));
    const Outcome single = scan(bytes, max);
    check(single.code == whole.code && single.events == whole.events);
    if (whole.code == sluice::Errc::kOk) check(single.bytes == in);
  }
  return 0;
}
