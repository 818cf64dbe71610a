// A fast path for the header patterns people write: a whole-value match of
// a sequence of ASCII literals and ASCII character classes with repetition
// counts, e.g. ^[0-9a-f]{8}-[0-9a-f]{4}-...$ or ^Bearer [A-Za-z0-9._~+/-]+=*$.
//
// compile() accepts only patterns whose meaning it can reproduce exactly:
// no alternation, groups, dot, negated classes, case folding or non-ASCII
// (so UTF-8 decoding cannot matter), and every variable-length part must be
// disjoint from everything after it (so greedy matching never needs to back
// up). Anything else returns nothing and the caller keeps using RE2, which
// stays the authority on syntax. Matching is a table walk per byte with no
// allocation and no lock; the fuzzer checks it against RE2::FullMatch.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace sluice::policy {

class SimplePattern {
 public:
  static std::optional<SimplePattern> compile(std::string_view pattern);
  bool full_match(std::string_view value) const;

 private:
  struct Segment {
    std::array<bool, 256> in{};  // by byte value; only ASCII bytes are ever set
    uint32_t min = 1, max = 1;
  };
  std::vector<Segment> segments_;
};

}  // namespace sluice::policy
