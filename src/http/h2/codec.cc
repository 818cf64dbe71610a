#include "http/h2/codec.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "http/error_body.h"

namespace sluice::http::h2 {

std::string_view limit_name(Limit l) {
  switch (l) {
    case Limit::kRapidReset: return "rapid_reset";
    case Limit::kHeaderList: return "header_list_size";
    case Limit::kContinuationFlood: return "continuation_flood";
    case Limit::kControlFlood: return "control_frame_flood";
    case Limit::kEmptyFrames: return "empty_frame_flood";
    case Limit::kConcurrentStreams: return "max_concurrent_streams";
    case Limit::kConnectionMemory: return "connection_memory";
    case Limit::kProtocolError: return "protocol_error";
  }
  return "unknown";
}

namespace {

class Bucket {
 public:
  Bucket(RateLimit r, double now) : r_(r), tokens_(r.burst), last_(now) {}
  // Takes one token; false when the bucket is empty.
  bool take(double now) {
    if (r_.burst <= 0) return true;  // unlimited
    tokens_ = std::min(r_.burst, tokens_ + (now - last_) * r_.per_second);
    last_ = now;
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }
 private:
  RateLimit r_;
  double tokens_;
  double last_;
};

bool is_connection_specific(std::string_view name) {
  return is_hop_by_hop(name) || iequals(name, "content-length") || iequals(name, "host");
}

// Builds an nghttp2 header list; names lowercased (HTTP/2 requires it).
class NvList {
 public:
  void clear() {
    storage_.clear();
    spans_.clear();
    nva_.clear();
  }
  void reserve(size_t bytes) { storage_.reserve(bytes); }
  void add(std::string_view name, std::string_view value) {
    put(name, true);
    put(value, false);
  }
  // Fields a proxy must not pass on are dropped.
  void add_forwarded(std::span<const Header> headers) {
    for (const Header& h : headers) {
      if (h.name.empty() || h.name[0] == ':' || is_connection_specific(h.name)) continue;
      add(h.name, h.value);
    }
  }
  void add_pairs(const std::vector<std::pair<std::string, std::string>>& fields) {
    for (const auto& [n, v] : fields) add(n, v);
  }
  const std::vector<nghttp2_nv>& nva() {
    nva_.clear();
    auto* base = reinterpret_cast<uint8_t*>(storage_.data());
    for (size_t i = 0; i + 1 < spans_.size(); i += 2)
      nva_.push_back({base + spans_[i].first, base + spans_[i + 1].first, spans_[i].second, spans_[i + 1].second,
                      NGHTTP2_NV_FLAG_NONE});
    return nva_;
  }

 private:
  void put(std::string_view v, bool lowercase) {
    spans_.emplace_back(storage_.size(), v.size());
    for (char c : v) storage_.push_back(lowercase && c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c);
  }
  std::string storage_;
  std::vector<std::pair<size_t, size_t>> spans_;  // offsets into storage_, name/value alternating
  std::vector<nghttp2_nv> nva_;
};

// The data source of a stream: frames queued bytes, then END_STREAM (or
// trailers). Returns what nghttp2's read callback must return.
ssize_t pull_outbound(nghttp2_session* session, int32_t id, StreamBase& o, uint8_t* buf, size_t length,
                      uint32_t* flags, NvList& nv) {
  const size_t n = std::min(length, o.queued());
  if (n) {
    std::memcpy(buf, o.out.data() + o.out_sent, n);
    o.out_sent += n;
    if (o.out_sent == o.out.size()) {
      o.out.clear();
      o.out_sent = 0;
    } else if (o.out_sent >= 16384 && o.out_sent * 2 >= o.out.size()) {
      o.out.erase(0, o.out_sent);
      o.out_sent = 0;
    }
  }
  if (o.queued() == 0 && o.out_end) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!o.trailers.empty()) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      nv.clear();
      nv.add_pairs(o.trailers);
      const auto& nva = nv.nva();
      nghttp2_submit_trailer(session, id, nva.data(), nva.size());
    }
  } else if (n == 0) {
    o.deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

// nghttp2's data source callback for either end: frames the stream's queued
// bytes and tells the driver they left the queue.
template <class Impl, class S>
ssize_t read_stream_data(nghttp2_session* session, int32_t id, uint8_t* buf, size_t length, uint32_t* flags,
                         nghttp2_data_source* source, void* p) {
  Impl& d = *static_cast<Impl*>(p);
  auto& s = *static_cast<S*>(source->ptr);
  ssize_t n = pull_outbound(session, id, s, buf, length, flags, d.nv);
  if (n > 0) d.ev.on_progress(s);
  return n;
}

// The caller queued more bytes (or the end): frame them when the window allows.
void resume(nghttp2_session* session, StreamBase& s) {
  if (s.closed || !s.deferred) return;
  s.deferred = false;
  nghttp2_session_resume_data(session, s.id);
}

void reset_stream(nghttp2_session* session, StreamBase& s, uint32_t code) {
  if (!s.closed) nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, s.id, code);
}

