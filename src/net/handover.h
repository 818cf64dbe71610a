// Listening sockets handed from a running sluice to its successor (a binary
// upgrade with zero downtime, as nginx does on SIGUSR2).
//
// The running process forks and executes the binary now at its own path with
// its own arguments; the child inherits the listening sockets themselves
// (not new ones on the same port), so no connection waiting in a backlog is
// lost, and a pipe on which it says "ready" once it serves. Only then does the
// old process stop accepting and drain. A child that exits or stays silent
// leaves the old process serving as before.
//
// The child learns what it inherited from the environment:
//   SLUICE_LISTEN_FDS="api:3,4;tls:5,6;admin:7"   SLUICE_READY_FD=8
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/status.h"

namespace sluice::net {

struct HandedSockets {
  std::vector<int> api, tls, admin;
  int ready_fd = -1;  // the child writes "ready\n" here once it serves; -1: not a successor
  bool empty() const { return api.empty() && tls.empty() && admin.empty(); }
};

// What this process was handed, read from (and then removed from) the
// environment, so the process's own successor starts clean. Descriptors
// that are not listening sockets are refused.
Result<HandedSockets> take_handed_sockets();

// Starts `exe` with `argv` (argv[0] included) as the successor, handing it
// `sockets` (their descriptors stay open here too; sockets.ready_fd is the
// write end of the pipe it reports on). Every other descriptor is closed in it.
Result<pid_t> spawn_successor(const std::string& exe, const std::vector<std::string>& argv,
                              const HandedSockets& sockets);

// `sluice --upgrade-from PID` (a new binary at another path): copies the
// listening sockets of the running sluice `pid` on these addresses into this
// process (pidfd_getfd(2): needs the right to ptrace it, i.e. the same user
// and no Yama restriction, or CAP_SYS_PTRACE). Its other sockets are left
// alone. The addresses must have real ports (0 names no socket).
Result<HandedSockets> take_sockets_from(pid_t pid, const boost::asio::ip::tcp::endpoint& api,
                                        const std::optional<boost::asio::ip::tcp::endpoint>& tls,
                                        const boost::asio::ip::tcp::endpoint& admin);

// Starts the successor (spawn_successor with a pipe of its own as
// sockets.ready_fd) and waits until it reports ready, exits, or `timeout`
// passes. One that does not become ready is killed (if still there) and
// reaped; `error` says what happened ("exited with code 3", ...).
struct SuccessorOutcome {
  bool ready = false;
  pid_t pid = 0;
  std::string error;
};
boost::asio::awaitable<SuccessorOutcome> start_successor(std::string exe, std::vector<std::string> argv,
                                                         HandedSockets sockets, std::chrono::milliseconds timeout);

// The successor's side: tells the old process that it serves now.
void report_ready(int ready_fd);

// The path of the running binary, as it was at start (a replaced file shows
// as "... (deleted)" later).
std::string current_executable();

}  // namespace sluice::net
