#pragma once

#include <string>

namespace sluice::control {

// `sluice --version`: version, git commit, build mode, compiler, and the
// versions of the libraries linked in (as they report themselves at run
// time where they can, so a library upgraded under the binary shows).
std::string version_text();

}  // namespace sluice::control
