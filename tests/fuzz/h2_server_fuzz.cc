// Feeds bytes through the HTTP/2 server codec exactly as the connection
// driver does (receive, then produce what it wants to send), with a handler
// that answers every request, reads bodies and sometimes resets. Checks the
// codec's bookkeeping: each stream closes at most once, the open-stream
// count matches, and the memory it accounts never underflows.
//
// Input: the client connection preface is prepended unless the input starts
// with it; the first byte picks the chunk size for feeding.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "h1_fuzz_util.h"
#include "http/h2/codec.h"

using sluice::fuzz::check;
namespace h2 = sluice::http::h2;

namespace {

struct Events final : h2::ServerEvents {
  h2::ServerCodec* codec = nullptr;
  std::deque<h2::Stream> streams;
  size_t opened = 0, closed = 0, requests = 0;

  h2::Stream* open_stream(int32_t id) override {
    if (streams.size() >= 4096) return nullptr;
    streams.emplace_back();
    ++opened;
    return &streams.back();
  }
  void on_request(h2::Stream& s) override {
    ++requests;
    check(!s.closed && !s.head.method.empty() && !s.head.target.empty() && s.head.target[0] == '/');
    for (const auto& h : s.head.headers) check(!h.name.empty());
    const size_t pick = s.head.target.size() % 4;
    if (pick == 3) {
      codec->reset(s, h2::kInternalError);
      return;
    }
    std::array<sluice::http::Header, 2> hs{{{"Content-Type", "text/event-stream"}, {"X-Id", s.head.method}}};
    check(codec->submit_head(s, 200, hs, std::nullopt, pick != 2).is_ok());
    if (pick == 2) return;
    s.out.append("data: {\"x\":1}\n\n");
    if (pick == 0) s.out_end = true;
    codec->data_ready(s);
  }
  void on_progress(h2::Stream& s) override {
    check(!s.closed);
    if (!s.body.empty()) {
      size_t n = s.body.size();
      s.body.clear();
      codec->consume(s, n);
    }
    if (s.body_done && s.response_started && !s.out_end) {
      s.out.append(std::string(100, 'x'));
      s.out_end = true;
      codec->data_ready(s);
    }
  }
  void on_closed(h2::Stream& s) override {
    check(s.closed);
    ++closed;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t chunk = 1 + data[0] % 64 * 16;
  std::string input(reinterpret_cast<const char*>(data + 1), size - 1);
  if (!std::string_view(input).starts_with(h2::kClientPreface)) input.insert(0, h2::kClientPreface);

  h2::Options opts;
  opts.max_concurrent_streams = 16;
  opts.max_header_list_bytes = 4096;
  opts.max_headers = 32;
  opts.stream_window_bytes = 65535;
  opts.max_connection_memory = 1 << 20;
  opts.resets = {10, 20};
  opts.control_frames = {10, 50};
  opts.empty_frames = {10, 50};
  Events ev;
  h2::ServerCodec codec(opts, ev, 0.0);
  ev.codec = &codec;
  std::string out;
  double now = 0;
  for (size_t off = 0; off < input.size(); off += chunk) {
    now += 0.001;
    auto st = codec.receive(std::string_view(input).substr(off, chunk), now);
    out.clear();
    while (codec.produce(out, 1 << 16)) out.clear();
    check(codec.memory() <= (1u << 20) + 65536);
    check(ev.closed <= ev.opened);
    check(codec.active_streams() == ev.opened - ev.closed);
    if (!st) break;
  }
  return 0;
}
