// h2/: HTTP/2 via nghttp2, behind a narrow codec with no sockets.
//
// ServerCodec turns received bytes into request events and response calls into
// bytes to send. The Asio driver (server.h) moves bytes between it and a
// socket; the fuzzers drive it straight from a buffer. Everything nghttp2
// knows stays in codec.cc.
//
// Attack resistance lives here, so the fuzzers and the unit tests see it:
// rapid reset (CVE-2023-44487), CONTINUATION, PING/SETTINGS and empty-frame
// floods each end the connection with GOAWAY ENHANCE_YOUR_CALM; an oversized
// header list gets a 431 on its stream; a stream over the concurrency limit is
// refused.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "http/message.h"

namespace sluice::http::h2 {

// A token bucket: `burst` events at once, refilled at `per_second`.
struct RateLimit {
  double per_second = 0;
  double burst = 0;
};

struct Options {
  uint32_t max_concurrent_streams = 128;
  uint32_t max_header_list_bytes = 64 * 1024;  // RFC 9113 size (name + value + 32 per field)
  uint32_t max_headers = 128;
  uint32_t header_table_bytes = 4096;               // HPACK dynamic table, both directions
  uint32_t stream_window_bytes = 256 * 1024;        // request body in flight per stream
  uint32_t connection_window_bytes = 1024 * 1024;   // request bodies in flight per connection
  uint32_t stream_buffer_bytes = 64 * 1024;         // response bytes a stream may queue before its writer waits
  uint32_t max_continuations = 8;                   // CONTINUATION frames per header block
  uint64_t max_connection_memory = 8 << 20;         // buffered bytes, all streams and queues
  RateLimit resets{200, 400};                       // streams the client resets (rapid reset)
  RateLimit control_frames{100, 500};               // PING, SETTINGS, PRIORITY, WINDOW_UPDATE(0)
  RateLimit empty_frames{100, 500};                 // DATA/HEADERS/CONTINUATION with no payload, no END_STREAM
};

// What the codec reports that the gateway counts (sluice_http2_limit_total).
enum class Limit {
  kRapidReset,
  kHeaderList,
  kContinuationFlood,
  kControlFlood,
  kEmptyFrames,
  kConcurrentStreams,
  kConnectionMemory,
  kProtocolError,
};
std::string_view limit_name(Limit l);

// What both ends keep per stream: body bytes queued for sending (framed as
// the peer's flow-control windows allow) and body bytes received but not yet
// taken (the window reopens as they are taken: consume()).
struct StreamBase {
  int32_t id = 0;
  void* user = nullptr;  // the driver's object

  // Sending.
  std::string out;
  size_t out_sent = 0;   // bytes of `out` already framed
  bool out_end = false;  // no more bytes: END_STREAM (or trailers) after `out`
  std::vector<std::pair<std::string, std::string>> trailers;
  size_t queued() const { return out.size() - out_sent; }

  // Receiving.
  std::string body;
  bool body_done = false;   // END_STREAM seen
  bool closed = false;      // the codec is done with this stream
  uint32_t close_code = 0;  // RST_STREAM / GOAWAY code when closed abnormally

  // Internal to the codec.
  bool deferred = false;  // the data source returned DEFERRED
  uint64_t unconsumed = 0;
  uint64_t header_bytes = 0;
};

// One request/response stream on the server. The driver owns it (it must
// outlive every coroutine that uses it); the codec fills the request side
// and drains the response side until on_closed().
struct Stream : StreamBase {
  // Request head, valid once on_request() ran.
  RequestHead head;
  std::string head_storage;
  bool response_started = false;

  // Internal to the codec.
  std::vector<std::pair<uint32_t, uint32_t>> field_offsets;  // name/value pairs in head_storage
  int reject_status = 0;  // 431/400 decided while reading headers
};

// Events up to the driver. Calls happen inside receive() or produce().
class ServerEvents {
 public:
  virtual ~ServerEvents() = default;
  // A new stream begins; return its storage, or nullptr to refuse it.
  virtual Stream* open_stream(int32_t id) = 0;
  // The request head is complete and valid (s.body_done if it carried END_STREAM).
  virtual void on_request(Stream& s) = 0;
  // Body bytes or END_STREAM arrived, or queued output was framed: wake a waiter.
  virtual void on_progress(Stream& s) = 0;
  // The codec dropped the stream (s.closed is set): no more calls for it.
  virtual void on_closed(Stream& s) = 0;
  // The codec answered a request itself (431, 400) before on_request().
  virtual void on_rejected(int status, std::string_view reason) {}
  virtual void on_limit(Limit l) {}
};

class ServerCodec {
 public:
  ServerCodec(const Options& opts, ServerEvents& events, double now_s = 0);
  ~ServerCodec();
  ServerCodec(const ServerCodec&) = delete;
  ServerCodec& operator=(const ServerCodec&) = delete;

