#include "llm/token_estimate.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::llm {
namespace {

TEST(TokenEstimateTest, BytesOverFourRoundedUp) {
  EXPECT_EQ(estimate_tokens(""), 0);
  EXPECT_EQ(estimate_tokens("a"), 1);
  EXPECT_EQ(estimate_tokens("abcd"), 1);
  EXPECT_EQ(estimate_tokens("abcde"), 2);
  EXPECT_EQ(estimate_tokens("Say this is a test"), 5);
  EXPECT_EQ(estimate_tokens(std::string(4000, 'x')), 1000);
}

TEST(TokenEstimateTest, NonLatinScriptsCountMorePerCharacter) {
  EXPECT_EQ(estimate_tokens("\xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97\xE7\xAC\xA6"), 3);  // four CJK characters
  EXPECT_EQ(estimate_tokens("\xF0\x9F\x98\x80"), 1);                                 // one emoji
}

TEST(TokenEstimateTest, ForBytes) {
  EXPECT_EQ(estimate_tokens_for_bytes(-5), 0);
  EXPECT_EQ(estimate_tokens_for_bytes(0), 0);
  EXPECT_EQ(estimate_tokens_for_bytes(1), 1);
  EXPECT_EQ(estimate_tokens_for_bytes(8), 2);
  EXPECT_EQ(estimate_tokens_for_bytes(INT64_MAX), INT64_MAX / 4 + 1);
}

}  // namespace
}  // namespace sluice::llm