// A DATA payload for stream `s` (null: unknown or not wanted, whose window is
// given back at once). Returns whether `s` took it.
bool take_data(nghttp2_session* session, StreamBase* s, int32_t id, const uint8_t* data, size_t len) {
  if (!s) {
    if (nghttp2_session_consume(session, id, len) != 0) nghttp2_session_consume_connection(session, len);
    return false;
  }
  s->body.append(reinterpret_cast<const char*>(data), len);
  s->unconsumed += len;
  return true;
}

// The caller took `n` body bytes: reopen the window by as much.
void give_window(nghttp2_session* session, StreamBase& s, size_t n) {
  n = std::min<size_t>(n, s.unconsumed);
  if (n == 0 || s.closed) return;
  s.unconsumed -= n;
  nghttp2_session_consume(session, s.id, n);
}

// nghttp2 closed the stream: its unread bytes go back to the connection
// window, and the codec forgets it.
void release_stream(nghttp2_session* session, StreamBase& s, uint32_t code) {
  nghttp2_session_set_stream_user_data(session, s.id, nullptr);
  if (s.unconsumed) nghttp2_session_consume_connection(session, s.unconsumed);
  s.unconsumed = 0;
  s.closed = true;
  s.close_code = code;
}

// Options both ends use: manual window updates (the driver reads at its
// pace) and the HPACK table bound for what we send.
nghttp2_option* new_options(uint32_t header_table_bytes) {
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_deflate_dynamic_table_size(opt, header_table_bytes);
  return opt;
}

// The first SETTINGS, and the connection window when it is above the default.
void send_settings(nghttp2_session* session, std::span<const nghttp2_settings_entry> iv, uint32_t connection_window) {
  nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, iv.data(), iv.size());
  if (connection_window > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE)
    nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, static_cast<int32_t>(connection_window));
}

// Appends frames nghttp2 wants to send, up to about `max` bytes.
bool produce_frames(nghttp2_session* session, std::string& out, size_t max) {
  const size_t before = out.size();
  while (out.size() < max) {
    const uint8_t* p = nullptr;
    ssize_t n = nghttp2_session_mem_send(session, &p);
    if (n <= 0) break;  // nothing more, or a fatal error (the connection then ends)
    out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }
  return out.size() > before;
}

std::string_view view(const uint8_t* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

}  // namespace

struct ServerCodec::Impl {
  Impl(const Options& o, ServerEvents& e, ServerCodec& c, double now_s)
      : opts(o), ev(e), owner(c), resets(o.resets, now_s), control(o.control_frames, now_s),
        empty(o.empty_frames, now_s), now(now_s) {}

  const Options opts;  // a copy: callers may pass a temporary
  ServerEvents& ev;
  ServerCodec& owner;
  nghttp2_session* session = nullptr;
  Bucket resets, control, empty;
  double now;
  bool limit_hit = false;
  Limit pending_limit = Limit::kProtocolError;
  NvList nv;  // scratch for outgoing header blocks

  Stream* stream(int32_t id) const {
    return static_cast<Stream*>(nghttp2_session_get_stream_user_data(session, id));
  }

  int fail(Limit l) {
    limit_hit = true;
    pending_limit = l;
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }

  void add_memory(int64_t delta) {
    owner.memory_ = static_cast<uint64_t>(static_cast<int64_t>(owner.memory_) + delta);
  }

  // ---- nghttp2 callbacks ----

  static Impl& self(void* p) { return *static_cast<Impl*>(p); }

