#include "policy/simple_pattern.h"

#include <gtest/gtest.h>
#include <re2/re2.h>

#include <random>

namespace sluice::policy {
namespace {

const char* kSimple[] = {
    "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
    "^Bearer [A-Za-z0-9._~+/-]+=*$",
    "^[A-Za-z0-9._:/-]{1,128}$",
    "[a-z]+",
    "\\d{3}-\\d{4}",
    "sk-\\w{20,64}",
    "v[0-9]\\.[0-9]+",
    "a?b",
    "x{0}",
    "",
    "^$",
    "ab*?c",
    "[-a]z",
};

const char* kNotSimple[] = {
    "a|b",           // alternation
    "(ab)+",         // groups
    "a.c",           // dot (UTF-8 aware in RE2)
    "[^a]",          // negated class
    "(?i)bearer",    // flags
    "[a-z]*[a-c]",   // a variable part that overlaps what follows
    "a*a",
    "[a-z]+=*[a-z]",
    "caf\xc3\xa9",   // non-ASCII
    "\\bword",       // assertions
    "[[:alpha:]]",
    "a{,3}",
    "a{2,1}",
    "[a-c-e]",
    "E{05}",         // RE2 reads a count with a leading zero as literal text
};

TEST(SimplePattern, AcceptsOnlyWhatItReproduces) {
  for (const char* p : kSimple) EXPECT_TRUE(SimplePattern::compile(p).has_value()) << p;
  for (const char* p : kNotSimple) EXPECT_FALSE(SimplePattern::compile(p).has_value()) << p;
}

TEST(SimplePattern, Matches) {
  auto uuid = *SimplePattern::compile(kSimple[0]);
  EXPECT_TRUE(uuid.full_match("0f8fad5b-d9cb-469f-a165-70867728950e"));
  EXPECT_FALSE(uuid.full_match("0f8fad5b-d9cb-469f-a165-70867728950"));
  EXPECT_FALSE(uuid.full_match("0F8FAD5B-d9cb-469f-a165-70867728950e"));
  EXPECT_FALSE(uuid.full_match("0f8fad5b-d9cb-469f-a165-70867728950ee"));
  auto bearer = *SimplePattern::compile(kSimple[1]);
  EXPECT_TRUE(bearer.full_match("Bearer abc.DEF-_~+/9=="));
  EXPECT_FALSE(bearer.full_match("Bearer "));
  EXPECT_FALSE(bearer.full_match("Bearer a b"));
  EXPECT_FALSE(bearer.full_match("bearer abc"));
  EXPECT_FALSE(bearer.full_match("Bearer abc=x"));
  EXPECT_FALSE(bearer.full_match("Bearer ab\xc3\xa9"));
}

// The same answers as RE2::FullMatch on many strings built from the
// patterns' own alphabet (so matches are frequent), plus a few bytes outside it.
TEST(SimplePattern, AgreesWithRe2) {
  std::mt19937 rng(42);
  const std::string alphabet = "abcxyz0129-_.=+/~ ABF\t\xc3\xa9";
  for (const char* p : kSimple) {
    auto sp = *SimplePattern::compile(p);
    RE2 re(p);
    ASSERT_TRUE(re.ok()) << p;
    int matches = 0;
    for (int i = 0; i < 20000; ++i) {
      std::string v;
      const int len = static_cast<int>(rng() % 40);
      for (int k = 0; k < len; ++k) v += alphabet[rng() % alphabet.size()];
      const bool want = RE2::FullMatch(v, re);
      matches += want;
      ASSERT_EQ(sp.full_match(v), want) << "pattern " << p << " value '" << v << "'";
    }
    (void)matches;
  }
}

}  // namespace
}  // namespace sluice::policy