  // Feeds received bytes. A non-ok status means the connection is finished:
  // send what produce() still gives (the GOAWAY), then close.
  Status receive(std::string_view bytes, double now_s);
  // Appends frames to send to `out`, up to about `max` bytes. Returns false
  // when there is nothing (more) to send.
  bool produce(std::string& out, size_t max);
  bool wants_read() const;
  bool wants_write() const;

  // Response side of a stream. A head with has_body == false ends the stream.
  Status submit_head(Stream& s, int status, std::span<const Header> headers, std::optional<uint64_t> content_length,
                     bool has_body);
  // Queues s.out bytes appended by the caller (and s.out_end); resumes framing.
  void data_ready(Stream& s);
  void reset(Stream& s, uint32_t code);
  // The driver took `n` request-body bytes: open the flow-control window.
  void consume(Stream& s, size_t n);

  // Graceful shutdown: GOAWAY announcing no new streams (final when `now`).
  void shutdown(bool final);
  // Ends the connection with GOAWAY(code).
  void terminate(uint32_t code);
  size_t active_streams() const { return active_; }
  // Request bytes held for this connection (heads and unread bodies); over
  // Options::max_connection_memory the connection ends with ENHANCE_YOUR_CALM.
  uint64_t memory() const { return memory_; }

  struct Impl;

 private:
  friend struct Impl;
  std::unique_ptr<Impl> impl_;
  size_t active_ = 0;
  uint64_t memory_ = 0;
};

// ---- Client side (upstream HTTP/2, load generators) ----

struct ClientOptions {
  // Response bytes in flight (and held unread) per stream. The connection
  // window is given back as bytes arrive, so a stream whose reader stalls
  // holds at most its own window and never blocks the others.
  uint32_t stream_window_bytes = 1 << 20;
  uint32_t connection_window_bytes = 4 << 20;
  uint32_t header_table_bytes = 4096;
  uint32_t max_response_header_bytes = 64 * 1024;
};

// One request on a client connection. The caller owns it; the codec fills
// the response side until on_closed().
struct ClientStream : StreamBase {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // response fields, lowercase names
  bool head_done = false;
};

class ClientEvents {
 public:
  virtual ~ClientEvents() = default;
  virtual void on_head(ClientStream& s) {}      // final (non-1xx) response head
  virtual void on_progress(ClientStream& s) {}  // body bytes, END_STREAM, or request bytes framed
  virtual void on_closed(ClientStream& s) {}    // s.closed set; no more calls for it
  virtual void on_ping_ack() {}
  virtual void on_goaway(int32_t last_stream_id, uint32_t code) {}
};

class ClientCodec {
 public:
  ClientCodec(const ClientOptions& opts, ClientEvents& events);
  ~ClientCodec();
  ClientCodec(const ClientCodec&) = delete;
  ClientCodec& operator=(const ClientCodec&) = delete;

  // Starts a request; the body (if has_body) comes from s.out / s.out_end.
  // Sets s.id. Fails when the connection can take no more streams.
  Status submit_request(ClientStream& s, std::string_view method, std::string_view scheme,
                        std::string_view authority, std::string_view path, std::span<const Header> headers,
                        bool has_body);
  void data_ready(ClientStream& s);
  void reset(ClientStream& s, uint32_t code);
  // The caller took `n` response-body bytes: open the window for more.
  void consume(ClientStream& s, size_t n);
  void ping();

  Status receive(std::string_view bytes);
  bool produce(std::string& out, size_t max);
  bool wants_read() const;
  bool wants_write() const;
  size_t active_streams() const { return active_; }
  // The peer's SETTINGS_MAX_CONCURRENT_STREAMS (unbounded until it says).
  uint32_t peer_max_concurrent_streams() const;
  bool goaway_received() const { return goaway_; }

  struct Impl;

 private:
  friend struct Impl;
  std::unique_ptr<Impl> impl_;
  size_t active_ = 0;
  bool goaway_ = false;
};

// HTTP/2 error codes used outside the codec.
inline constexpr uint32_t kNoError = 0x0;
inline constexpr uint32_t kInternalError = 0x2;
inline constexpr uint32_t kCancel = 0x8;
inline constexpr uint32_t kEnhanceYourCalm = 0xb;

// The client connection preface ("PRI * HTTP/2.0...").
inline constexpr std::string_view kClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

}  // namespace sluice::http::h2