  static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* p) {
    Impl& d = self(p);
    const bool end_stream = hd->flags & NGHTTP2_FLAG_END_STREAM;
    switch (hd->type) {
      case NGHTTP2_DATA:
      case NGHTTP2_HEADERS:
      case NGHTTP2_CONTINUATION:
        if (hd->length == 0 && !end_stream && !d.empty.take(d.now)) return d.fail(Limit::kEmptyFrames);
        break;
      case NGHTTP2_PING:
      case NGHTTP2_SETTINGS:
        if (!(hd->flags & NGHTTP2_FLAG_ACK) && !d.control.take(d.now)) return d.fail(Limit::kControlFlood);
        break;
      case NGHTTP2_PRIORITY:
        if (!d.control.take(d.now)) return d.fail(Limit::kControlFlood);
        break;
      default:
        break;
    }
    return 0;
  }

  static int on_begin_headers(nghttp2_session* session, const nghttp2_frame* frame, void* p) {
    Impl& d = self(p);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    Stream* s = d.ev.open_stream(frame->hd.stream_id);
    if (!s) {
      nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_REFUSED_STREAM);
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    s->id = frame->hd.stream_id;
    nghttp2_session_set_stream_user_data(session, s->id, s);
    ++d.owner.active_;
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                       const uint8_t* value, size_t valuelen, uint8_t, void* p) {
    Impl& d = self(p);
    Stream* s = d.stream(frame->hd.stream_id);
    if (!s) return 0;
    s->header_bytes += namelen + valuelen + 32;
    if (s->reject_status) return 0;
    if (s->header_bytes > d.opts.max_header_list_bytes || s->field_offsets.size() / 2 >= d.opts.max_headers) {
      s->reject_status = 431;
      return 0;
    }
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;  // request trailers: counted, not kept
    auto put = [&](const uint8_t* b, size_t n) {
      s->field_offsets.emplace_back(static_cast<uint32_t>(s->head_storage.size()), static_cast<uint32_t>(n));
      s->head_storage.append(reinterpret_cast<const char*>(b), n);
    };
    put(name, namelen);
    put(value, valuelen);
    d.add_memory(static_cast<int64_t>(namelen + valuelen));
    if (d.owner.memory_ > d.opts.max_connection_memory) return d.fail(Limit::kConnectionMemory);
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* p) {
    Impl& d = self(p);
    const bool end_stream = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS: {
        Stream* s = d.stream(frame->hd.stream_id);
        if (!s) return 0;
        if (end_stream) s->body_done = true;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
          d.finish_head(*s);
        } else if (end_stream && s->reject_status == 0) {
          d.ev.on_progress(*s);  // trailers ended the body
        }
        return 0;
      }
      case NGHTTP2_DATA: {
        Stream* s = d.stream(frame->hd.stream_id);
        if (s && end_stream) {
          s->body_done = true;
          if (s->reject_status == 0) d.ev.on_progress(*s);
        }
        return 0;
      }
      case NGHTTP2_RST_STREAM:
        if (!d.resets.take(d.now)) return d.fail(Limit::kRapidReset);
        return 0;
      default:
        return 0;
    }
  }

  static int on_data_chunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data, size_t len, void* p) {
    Impl& d = self(p);
    Stream* s = d.stream(id);
    if (!take_data(session, s && !s->reject_status ? s : nullptr, id, data, len)) return 0;
    d.add_memory(static_cast<int64_t>(len));
    if (d.owner.memory_ > d.opts.max_connection_memory) return d.fail(Limit::kConnectionMemory);
    d.ev.on_progress(*s);
    return 0;
  }

  static int on_stream_close(nghttp2_session* session, int32_t id, uint32_t code, void* p) {
    Impl& d = self(p);
    Stream* s = d.stream(id);
    if (!s) return 0;
    d.add_memory(-static_cast<int64_t>(s->body.size() + s->head_storage.size()));
    release_stream(session, *s, code);
    --d.owner.active_;
    d.ev.on_closed(*s);
    return 0;
  }

  static int on_invalid_frame(nghttp2_session*, const nghttp2_frame* frame, int lib_error, void* p) {
    Impl& d = self(p);
    const bool refused = frame->hd.type == NGHTTP2_HEADERS &&
                         (lib_error == NGHTTP2_ERR_REFUSED_STREAM ||
                          d.owner.active_ >= d.opts.max_concurrent_streams);
    d.ev.on_limit(refused ? Limit::kConcurrentStreams : Limit::kProtocolError);
    return 0;
  }

  // ---- helpers ----

  void finish_head(Stream& s) {
    if (s.reject_status) {
      ev.on_limit(Limit::kHeaderList);
      reject(s, s.reject_status, "request header list is too large");
      return;
    }
    RequestHead& h = s.head;
    h.headers.clear();
    h.version_minor = 1;
    h.keep_alive = true;
    std::string_view authority;
    bool has_host = false;
    const char* base = s.head_storage.data();
    for (size_t i = 0; i + 1 < s.field_offsets.size(); i += 2) {
      std::string_view name(base + s.field_offsets[i].first, s.field_offsets[i].second);
      std::string_view value(base + s.field_offsets[i + 1].first, s.field_offsets[i + 1].second);
      if (!name.empty() && name[0] == ':') {
        if (name == ":method") h.method = value;
        else if (name == ":path") h.target = value;
        else if (name == ":authority") authority = value;
        continue;
      }
      if (name == "host") has_host = true;
      if (name == "content-length") {
        uint64_t v = 0;
        for (char c : value) v = v * 10 + static_cast<uint64_t>(c - '0');  // nghttp2 checked the digits
        h.content_length = v;
      }
      h.headers.push_back({name, value});
    }
    if (!has_host && !authority.empty()) h.headers.push_back({"host", authority});
    s.field_offsets.clear();
    s.field_offsets.shrink_to_fit();
    if (h.target.empty() || h.target[0] != '/') {
      // CONNECT and asterisk-form: nothing here serves them.
      reject(s, h.method == "CONNECT" ? 405 : 400, "unsupported request target");
      return;
    }
    ev.on_request(s);
  }

  void reject(Stream& s, int status, std::string_view reason) {
    ev.on_rejected(status, reason);
    std::string body = error_body(reason, error_type_for_status(status),
                                  status == 431 ? "request_header_fields_too_large" : "bad_request");
    std::array<Header, 1> hs{{{"content-type", "application/json"}}};
    s.out = std::move(body);
    s.out_end = true;
    (void)owner.submit_head(s, status, hs, s.out.size(), true);
  }

};

