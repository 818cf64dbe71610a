// The HTTP/2 codecs wired back to back in memory: request/response framing,
// per-stream flow control, and the attack defences of the server codec.
#include <deque>
#include <map>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "http/h2/codec.h"

namespace sluice::http::h2 {
namespace {

struct ServerSide final : ServerEvents {
  ServerCodec* codec = nullptr;
  std::deque<Stream> streams;
  std::vector<Stream*> requests;
  std::map<Limit, int> limits;
  std::vector<int> rejected;
  bool auto_answer = true;

  Stream* open_stream(int32_t) override {
    streams.emplace_back();
    return &streams.back();
  }
  void on_request(Stream& s) override {
    requests.push_back(&s);
    if (!auto_answer) return;
    std::array<Header, 1> hs{{{"Content-Type", "text/plain"}}};
    ASSERT_TRUE(codec->submit_head(s, 200, hs, std::nullopt, true).is_ok());
    s.out = "hello " + std::string(s.head.target);
    s.out_end = true;
    codec->data_ready(s);
  }
  void on_progress(Stream&) override {}
  void on_closed(Stream&) override {}
  void on_rejected(int status, std::string_view) override { rejected.push_back(status); }
  void on_limit(Limit l) override { ++limits[l]; }
};

struct ClientSide final : ClientEvents {
  ClientCodec* codec = nullptr;
  std::set<int32_t> no_consume;  // streams whose data the client never takes
  int32_t goaway_code = -1;
  void on_progress(ClientStream& s) override {
    if (!no_consume.count(s.id) && s.unconsumed) codec->consume(s, s.unconsumed);
  }
  void on_goaway(int32_t, uint32_t code) override { goaway_code = static_cast<int32_t>(code); }
};

class H2Pair : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerCodec>(sopts_, srv_, 0.0);
    client_ = std::make_unique<ClientCodec>(copts_, cli_);
    srv_.codec = server_.get();
    cli_.codec = client_.get();
  }
  // Moves bytes both ways until neither side has anything to send.
  void pump(int rounds = 100) {
    for (int i = 0; i < rounds; ++i) {
      std::string up, down;
      client_->produce(up, 1 << 20);
      if (!up.empty()) server_ok_ = server_->receive(up, now_).is_ok() && server_ok_;
      server_->produce(down, 1 << 20);
      if (!down.empty()) (void)client_->receive(down);
      if (up.empty() && down.empty()) return;
    }
  }
  ClientStream& get(std::string path, std::vector<Header> headers = {}) {
    reqs_.emplace_back();
    ClientStream& r = reqs_.back();
    EXPECT_TRUE(client_->submit_request(r, "GET", "http", "example.test", path, headers, false).is_ok());
    return r;
  }

  Options sopts_;
  ClientOptions copts_;
  ServerSide srv_;
  ClientSide cli_;
  std::unique_ptr<ServerCodec> server_;
  std::unique_ptr<ClientCodec> client_;
  std::deque<ClientStream> reqs_;
  double now_ = 0;
  bool server_ok_ = true;
};

TEST_F(H2Pair, RequestAndResponseRoundTrip) {
  ClientStream& r = get("/v1/models?x=1", {{"X-Trace", "abc"}});
  pump();
  ASSERT_EQ(srv_.requests.size(), 1u);
  const RequestHead& h = srv_.requests[0]->head;
  EXPECT_EQ(h.method, "GET");
  EXPECT_EQ(h.target, "/v1/models?x=1");
  EXPECT_EQ(h.find("host"), "example.test");  // from :authority
  EXPECT_EQ(h.find("x-trace"), "abc");        // names arrive lowercase
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body_done);
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.body, "hello /v1/models?x=1");
  bool lower = false;
  for (const auto& [k, v] : r.headers) lower = lower || (k == "content-type" && v == "text/plain");
  EXPECT_TRUE(lower);
  EXPECT_EQ(server_->active_streams(), 0u);
}

TEST_F(H2Pair, OversizedHeaderListGets431OnItsStreamOnly) {
  sopts_.max_header_list_bytes = 2048;
  SetUp();
  std::string big(3000, 'v');
  ClientStream& bad = get("/big", {{"x-big", big}});
  ClientStream& good = get("/ok");
  pump();
  EXPECT_EQ(bad.status, 431);
  EXPECT_NE(bad.body.find("\"error\""), std::string::npos);
  EXPECT_EQ(good.status, 200);
  EXPECT_EQ(srv_.limits[Limit::kHeaderList], 1);
  ASSERT_EQ(srv_.rejected.size(), 1u);
  EXPECT_EQ(srv_.rejected[0], 431);
  EXPECT_TRUE(server_ok_);
}

TEST_F(H2Pair, RapidResetEndsTheConnectionWithEnhanceYourCalm) {
  sopts_.resets = {10, 20};
  SetUp();
  srv_.auto_answer = false;
  for (int i = 0; i < 40; ++i) {
    ClientStream& r = get("/r");
    pump(1);  // the HEADERS go out, then the RST_STREAM right behind them
    client_->reset(r, kCancel);
  }
  pump();
  EXPECT_FALSE(server_ok_);
  EXPECT_EQ(srv_.limits[Limit::kRapidReset], 1);
  EXPECT_EQ(cli_.goaway_code, static_cast<int32_t>(kEnhanceYourCalm));
}

