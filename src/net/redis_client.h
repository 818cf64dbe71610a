// An asynchronous Redis client on one worker's event loop: hiredis for the
// protocol, Asio for the socket (hiredis's read/write hooks arm async waits
// on the connection's descriptor). Every command has a deadline; a client
// that lost its server fails commands fast and reconnects by itself (at most
// one attempt per reconnect interval). Only the owning thread may use it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "core/status.h"

namespace sluice::net {

struct RedisReply {
  enum class Type { kNil, kInteger, kString, kStatus, kError, kArray };
  Type type = Type::kNil;
  int64_t integer = 0;
  std::string str;  // string, status and error replies
  std::vector<RedisReply> elements;
};

class RedisClient {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    uint16_t port = 6379;
    int64_t reconnect_interval_ms = 200;
  };
  RedisClient(boost::asio::any_io_executor ex, Options o);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Sends one command. kTimeout when no reply came within timeout_ms,
  // kUnavailable when there is no connection (one is being made again).
  // A Redis error reply is a reply (Type::kError), not a failed Status.
  boost::asio::awaitable<Result<RedisReply>> command(std::vector<std::string> argv, int64_t timeout_ms);

  bool connected() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace sluice::net
