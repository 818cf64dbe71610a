#include "policy/memory_probe.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

namespace sluice::policy {
namespace {

namespace fs = std::filesystem;

struct FakeCgroups {
  fs::path root = fs::temp_directory_path() / ("sluice-cg-" + std::to_string(::getpid()));
  FakeCgroups() { fs::create_directories(root); }
  ~FakeCgroups() { fs::remove_all(root); }
  void write(const std::string& rel, const std::string& text) {
    fs::create_directories((root / rel).parent_path());
    std::ofstream(root / rel) << text;
  }
};

TEST(MemoryProbe, CgroupV2MemoryMax) {
  FakeCgroups cg;
  cg.write("self", "0::/kubepods/pod1\n");
  cg.write("fs/kubepods/pod1/memory.max", "536870912\n");
  EXPECT_EQ(cgroup_memory_limit((cg.root / "fs").string(), (cg.root / "self").string()), 536870912u);
  cg.write("fs/kubepods/pod1/memory.max", "max\n");
  EXPECT_FALSE(cgroup_memory_limit((cg.root / "fs").string(), (cg.root / "self").string()).has_value());
}

TEST(MemoryProbe, CgroupV1LimitInBytes) {
  FakeCgroups cg;
  cg.write("self", "9:pids:/\n4:memory:/docker/abc\n0::/\n");
  cg.write("fs/memory/docker/abc/memory.limit_in_bytes", "268435456\n");
  EXPECT_EQ(cgroup_memory_limit((cg.root / "fs").string(), (cg.root / "self").string()), 268435456u);
  cg.write("fs/memory/docker/abc/memory.limit_in_bytes", "9223372036854771712\n");  // unlimited
  EXPECT_FALSE(cgroup_memory_limit((cg.root / "fs").string(), (cg.root / "self").string()).has_value());
}

TEST(MemoryProbe, NoCgroupFile) {
  EXPECT_FALSE(cgroup_memory_limit("/nonexistent", "/nonexistent/self").has_value());
}

TEST(MemoryProbe, RssIsPlausible) {
  const uint64_t rss = process_rss_bytes();
  EXPECT_GT(rss, 1u << 20);
  EXPECT_LT(rss, uint64_t{8} << 30);
}

}  // namespace
}  // namespace sluice::policy
