// render_process_metrics(): the process_* metrics every Prometheus client
// library exports, read from procfs at scrape time.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <system_error>

#include "obs/metrics.h"
#include "obs/prometheus_text.h"

namespace sluice::obs {
namespace {

std::optional<std::string> read_file(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return std::move(s).str();
}

// Seconds since the epoch at which the machine booted (`btime` in /proc/stat).
std::optional<double> boot_time() {
  auto stat = read_file("/proc/stat");
  if (!stat) return std::nullopt;
  const auto pos = stat->find("\nbtime ");
  if (pos == std::string::npos) return std::nullopt;
  return std::strtod(stat->c_str() + pos + 7, nullptr);
}

}  // namespace

std::string render_process_metrics() {
  std::string out;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));

  // /proc/self/stat: "pid (comm) state ppid ...". comm may contain spaces and
  // parentheses, so fields are counted from the last ')'. Field numbers below
  // are those of proc(5).
  std::optional<double> cpu, start, vsize, rss;
  if (auto stat = read_file("/proc/self/stat")) {
    const auto close = stat->rfind(')');
    if (close != std::string::npos) {
      std::istringstream fields(stat->substr(close + 2));
      std::string f;
      double utime = 0, stime = 0;
      for (int n = 3; fields >> f; ++n) {
        if (n == 14) utime = std::strtod(f.c_str(), nullptr);
        if (n == 15) stime = std::strtod(f.c_str(), nullptr);
        if (n == 22) {
          if (auto boot = boot_time()) start = *boot + std::strtod(f.c_str(), nullptr) / ticks;
        }
        if (n == 23) vsize = std::strtod(f.c_str(), nullptr);
        if (n == 24) {
          rss = std::strtod(f.c_str(), nullptr) * page;
          cpu = (utime + stime) / ticks;
          break;
        }
      }
    }
  }

  std::optional<double> max_fds;
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
    max_fds = static_cast<double>(lim.rlim_cur);
  }

  std::optional<double> open_fds;
  std::error_code ec;
  std::filesystem::directory_iterator it("/proc/self/fd", ec), end;
  if (!ec) {
    double n = 0;
    for (; it != end; it.increment(ec)) {
      if (ec) break;
      ++n;
    }
    if (!ec) open_fds = n;
  }

  auto emit = [&out](std::string_view name, std::string_view help, std::string_view type,
                     const std::optional<double>& v) {
    if (v) append_single_sample(out, name, help, type, *v);
  };
  emit("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
       "counter", cpu);
  emit("process_max_fds", "Maximum number of open file descriptors.", "gauge", max_fds);
  emit("process_open_fds", "Number of open file descriptors.", "gauge", open_fds);
  emit("process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", rss);
  emit("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
       "gauge", start);
  emit("process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", vsize);
  return out;
}

}  // namespace sluice::obs
