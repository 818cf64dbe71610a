// What this binary is: version, git commit and build mode, for
// `sluice --version` and the sluice_build_info gauge.
#pragma once

#include <string_view>

namespace sluice::obs {

struct BuildInfo {
  std::string_view version;  // the project version (CMakeLists.txt)
  std::string_view commit;   // short git commit, "-dirty" with local changes, or "unknown"
  std::string_view mode;     // release | asan | tsan
};

const BuildInfo& build_info();

}  // namespace sluice::obs
