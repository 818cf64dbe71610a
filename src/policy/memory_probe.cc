#include "policy/memory_probe.h"

#include <unistd.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <string_view>

namespace sluice::policy {

namespace {

std::optional<uint64_t> read_number(const std::string& path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text)) return std::nullopt;
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) return std::nullopt;  // "max": unlimited
  return v;
}

}  // namespace

uint64_t process_rss_bytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

std::optional<uint64_t> cgroup_memory_limit(const std::string& root, const std::string& self_cgroup) {
  // Lines are "id:controllers:path"; v2 has the single line "0::/path".
  std::ifstream in(self_cgroup);
  std::string line;
  std::optional<uint64_t> limit;
  while (std::getline(in, line)) {
    const size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string_view controllers = std::string_view(line).substr(a + 1, b - a - 1);
    const std::string path = line.substr(b + 1);
    std::optional<uint64_t> v;
    if (controllers.empty()) {
      v = read_number(root + path + "/memory.max");
    } else if (controllers == "memory" || controllers.find("memory,") == 0 ||
               controllers.find(",memory") != std::string_view::npos) {
      v = read_number(root + "/memory" + path + "/memory.limit_in_bytes");
      if (v && *v >= (uint64_t{1} << 62)) v.reset();  // v1 writes "unlimited" as a huge number
    }
    if (v && (!limit || *v < *limit)) limit = v;
  }
  return limit;
}

}  // namespace sluice::policy
