#include "policy/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstdlib>
#include <cstring>

namespace sluice::policy {

namespace {

constexpr std::string_view kHex = "0123456789abcdef";
constexpr size_t kSaltHex = 32;

// SHA-256 of a, b and c one after the other. The digest is fetched once and
// each thread keeps its own context: OpenSSL 3's one-shot SHA256() looks the
// algorithm up (under a lock) and allocates a context on every call.
std::array<uint8_t, 32> sha256(std::string_view a, std::string_view b = {}, std::string_view c = {}) {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  struct Ctx {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Ctx() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Ctx t;
  std::array<uint8_t, 32> out{};
  unsigned int n = 0;
  if (!md || !t.ctx || EVP_DigestInit_ex2(t.ctx, md, nullptr) != 1) std::abort();
  for (std::string_view part : {a, b, c})
    if (!part.empty()) EVP_DigestUpdate(t.ctx, part.data(), part.size());
  EVP_DigestFinal_ex(t.ctx, out.data(), &n);
  return out;
}

std::string to_hex(const uint8_t* p, size_t n) {
  std::string s(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = kHex[p[i] >> 4];
    s[2 * i + 1] = kHex[p[i] & 15];
  }
  return s;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // lowercase only: one spelling per hash
}

bool from_hex(std::string_view s, uint8_t* out, size_t n) {
  if (s.size() != n * 2) return false;
  for (size_t i = 0; i < n; ++i) {
    const int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

}  // namespace

std::array<uint8_t, 32> key_digest(std::string_view key) { return sha256(key); }

namespace {
uint32_t hint_of(const std::array<uint8_t, 32>& d) {
  return uint32_t{d[0]} << 24 | uint32_t{d[1]} << 16 | uint32_t{d[2]} << 8 | d[3];
}
}  // namespace

uint32_t key_hint(std::string_view key) { return hint_of(sha256(key)); }

Result<KeyHash> parse_key_hash(std::string_view text) {
  const std::string_view scheme = "sha256:";
  if (!text.starts_with(scheme))
    return Status(Errc::kInvalid, "expected \"sha256:<salt>:<hex>\" (make one with `sluice keys hash`)");
  text.remove_prefix(scheme.size());
  const size_t colon = text.find(':');
  if (colon == std::string_view::npos) return Status(Errc::kInvalid, "missing ':' between salt and digest");
  KeyHash h;
  const std::string_view salt = text.substr(0, colon), hex = text.substr(colon + 1);
  uint8_t salt_bytes[kSaltHex / 2];
  if (!from_hex(salt, salt_bytes, sizeof salt_bytes))
    return Status(Errc::kInvalid, "the salt must be 32 lowercase hex characters");
  if (!from_hex(hex, h.digest.data(), h.digest.size()))
    return Status(Errc::kInvalid, "the digest must be 64 lowercase hex characters (SHA-256)");
  h.salt = std::string(salt);
  h.hint = uint32_t{salt_bytes[0]} << 24 | uint32_t{salt_bytes[1]} << 16 | uint32_t{salt_bytes[2]} << 8 | salt_bytes[3];
  return h;
}

std::string hash_key(std::string_view key) {
  uint8_t salt[kSaltHex / 2];
  const uint32_t hint = key_hint(key);
  salt[0] = static_cast<uint8_t>(hint >> 24);
  salt[1] = static_cast<uint8_t>(hint >> 16);
  salt[2] = static_cast<uint8_t>(hint >> 8);
  salt[3] = static_cast<uint8_t>(hint);
  if (RAND_bytes(salt + 4, sizeof salt - 4) != 1) std::abort();  // no entropy: nothing safe to do
  const std::string salt_hex = to_hex(salt, sizeof salt);
  const auto d = sha256(salt_hex, ":", key);
  return "sha256:" + salt_hex + ":" + to_hex(d.data(), d.size());
}

bool key_matches(const KeyHash& h, std::string_view key) {
  const auto d = sha256(h.salt, ":", key);
  return CRYPTO_memcmp(d.data(), h.digest.data(), d.size()) == 0;
}

std::string new_key(std::string_view prefix) {
  static constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string key(prefix);
  while (key.size() < prefix.size() + 40) {
    uint8_t b[64];
    if (RAND_bytes(b, sizeof b) != 1) std::abort();
    for (uint8_t x : b)
      if (x < 248 && key.size() < prefix.size() + 40) key += kAlphabet[x % 62];  // 248 = 4 * 62: no bias
  }
  return key;
}

void KeyIndex::add(KeyHash h, size_t entry) {
  by_hint_.emplace(h.hint, hashes_.size());
  hashes_.emplace_back(std::move(h), entry);
}

ptrdiff_t KeyIndex::find(std::string_view key) const { return find(key, key_digest(key)); }

ptrdiff_t KeyIndex::find(std::string_view key, const std::array<uint8_t, 32>& digest) const {
  auto [lo, hi] = by_hint_.equal_range(hint_of(digest));
  for (auto it = lo; it != hi; ++it) {
    const auto& [h, entry] = hashes_[it->second];
    if (key_matches(h, key)) return static_cast<ptrdiff_t>(entry);
  }
  return -1;
}

bool model_allowed(const std::vector<std::string>& patterns, std::string_view model) {
  auto glob = [](std::string_view p, std::string_view s) {
    // Iterative '*' matching with one backtrack point (linear in practice).
    size_t pi = 0, si = 0, star = std::string_view::npos, mark = 0;
    while (si < s.size()) {
      if (pi < p.size() && p[pi] == '*') {
        star = pi++;
        mark = si;
      } else if (pi < p.size() && p[pi] == s[si]) {
        ++pi;
        ++si;
      } else if (star != std::string_view::npos) {
        pi = star + 1;
        si = ++mark;
      } else {
        return false;
      }
    }
    while (pi < p.size() && p[pi] == '*') ++pi;
    return pi == p.size();
  };
  for (const std::string& p : patterns)
    if (glob(p, model)) return true;
  return false;
}

}  // namespace sluice::policy