ServerCodec::ServerCodec(const Options& opts, ServerEvents& events, double now_s)
    : impl_(std::make_unique<Impl>(opts, events, *this, now_s)) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, Impl::on_begin_frame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, Impl::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, Impl::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, Impl::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, Impl::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, Impl::on_stream_close);
  nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, Impl::on_invalid_frame);
  nghttp2_option* opt = new_options(opts.header_table_bytes);
  nghttp2_option_set_max_continuations(opt, opts.max_continuations);
  // nghttp2's own reset limit stays above ours, so ours (ENHANCE_YOUR_CALM) acts first.
  nghttp2_option_set_stream_reset_rate_limit(opt, static_cast<uint64_t>(opts.resets.burst * 4 + 1000),
                                             static_cast<uint64_t>(opts.resets.per_second * 4 + 100));
  nghttp2_session_server_new2(&impl_->session, cbs, impl_.get(), opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  const nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, opts.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, opts.stream_window_bytes},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, opts.max_header_list_bytes},
      {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, opts.header_table_bytes},
  };
  send_settings(impl_->session, iv, opts.connection_window_bytes);
}

ServerCodec::~ServerCodec() { nghttp2_session_del(impl_->session); }

Status ServerCodec::receive(std::string_view bytes, double now_s) {
  Impl& d = *impl_;
  d.now = now_s;
  if (d.limit_hit) return Status(Errc::kInvalid, "connection terminated");
  ssize_t rv = nghttp2_session_mem_recv(d.session, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (rv >= 0) return Status::ok();
  Limit l = Limit::kProtocolError;
  uint32_t code = NGHTTP2_PROTOCOL_ERROR;
  if (d.limit_hit) {
    l = d.pending_limit;
    code = NGHTTP2_ENHANCE_YOUR_CALM;
  } else if (rv == NGHTTP2_ERR_FLOODED) {
    l = Limit::kControlFlood;
    code = NGHTTP2_ENHANCE_YOUR_CALM;
  } else if (rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
    l = Limit::kContinuationFlood;
    code = NGHTTP2_ENHANCE_YOUR_CALM;
  } else if (rv == NGHTTP2_ERR_HEADER_COMP) {
    code = NGHTTP2_COMPRESSION_ERROR;
  }
  d.limit_hit = true;
  d.ev.on_limit(l);
  nghttp2_session_terminate_session(d.session, code);
  return Status(Errc::kInvalid, std::string("http2: ") + std::string(limit_name(l)) + ": " + nghttp2_strerror(static_cast<int>(rv)));
}

bool ServerCodec::produce(std::string& out, size_t max) { return produce_frames(impl_->session, out, max); }

bool ServerCodec::wants_read() const { return nghttp2_session_want_read(impl_->session) != 0 && !impl_->limit_hit; }
bool ServerCodec::wants_write() const { return nghttp2_session_want_write(impl_->session) != 0; }

Status ServerCodec::submit_head(Stream& s, int status, std::span<const Header> headers,
                                std::optional<uint64_t> content_length, bool has_body) {
  Impl& d = *impl_;
  if (s.closed) return Status(Errc::kClosed, "stream closed");
  if (s.response_started) return Status(Errc::kInternal, "response head sent twice");
  s.response_started = true;
  // Names must be lowercase on the wire; connection-specific fields do not exist in HTTP/2.
  const std::string status_text = std::to_string(status);
  d.nv.clear();
  d.nv.add(":status", status_text);
  d.nv.add_forwarded(headers);
  std::string cl;
  if (content_length && status != 204 && status != 304) {
    cl = std::to_string(*content_length);
    d.nv.add("content-length", cl);
  }
  const auto& nva = d.nv.nva();
  nghttp2_data_provider prd;
  prd.source.ptr = &s;
  prd.read_callback = read_stream_data<Impl, Stream>;
  int rv = nghttp2_submit_response(d.session, s.id, nva.data(), nva.size(), has_body ? &prd : nullptr);
  if (rv != 0) return Status(Errc::kInternal, std::string("http2 submit: ") + nghttp2_strerror(rv));
  return Status::ok();
}

void ServerCodec::data_ready(Stream& s) { resume(impl_->session, s); }

void ServerCodec::reset(Stream& s, uint32_t code) { reset_stream(impl_->session, s, code); }

void ServerCodec::consume(Stream& s, size_t n) {
  // A closed stream's bytes were released (memory and window) when it closed.
  if (n == 0 || s.closed) return;
  impl_->add_memory(-static_cast<int64_t>(n));
  give_window(impl_->session, s, n);
}

void ServerCodec::shutdown(bool final) {
  if (final) {
    nghttp2_submit_goaway(impl_->session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(impl_->session),
                          NGHTTP2_NO_ERROR, nullptr, 0);
  } else {
    nghttp2_submit_shutdown_notice(impl_->session);
  }
}

void ServerCodec::terminate(uint32_t code) { nghttp2_session_terminate_session(impl_->session, code); }

}  // namespace sluice::http::h2

