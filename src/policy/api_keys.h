// API keys: how they are stored (salted hashes, never in clear), found
// (an index, not a scan of every key), checked (constant time) and made.
//
// A stored key is "sha256:<salt>:<hex>", hex = SHA-256(salt ":" key) in
// lowercase hex. The salt is 32 hex characters: the first 8 are a lookup
// hint, the first 4 bytes of SHA-256(key), and the other 24 are random. The
// hint tells which stored hashes to try for a presented key without keeping
// anything that would help find the key: for a generated key (238 random
// bits) 32 bits of an unsalted digest narrow nothing an attacker could use.
// Scripts can reproduce both: `printf %s "$key" | sha256sum | cut -c1-8`
// and `printf '%s:%s' "$salt" "$key" | sha256sum`.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace sluice::policy {

struct KeyHash {
  std::string salt;                // 32 hex characters
  std::array<uint8_t, 32> digest;  // SHA-256(salt ":" key)
  uint32_t hint = 0;               // the first 8 hex characters of the salt
};

// Parses "sha256:<salt>:<hex>"; the error says which part is wrong.
Result<KeyHash> parse_key_hash(std::string_view text);
// The stored form of `key` with a fresh random salt.
std::string hash_key(std::string_view key);
// Compares in constant time (for keys of the same length as any other).
bool key_matches(const KeyHash& h, std::string_view key);
// A new random key: `prefix` then 40 characters of [A-Za-z0-9] (238 bits).
std::string new_key(std::string_view prefix = "sk-sluice-");
// SHA-256(key), and the lookup hint of a presented key (its first 4 bytes).
std::array<uint8_t, 32> key_digest(std::string_view key);
uint32_t key_hint(std::string_view key);

// Which entry a presented key belongs to. Entries are indices the caller
// gives meaning to (its principals).
class KeyIndex {
 public:
  void add(KeyHash h, size_t entry);
  // The entry whose hash matches `key`, or -1. Hashes the key twice (the
  // hint, then the salted digest of each candidate: one unless hints collide).
  ptrdiff_t find(std::string_view key) const;
  // The same with SHA-256(key) already computed (key_digest()).
  ptrdiff_t find(std::string_view key, const std::array<uint8_t, 32>& digest) const;
  size_t size() const { return hashes_.size(); }

 private:
  std::vector<std::pair<KeyHash, size_t>> hashes_;
  std::unordered_multimap<uint32_t, size_t> by_hint_;  // hint -> index into hashes_
};

// A model name against a key's allow-list: exact names, or patterns with '*'
// matching any run of characters ("gpt-4o*", "*", "llama-*-instruct").
bool model_allowed(const std::vector<std::string>& patterns, std::string_view model);

}  // namespace sluice::policy
