#pragma once

#include <string>

namespace sluice::control {

// `sluice keys new`: prints a fresh key (shown once, never stored) and a
// config line with its salted hash. Exit status for main().
int keys_new(const std::string& prefix, const std::string& id);
// `sluice keys hash`: reads one key from stdin, prints only its hash.
int keys_hash();

}  // namespace sluice::control
