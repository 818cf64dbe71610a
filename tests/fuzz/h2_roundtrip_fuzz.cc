// Connects our HTTP/2 client codec to our server codec through buffers the
// fuzzer mutates. Without mutations every request must come back whole
// (status, header, echoed body); with them, neither side may crash, and each
// keeps consistent books.
//
// Input: [requests][flags][body seed] then (offset, xor) byte pairs that are
// applied to the client->server bytes (flags bit 0) and/or server->client
// bytes (flags bit 1) as they pass.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <string_view>

#include "h1_fuzz_util.h"
#include "http/h2/codec.h"

using sluice::fuzz::check;
namespace h2 = sluice::http::h2;
using sluice::http::Header;

namespace {

// Echoes each request body back with the path in a header.
struct Server final : h2::ServerEvents {
  h2::ServerCodec* codec = nullptr;
  std::deque<h2::Stream> streams;
  size_t opened = 0, closed = 0;

  h2::Stream* open_stream(int32_t) override {
    streams.emplace_back();
    ++opened;
    return &streams.back();
  }
  void on_request(h2::Stream& s) override { maybe_answer(s); }
  void on_progress(h2::Stream& s) override {
    if (s.response_started) return;
    // Take the body as it arrives, as the driver's read_body does, so the window reopens.
    received[&s].append(s.body);
    codec->consume(s, s.body.size());
    s.body.clear();
    maybe_answer(s);
  }
  std::map<const h2::Stream*, std::string> received;
  void on_closed(h2::Stream&) override { ++closed; }
  void maybe_answer(h2::Stream& s) {
    if (!s.body_done || s.response_started || s.closed) return;
    std::array<Header, 1> hs{{{"x-path", s.head.target}}};
    std::string body = std::move(received[&s]) + s.body;
    codec->consume(s, s.body.size());
    s.body.clear();
    (void)codec->submit_head(s, 200, hs, body.size(), true);
    s.out = std::move(body);
    s.out_end = true;
    codec->data_ready(s);
  }
};

struct Client final : h2::ClientEvents {
  h2::ClientCodec* codec = nullptr;
  size_t closed = 0;
  void on_progress(h2::ClientStream& s) override {
    if (s.unconsumed && !s.body.empty()) codec->consume(s, s.unconsumed);
  }
  void on_closed(h2::ClientStream& s) override {
    check(s.closed);
    ++closed;
  }
};

void mutate(std::string& bytes, uint64_t& passed, std::string_view edits) {
  for (size_t i = 0; i + 1 < edits.size(); i += 2) {
    const uint64_t at = static_cast<uint8_t>(edits[i]) * 7;
    if (at >= passed && at < passed + bytes.size()) bytes[at - passed] ^= edits[i + 1];
  }
  passed += bytes.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const size_t n_requests = 1 + data[0] % 8;
  const bool mutate_up = data[1] & 1, mutate_down = data[1] & 2;
  const size_t body_len = data[2] * 300u;
  std::string_view edits(reinterpret_cast<const char*>(data + 3), size - 3);

  h2::Options sopts;
  sopts.stream_window_bytes = 65535;
  h2::ClientOptions copts;
  copts.stream_window_bytes = 65535;
  Server server;
  Client client;
  h2::ServerCodec sc(sopts, server, 0.0);
  h2::ClientCodec cc(copts, client);
  server.codec = &sc;
  client.codec = &cc;

  std::deque<h2::ClientStream> reqs(n_requests);
  std::vector<std::string> paths;
  for (size_t i = 0; i < n_requests; ++i) {
    paths.push_back("/v1/r" + std::to_string(i));
    h2::ClientStream& r = reqs[i];
    r.out.assign(body_len + i, static_cast<char>('a' + i));
    r.out_end = true;
    std::array<Header, 1> hs{{{"content-type", "application/json"}}};
    check(cc.submit_request(r, "POST", "http", "fuzz", paths.back(), hs, true).is_ok());
  }

  uint64_t up = 0, down = 0;
  std::string wire;
  for (int round = 0; round < 400; ++round) {
    bool moved = false;
    wire.clear();
    if (cc.produce(wire, 1 << 16)) {
      moved = true;
      if (mutate_up) mutate(wire, up, edits);
      if (!sc.receive(wire, round * 0.001)) break;
    }
    wire.clear();
    if (sc.produce(wire, 1 << 16)) {
      moved = true;
      if (mutate_down) mutate(wire, down, edits);
      if (!cc.receive(wire)) break;
    }
    if (!moved) break;
  }
  check(server.closed <= server.opened && sc.active_streams() == server.opened - server.closed);
  check(client.closed <= n_requests);
  if (!mutate_up && !mutate_down) {
    // A clean wire: every exchange completed exactly.
    check(client.closed == n_requests);
    for (size_t i = 0; i < n_requests; ++i) {
      const h2::ClientStream& r = reqs[i];
      check(r.status == 200 && r.body_done && r.close_code == 0);
      check(r.body == std::string(body_len + i, static_cast<char>('a' + i)));
      bool saw_path = false;
      for (const auto& [k, v] : r.headers) saw_path = saw_path || (k == "x-path" && v == paths[i]);
      check(saw_path);
    }
  }
  return 0;
}
