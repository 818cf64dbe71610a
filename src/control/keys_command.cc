#include "control/keys_command.h"

#include <cstdio>
#include <iostream>

#include "policy/api_keys.h"

namespace sluice::control {

namespace {

bool printable_token(const std::string& s) {
  for (unsigned char c : s)
    if (c <= 0x20 || c >= 0x7f) return false;
  return !s.empty();
}

}  // namespace

int keys_new(const std::string& prefix, const std::string& id) {
  if (!prefix.empty() && !printable_token(prefix)) {
    std::fprintf(stderr, "sluice keys new: --prefix must be printable ASCII without spaces\n");
    return 2;
  }
  const std::string key = policy::new_key(prefix);
  std::printf("key:  %s\n", key.c_str());
  std::printf("      (shown once: sluice stores only the hash below)\n");
  std::printf("config (under auth.keys):\n");
  std::printf("  - {id: %s, hash: \"%s\"}\n", id.c_str(), policy::hash_key(key).c_str());
  return 0;
}

int keys_hash() {
  std::string key;
  if (!std::getline(std::cin, key)) {
    std::fprintf(stderr, "sluice keys hash: expected a key on stdin\n");
    return 2;
  }
  if (!key.empty() && key.back() == '\r') key.pop_back();
  if (!printable_token(key)) {
    std::fprintf(stderr, "sluice keys hash: a key is printable ASCII without spaces\n");
    return 2;
  }
  if (key.size() < 20) {
    std::fprintf(stderr, "sluice keys hash: the key is too short to be secret (%zu characters; use at least 20, "
                         "or `sluice keys new`)\n", key.size());
    return 2;
  }
  std::printf("%s\n", policy::hash_key(key).c_str());
  return 0;
}

}  // namespace sluice::control