// ---- Client ----

namespace sluice::http::h2 {

struct ClientCodec::Impl {
  Impl(const ClientOptions& o, ClientEvents& e, ClientCodec& c) : opts(o), ev(e), owner(c) {}
  const ClientOptions opts;  // a copy: callers may pass a temporary
  ClientEvents& ev;
  ClientCodec& owner;
  nghttp2_session* session = nullptr;
  NvList nv;

  static Impl& self(void* p) { return *static_cast<Impl*>(p); }
  ClientStream* stream(int32_t id) const {
    return static_cast<ClientStream*>(nghttp2_session_get_stream_user_data(session, id));
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                       const uint8_t* value, size_t valuelen, uint8_t, void* p) {
    Impl& d = self(p);
    ClientStream* s = d.stream(frame->hd.stream_id);
    if (!s || frame->hd.type != NGHTTP2_HEADERS) return 0;
    s->header_bytes += namelen + valuelen + 32;
    if (s->header_bytes > d.opts.max_response_header_bytes) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (frame->headers.cat == NGHTTP2_HCAT_HEADERS && s->head_done) return 0;  // trailers: not kept
    std::string_view n = view(name, namelen), v = view(value, valuelen);
    if (n == ":status") {
      int st = 0;
      for (char c : v) st = st * 10 + (c - '0');  // nghttp2 checked it is three digits
      s->status = st;
      return 0;
    }
    s->headers.emplace_back(std::string(n), std::string(v));
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* p) {
    Impl& d = self(p);
    switch (frame->hd.type) {
      case NGHTTP2_HEADERS: {
        ClientStream* s = d.stream(frame->hd.stream_id);
        if (!s) return 0;
        if (!s->head_done && s->status >= 200) {
          s->head_done = true;
          d.ev.on_head(*s);
        } else if (!s->head_done) {
          s->headers.clear();  // an interim (1xx) head
          s->status = 0;
        }
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
          s->body_done = true;
          d.ev.on_progress(*s);
        }
        return 0;
      }
      case NGHTTP2_DATA: {
        ClientStream* s = d.stream(frame->hd.stream_id);
        if (s && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
          s->body_done = true;
          d.ev.on_progress(*s);
        }
        return 0;
      }
      case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) d.ev.on_ping_ack();
        return 0;
      case NGHTTP2_GOAWAY:
        d.owner.goaway_ = true;
        d.ev.on_goaway(frame->goaway.last_stream_id, frame->goaway.error_code);
        return 0;
      default:
        return 0;
    }
  }

  // The connection window reopens at once; only the stream's waits for its
  // reader. So memory stays bounded by the stream windows, and streams whose
  // readers stall cannot starve the others of connection window.
  static int on_data_chunk(nghttp2_session* session, uint8_t, int32_t id, const uint8_t* data, size_t len, void* p) {
    Impl& d = self(p);
    ClientStream* s = d.stream(id);
    if (take_data(session, s, id, data, len)) {
      nghttp2_session_consume_connection(session, len);
      d.ev.on_progress(*s);
    }
    return 0;
  }

  static int on_stream_close(nghttp2_session* session, int32_t id, uint32_t code, void* p) {
    Impl& d = self(p);
    ClientStream* s = d.stream(id);
    if (!s) return 0;
    s->unconsumed = 0;  // the connection window got these back on arrival
    release_stream(session, *s, code);
    --d.owner.active_;
    d.ev.on_closed(*s);
    return 0;
  }
};

