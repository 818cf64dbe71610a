#include "net/handover.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "net/listener.h"
#include "net/sleep.h"

extern char** environ;

namespace sluice::net {

namespace asio = boost::asio;

namespace {

constexpr const char* kFdsVar = "SLUICE_LISTEN_FDS";
constexpr const char* kReadyVar = "SLUICE_READY_FD";

bool parse_int(std::string_view s, int& out) {
  if (s.empty() || s.size() > 9) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

bool is_listening_socket(int fd) {
  int yes = 0;
  socklen_t len = sizeof yes;
  return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &yes, &len) == 0 && yes;
}

std::string join(const std::vector<int>& fds) {
  std::string s;
  for (int fd : fds) s += (s.empty() ? "" : ",") + std::to_string(fd);
  return s;
}

}  // namespace

Result<HandedSockets> take_handed_sockets() {
  HandedSockets out;
  const char* fds = std::getenv(kFdsVar);
  const char* ready = std::getenv(kReadyVar);
  const std::string spec = fds ? fds : "";
  const std::string ready_text = ready ? ready : "";
  ::unsetenv(kFdsVar);
  ::unsetenv(kReadyVar);
  if (spec.empty()) return out;
  // "api:3,4;tls:5;admin:7"
  std::string_view rest = spec;
  while (!rest.empty()) {
    const size_t semi = rest.find(';');
    std::string_view part = rest.substr(0, semi);
    rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
    const size_t colon = part.find(':');
    if (colon == std::string_view::npos) return Status(Errc::kInvalid, std::string(kFdsVar) + ": bad entry");
    const std::string_view kind = part.substr(0, colon);
    std::vector<int>* into = kind == "api" ? &out.api : kind == "tls" ? &out.tls : kind == "admin" ? &out.admin : nullptr;
    if (!into) return Status(Errc::kInvalid, std::string(kFdsVar) + ": unknown kind " + std::string(kind));
    std::string_view list = part.substr(colon + 1);
    while (!list.empty()) {
      const size_t comma = list.find(',');
      int fd = -1;
      if (!parse_int(list.substr(0, comma), fd) || !is_listening_socket(fd))
        return Status(Errc::kInvalid, std::string(kFdsVar) + ": descriptor " + std::string(list.substr(0, comma)) +
                                          " is not a listening socket");
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);  // not passed on by accident
      into->push_back(fd);
      list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    }
  }
  if (!ready_text.empty() && !parse_int(ready_text, out.ready_fd))
    return Status(Errc::kInvalid, std::string(kReadyVar) + ": not a descriptor");
  if (out.ready_fd >= 0) ::fcntl(out.ready_fd, F_SETFD, FD_CLOEXEC);
  return out;
}

Result<pid_t> spawn_successor(const std::string& exe, const std::vector<std::string>& argv,
                              const HandedSockets& sockets) {
  // Everything the child needs is built before fork(): after it, in a
  // process with threads, only async-signal-safe calls are allowed.
  std::vector<std::string> env_storage;
  for (char** e = environ; *e; ++e) {
    const std::string_view v(*e);
    if (v.starts_with(std::string(kFdsVar) + "=") || v.starts_with(std::string(kReadyVar) + "=")) continue;
    env_storage.emplace_back(v);
  }
  std::string spec = "api:" + join(sockets.api);
  if (!sockets.tls.empty()) spec += ";tls:" + join(sockets.tls);
  if (!sockets.admin.empty()) spec += ";admin:" + join(sockets.admin);
  env_storage.push_back(std::string(kFdsVar) + "=" + spec);
  env_storage.push_back(std::string(kReadyVar) + "=" + std::to_string(sockets.ready_fd));
  std::vector<char*> envp, args;
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_storage = argv;
  for (auto& a : argv_storage) args.push_back(a.data());
  args.push_back(nullptr);
  std::vector<int> keep = sockets.api;
  keep.insert(keep.end(), sockets.tls.begin(), sockets.tls.end());
  keep.insert(keep.end(), sockets.admin.begin(), sockets.admin.end());
  keep.push_back(sockets.ready_fd);
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  const unsigned max_fd = rl.rlim_cur == RLIM_INFINITY ? 65536u : static_cast<unsigned>(rl.rlim_cur);

  const pid_t pid = ::fork();
  if (pid < 0) return Status(Errc::kIo, std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    // Client connections and upstream sockets must not live on in the new
    // binary: everything is close-on-exec except what is handed over.
    if (::close_range(3, UINT_MAX, CLOSE_RANGE_CLOEXEC) != 0)
      for (unsigned fd = 3; fd < max_fd; ++fd) ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
    for (int fd : keep) ::fcntl(fd, F_SETFD, 0);
    ::execve(exe.c_str(), args.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

Result<HandedSockets> take_sockets_from(pid_t pid, const boost::asio::ip::tcp::endpoint& api,
                                        const std::optional<boost::asio::ip::tcp::endpoint>& tls,
                                        const boost::asio::ip::tcp::endpoint& admin) {
  for (const auto* ep : {&api, &admin})
    if (ep->port() == 0) return Status(Errc::kInvalid, "--upgrade-from needs fixed ports (port 0 names no socket)");
  if (tls && tls->port() == 0) return Status(Errc::kInvalid, "--upgrade-from needs fixed ports (server.tls.listen)");
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return Status(Errc::kIo, "--upgrade-from " + std::to_string(pid) + ": " + std::strerror(errno));
  HandedSockets out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    ::close(pidfd);
    return Status(Errc::kIo, "--upgrade-from: cannot list " + dir + ": " + std::strerror(errno));
  }
  std::string error;
  while (dirent* e = ::readdir(d)) {
    int target = -1;
    if (!parse_int(e->d_name, target)) continue;
    char link[64];
    const ssize_t n = ::readlinkat(::dirfd(d), e->d_name, link, sizeof link - 1);
    if (n <= 0 || std::string_view(link, static_cast<size_t>(n)).substr(0, 7) != "socket:") continue;
    const int fd = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd, target, 0));
    if (fd < 0) {
      error = "cannot take descriptor " + std::to_string(target) + " of pid " + std::to_string(pid) + ": " +
              std::strerror(errno) + " (pidfd_getfd needs the right to ptrace it)";
      break;
    }
    const auto have = is_listening_socket(fd) ? bound_endpoint(fd) : std::nullopt;
    if (have) {
      std::vector<int>* into = *have == api     ? &out.api
                               : *have == admin ? &out.admin
                               : tls && *have == *tls ? &out.tls
                                                      : nullptr;
      if (into) {
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        into->push_back(fd);
        continue;
      }
    }
    ::close(fd);  // a copy of a connection or of a socket we do not serve: the old process keeps its own
  }
  ::closedir(d);
  ::close(pidfd);
  auto close_all = [&] {
    for (auto* v : {&out.api, &out.tls, &out.admin})
      for (int fd : *v) ::close(fd);
  };
  if (!error.empty()) {
    close_all();
    return Status(Errc::kIo, "--upgrade-from: " + error);
  }
  if (out.api.empty()) {
    close_all();
    return Status(Errc::kInvalid, "--upgrade-from: pid " + std::to_string(pid) + " does not listen on " +
                                      api.address().to_string() + ":" + std::to_string(api.port()));
  }
  return out;
}

