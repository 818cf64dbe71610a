// A real redis-server for unit tests: started on a free loopback port,
// stopped (by pid) when the object goes.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <string>

extern char** environ;

namespace sluice::testing {

inline uint16_t free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

class RedisServer {
 public:
  explicit RedisServer(uint16_t port) : port_(port) { start(); }
  ~RedisServer() { stop(); }
  void start() {
    const std::string p = std::to_string(port_);
    const char* argv[] = {"redis-server", "--port", p.c_str(), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                          "no", "--loglevel", "warning", nullptr};
    ASSERT_EQ(posix_spawnp(&pid_, "redis-server", nullptr, nullptr, const_cast<char**>(argv), environ), 0);
  }
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGCONT);
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  void pause() { kill(pid_, SIGSTOP); }
  void resume() { kill(pid_, SIGCONT); }

 private:
  uint16_t port_;
  pid_t pid_ = -1;
};

}  // namespace sluice::testing