ClientCodec::ClientCodec(const ClientOptions& opts, ClientEvents& events)
    : impl_(std::make_unique<Impl>(opts, events, *this)) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_header_callback(cbs, Impl::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, Impl::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, Impl::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, Impl::on_stream_close);
  nghttp2_option* opt = new_options(opts.header_table_bytes);
  nghttp2_session_client_new2(&impl_->session, cbs, impl_.get(), opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  const nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, opts.stream_window_bytes},
      {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, opts.header_table_bytes},
  };
  send_settings(impl_->session, iv, opts.connection_window_bytes);
}

ClientCodec::~ClientCodec() { nghttp2_session_del(impl_->session); }

Status ClientCodec::submit_request(ClientStream& s, std::string_view method, std::string_view scheme,
                                   std::string_view authority, std::string_view path,
                                   std::span<const Header> headers, bool has_body) {
  Impl& d = *impl_;
  d.nv.clear();
  d.nv.add(":method", method);
  d.nv.add(":scheme", scheme);
  d.nv.add(":authority", authority);
  d.nv.add(":path", path);
  d.nv.add_forwarded(headers);
  const auto& nva = d.nv.nva();
  nghttp2_data_provider prd;
  prd.source.ptr = &s;
  prd.read_callback = read_stream_data<Impl, ClientStream>;
  int32_t id = nghttp2_submit_request(d.session, nullptr, nva.data(), nva.size(), has_body ? &prd : nullptr, &s);
  if (id < 0) return Status(Errc::kUnavailable, std::string("http2 request: ") + nghttp2_strerror(id));
  s.id = id;
  ++active_;
  return Status::ok();
}

void ClientCodec::data_ready(ClientStream& s) { resume(impl_->session, s); }

void ClientCodec::reset(ClientStream& s, uint32_t code) { reset_stream(impl_->session, s, code); }

void ClientCodec::consume(ClientStream& s, size_t n) {
  n = std::min<size_t>(n, s.unconsumed);
  if (n == 0 || s.closed) return;
  s.unconsumed -= n;
  nghttp2_session_consume_stream(impl_->session, s.id, n);
}

void ClientCodec::ping() { nghttp2_submit_ping(impl_->session, NGHTTP2_FLAG_NONE, nullptr); }

Status ClientCodec::receive(std::string_view bytes) {
  ssize_t rv = nghttp2_session_mem_recv(impl_->session, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  if (rv < 0) return Status(Errc::kInvalid, std::string("http2: ") + nghttp2_strerror(static_cast<int>(rv)));
  return Status::ok();
}

bool ClientCodec::produce(std::string& out, size_t max) { return produce_frames(impl_->session, out, max); }

bool ClientCodec::wants_read() const { return nghttp2_session_want_read(impl_->session) != 0; }
bool ClientCodec::wants_write() const { return nghttp2_session_want_write(impl_->session) != 0; }

uint32_t ClientCodec::peer_max_concurrent_streams() const {
  return nghttp2_session_get_remote_settings(impl_->session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

}  // namespace sluice::http::h2
