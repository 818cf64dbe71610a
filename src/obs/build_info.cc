#include "obs/build_info.h"

#include "git_commit.h"  // generated at build time (cmake/git_commit.cmake)

namespace sluice::obs {

const BuildInfo& build_info() {
  static constexpr BuildInfo kInfo{SLUICE_VERSION, SLUICE_GIT_COMMIT, SLUICE_BUILD_MODE};
  return kInfo;
}

}  // namespace sluice::obs
