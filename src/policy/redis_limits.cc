#include "policy/redis_limits.h"

#include <openssl/sha.h>

#include <chrono>

#include "core/clock.h"
#include "redis_scripts.h"  // generated from lua/*.lua

namespace sluice::policy {

namespace {

std::string sha1_hex(const std::string& s) {
  unsigned char d[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : d) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

const std::string& reserve_sha() {
  static const std::string s = sha1_hex(reserve_script());
  return s;
}
const std::string& settle_sha() {
  static const std::string s = sha1_hex(settle_script());
  return s;
}

int64_t now_ms() { return wall_us() / 1000; }

}  // namespace

const std::string& reserve_script() {
  static const std::string s(kReserveLua);
  return s;
}
const std::string& settle_script() {
  static const std::string s(kSettleLua);
  return s;
}

RedisLimiter::RedisLimiter(net::RedisClient& client, Options o) : client_(client), opts_(o) {}

void RedisLimiter::record(bool ok, int64_t now) {
  const bool was_open = failures_ >= opts_.breaker_failures;
  if (ok) {
    failures_ = 0;
    if (was_open) transition_ = true, opened_ = false;
    return;
  }
  ++failures_;
  if (failures_ >= opts_.breaker_failures) {
    open_until_ms_ = now + opts_.breaker_open_ms;
    if (!was_open) transition_ = true, opened_ = true;
  }
}

bool RedisLimiter::take_transition(bool& opened) {
  if (!transition_) return false;
  transition_ = false;
  opened = opened_;
  return true;
}

boost::asio::awaitable<Result<net::RedisReply>> RedisLimiter::eval(const std::string& script, const std::string& sha,
                                                                   std::vector<std::string> args) {
  std::vector<std::string> argv{"EVALSHA", sha, "0"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = co_await client_.command(argv, opts_.timeout_ms);
  if (r && r->type == net::RedisReply::Type::kError && r->str.starts_with("NOSCRIPT")) {
    // Not loaded in this Redis yet (or it restarted): EVAL loads it.
    argv[0] = "EVAL";
    argv[1] = script;
    r = co_await client_.command(std::move(argv), opts_.timeout_ms);
  }
  co_return r;
}

boost::asio::awaitable<RedisLimiter::Outcome> RedisLimiter::reserve(const std::vector<RedisLimit>& limits,
                                                                    int64_t now) {
  Outcome out;
  if (breaker_open(now_ms())) co_return out;  // kUnavailable without a call (the breaker runs on wall time)
  std::vector<std::string> args{std::to_string(now), std::to_string(opts_.window_ms), std::to_string(limits.size())};
  for (const RedisLimit& l : limits) {
    args.push_back(l.base);
    args.push_back(l.window ? "w" : "b");
    args.push_back(std::to_string(l.limit));
    args.push_back(std::to_string(l.cost));
    args.push_back(std::to_string(l.period));
  }
  auto r = co_await eval(reserve_script(), reserve_sha(), std::move(args));
  const bool ok = r && r->type == net::RedisReply::Type::kArray && !r->elements.empty() &&
                  r->elements[0].type == net::RedisReply::Type::kInteger;
  record(ok, now_ms());
  if (!ok) co_return out;
  if (r->elements[0].integer == 1) {
    out.verdict = Verdict::kAdmit;
    const int64_t idx = now / opts_.window_ms;
    for (const RedisLimit& l : limits)
      out.counters.push_back(l.base + ":" + std::to_string(l.window ? idx : l.period));
    co_return out;
  }
  out.verdict = Verdict::kRefuse;
  if (r->elements.size() >= 3) {
    out.limit = static_cast<size_t>(std::max<int64_t>(1, r->elements[1].integer) - 1);
    out.wait_ms = r->elements[2].integer;
  }
  co_return out;
}

boost::asio::awaitable<void> RedisLimiter::settle(std::vector<std::pair<std::string, int64_t>> deltas) {
  std::vector<std::string> args;
  for (auto& [key, d] : deltas) {
    if (d == 0) continue;
    args.push_back(std::move(key));
    args.push_back(std::to_string(d));
  }
  if (args.empty()) co_return;
  auto r = co_await eval(settle_script(), settle_sha(), std::move(args));
  record(r && r->type != net::RedisReply::Type::kError, now_ms());
}

}  // namespace sluice::policy