TEST_F(H2Pair, ResetsWithinTheRateAreFine) {
  sopts_.resets = {10, 20};
  SetUp();
  srv_.auto_answer = false;
  for (int i = 0; i < 15; ++i) {
    ClientStream& r = get("/r");
    pump(1);
    client_->reset(r, kCancel);
  }
  pump();
  EXPECT_TRUE(server_ok_);
  EXPECT_EQ(srv_.limits.count(Limit::kRapidReset), 0u);
  EXPECT_EQ(cli_.goaway_code, -1);
}

TEST_F(H2Pair, PingFloodIsCutOff) {
  sopts_.control_frames = {10, 50};
  SetUp();
  pump();
  for (int i = 0; i < 200; ++i) client_->ping();
  pump();
  EXPECT_FALSE(server_ok_);
  EXPECT_EQ(srv_.limits[Limit::kControlFlood], 1);
  EXPECT_EQ(cli_.goaway_code, static_cast<int32_t>(kEnhanceYourCalm));
}

TEST_F(H2Pair, AStalledStreamDoesNotHoldBackItsNeighbour) {
  copts_.stream_window_bytes = 16 * 1024;
  SetUp();
  srv_.auto_answer = false;
  ClientStream& slow = get("/slow");
  ClientStream& fast = get("/fast");
  pump();
  ASSERT_EQ(srv_.requests.size(), 2u);
  cli_.no_consume.insert(slow.id);
  for (Stream* s : srv_.requests) {
    ASSERT_TRUE(server_->submit_head(*s, 200, {}, std::nullopt, true).is_ok());
    s->out.assign(200 * 1024, 'x');
    s->out_end = true;
    server_->data_ready(*s);
  }
  pump(1000);
  EXPECT_TRUE(fast.body_done);
  EXPECT_EQ(fast.body.size(), 200u * 1024);
  EXPECT_FALSE(slow.body_done);
  EXPECT_EQ(slow.body.size(), 16u * 1024);  // exactly its window, then nothing more
  Stream* slow_srv = srv_.requests[0]->id == slow.id ? srv_.requests[0] : srv_.requests[1];
  EXPECT_EQ(slow_srv->queued(), 200u * 1024 - 16 * 1024);
  // The client reads again: the rest flows.
  cli_.no_consume.clear();
  client_->consume(slow, slow.unconsumed);
  pump(1000);
  EXPECT_TRUE(slow.body_done);
  EXPECT_EQ(slow.body.size(), 200u * 1024);
}

TEST_F(H2Pair, StalledStreamsCannotStarveTheConnectionWindow) {
  // Eight stalled streams hold 8 x 64 KiB unread, twice the connection
  // window: the connection window reopened as the bytes arrived, so a ninth
  // stream still gets all of its body.
  copts_.stream_window_bytes = 64 * 1024;
  copts_.connection_window_bytes = 256 * 1024;
  SetUp();
  srv_.auto_answer = false;
  std::vector<ClientStream*> slow;
  for (int i = 0; i < 8; ++i) slow.push_back(&get("/slow"));
  ClientStream& fast = get("/fast");
  pump();
  ASSERT_EQ(srv_.requests.size(), 9u);
  for (ClientStream* s : slow) cli_.no_consume.insert(s->id);
  for (Stream* s : srv_.requests) {
    ASSERT_TRUE(server_->submit_head(*s, 200, {}, std::nullopt, true).is_ok());
    s->out.assign(300 * 1024, 'x');
    s->out_end = true;
    server_->data_ready(*s);
  }
  pump(2000);
  for (ClientStream* s : slow) EXPECT_EQ(s->body.size(), 64u * 1024);
  EXPECT_TRUE(fast.body_done);
  EXPECT_EQ(fast.body.size(), 300u * 1024);
}

TEST_F(H2Pair, RequestBodyWindowOpensOnlyAsTheBodyIsTaken) {
  sopts_.stream_window_bytes = 65535;
  SetUp();
  srv_.auto_answer = false;
  reqs_.emplace_back();
  ClientStream& r = reqs_.back();
  r.out.assign(200 * 1024, 'b');
  r.out_end = true;
  ASSERT_TRUE(client_->submit_request(r, "POST", "http", "h", "/up", {}, true).is_ok());
  pump();
  ASSERT_EQ(srv_.requests.size(), 1u);
  Stream& s = *srv_.requests[0];
  EXPECT_EQ(s.body.size(), 65535u);  // the window, no more
  EXPECT_FALSE(s.body_done);
  std::string all;
  for (int i = 0; i < 20 && !s.body_done; ++i) {
    all += s.body;
    server_->consume(s, s.body.size());
    s.body.clear();
    pump();
  }
  all += s.body;
  EXPECT_TRUE(s.body_done);
  EXPECT_EQ(all.size(), 200u * 1024);
}

TEST_F(H2Pair, GracefulShutdownLetsOpenStreamsFinish) {
  srv_.auto_answer = false;
  ClientStream& r = get("/long");
  pump();
  server_->shutdown(true);
  pump();
  EXPECT_EQ(cli_.goaway_code, static_cast<int32_t>(kNoError));
  EXPECT_TRUE(server_->wants_read());  // the open stream keeps the session going
  Stream& s = *srv_.requests[0];
  ASSERT_TRUE(server_->submit_head(s, 200, {}, 2, true).is_ok());
  s.out = "ok";
  s.out_end = true;
  server_->data_ready(s);
  pump();
  EXPECT_EQ(r.body, "ok");
  EXPECT_FALSE(server_->wants_read());
  EXPECT_FALSE(server_->wants_write());
}

}  // namespace
}  // namespace sluice::http::h2
