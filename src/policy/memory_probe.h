// What the memory-watermark sampler reads from the kernel.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace sluice::policy {

// Resident set size of this process (/proc/self/statm), in bytes; 0 if unknown.
uint64_t process_rss_bytes();

// The memory limit of this process's cgroup: memory.max (cgroup v2) or
// memory.limit_in_bytes (v1); nothing when unlimited or not in a container.
// `root` is where the cgroup file systems are mounted (tests pass a fake tree).
std::optional<uint64_t> cgroup_memory_limit(const std::string& root = "/sys/fs/cgroup",
                                            const std::string& self_cgroup = "/proc/self/cgroup");

}  // namespace sluice::policy
