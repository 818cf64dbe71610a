#include "http/server_common.h"

namespace sluice::http {

void ConnectionSet::add(Member* m) {
  m->prev = nullptr;
  m->next = head_;
  if (head_) head_->prev = m;
  else tail_ = m;
  head_ = m;
  ++size_;
  if (draining_) m->drain();
}

void ConnectionSet::remove(Member* m) {
  if (m->prev) m->prev->next = m->next;
  else head_ = m->next;
  if (m->next) m->next->prev = m->prev;
  else tail_ = m->prev;
  m->prev = m->next = nullptr;
  --size_;
}

size_t ConnectionSet::buffered_bytes() const {
  size_t n = 0;
  for (const Member* m = head_; m; m = m->next) n += m->buffered_bytes();
  return n;
}

bool ConnectionSet::close_oldest_idle() {
  for (Member* m = tail_; m; m = m->prev) {
    if (m->evicted || !m->idle()) continue;
    m->evicted = true;  // it stays listed until its coroutine ends
    m->drain();         // an idle connection closes at once (HTTP/2: after a GOAWAY)
    return true;
  }
  return false;
}

void ConnectionSet::drain_all() {
  draining_ = true;
  for (Member* m = head_; m;) {
    Member* next = m->next;  // drain() may close but never unlinks synchronously
    m->drain();
    m = next;
  }
}

namespace {
constexpr int64_t kMs = 1'000'000;
}

int64_t BodyClock::next_wait_ms(uint64_t received, int64_t now_ns) const {
  int64_t until = last_ns_ + o_.body_timeout_ms * kMs;
  if (o_.body_deadline_ms > 0) until = std::min(until, start_ns_ + o_.body_deadline_ms * kMs);
  if (o_.min_body_rate > 0) {
    // The moment the average rate would fall below the minimum with no more bytes.
    const int64_t rate_ok_until =
        start_ns_ + static_cast<int64_t>(static_cast<double>(received) * 1e9 / static_cast<double>(o_.min_body_rate));
    until = std::min(until, std::max(start_ns_ + o_.min_body_rate_grace_ms * kMs, rate_ok_until));
  }
  return std::max<int64_t>(1, (until - now_ns + kMs - 1) / kMs);
}

const char* BodyClock::broken(uint64_t received, int64_t now_ns) const {
  if (o_.body_deadline_ms > 0 && now_ns - start_ns_ >= o_.body_deadline_ms * kMs) return "body_timeout";
  if (o_.min_body_rate > 0 && now_ns - start_ns_ >= o_.min_body_rate_grace_ms * kMs &&
      static_cast<double>(received) < static_cast<double>(o_.min_body_rate) * static_cast<double>(now_ns - start_ns_) / 1e9)
    return "min_body_rate";
  if (now_ns - last_ns_ >= o_.body_timeout_ms * kMs) return "body_gap";
  return nullptr;
}

std::string_view BodyClock::describe(const char* limit) {
  std::string_view l = limit ? limit : "";
  if (l == "body_timeout") return "the request body did not arrive within the body timeout";
  if (l == "min_body_rate") return "the request body arrived too slowly (below the minimum data rate)";
  return "the request body stalled";
}

}  // namespace sluice::http