namespace {

enum class Heard { kReady, kGone, kTimedOut };

// Reads the successor's pipe until a line, EOF or `timeout`. Takes `fd`.
asio::awaitable<Heard> wait_ready(int fd, std::chrono::milliseconds timeout) {
  using namespace asio::experimental::awaitable_operators;
  auto ex = co_await asio::this_coro::executor;
  asio::posix::stream_descriptor pipe(ex, fd);
  asio::steady_timer timer(ex);
  timer.expires_after(timeout);
  char buf[16];
  std::string got;
  while (got.find('\n') == std::string::npos) {
    auto r = co_await (pipe.async_read_some(asio::buffer(buf), asio::as_tuple(asio::use_awaitable)) ||
                       timer.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (r.index() == 1) co_return Heard::kTimedOut;
    auto [ec, n] = std::get<0>(r);
    if (ec || n == 0) co_return Heard::kGone;  // it went away
    got.append(buf, n);
  }
  co_return got.starts_with("ready") ? Heard::kReady : Heard::kGone;
}

// Reaps `pid` when it has exited, polling for up to `tries` x 10 ms.
asio::awaitable<bool> reap(pid_t pid, int& status, int tries) {
  for (int i = 0; i <= tries; ++i) {
    if (::waitpid(pid, &status, WNOHANG) == pid) co_return true;
    if (i < tries) co_await sleep_for(std::chrono::milliseconds(10));
  }
  co_return false;
}

}  // namespace

asio::awaitable<SuccessorOutcome> start_successor(std::string exe, std::vector<std::string> argv,
                                                  HandedSockets sockets, std::chrono::milliseconds timeout) {
  SuccessorOutcome out;
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) {
    out.error = std::string("pipe: ") + std::strerror(errno);
    co_return out;
  }
  sockets.ready_fd = p[1];
  auto pid = spawn_successor(exe, argv, sockets);
  ::close(p[1]);
  if (!pid) {
    ::close(p[0]);
    out.error = pid.status().message();
    co_return out;
  }
  out.pid = *pid;
  const Heard heard = co_await wait_ready(p[0], timeout);
  if (heard == Heard::kReady) {
    out.ready = true;
    co_return out;
  }
  // Gone, or not ready in time: it must not serve beside us half-started.
  // One that closed the pipe is on its way out: a moment to exit by itself.
  int status = 0;
  const bool exited = heard == Heard::kGone && co_await reap(*pid, status, 100);
  if (!exited) {
    ::kill(*pid, SIGKILL);
    (void)co_await reap(*pid, status, 100);
  }
  out.error = "the new process (pid " + std::to_string(*pid) + ") ";
  if (exited && WIFEXITED(status)) out.error += "exited with code " + std::to_string(WEXITSTATUS(status));
  else if (exited && WIFSIGNALED(status)) out.error += "was killed by signal " + std::to_string(WTERMSIG(status));
  else if (heard == Heard::kGone) out.error += "closed its pipe without serving";
  else out.error += "did not report ready within " + std::to_string(timeout.count()) + " ms";
  out.error += " before it served";
  co_return out;
}

void report_ready(int ready_fd) {
  if (ready_fd < 0) return;
  static constexpr char kReady[] = "ready\n";
  (void)!::write(ready_fd, kReady, sizeof kReady - 1);
  ::close(ready_fd);
}

std::string current_executable() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace sluice::net
