#include "policy/header_rules.h"

#include <gtest/gtest.h>

#include <array>

namespace sluice::policy {
namespace {

const char* kUuid = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
const char* kBearer = "^Bearer [A-Za-z0-9._~+/-]+=*$";

HeaderRules rules(uint64_t cap = 0) {
  auto r = HeaderRules::compile({{"X-Request-ID", kUuid, false}, {"authorization", kBearer, true}}, cap);
  EXPECT_TRUE(r.has_value()) << r.status().message();
  return std::move(*r);
}

TEST(HeaderRules, OptionalRuleChecksOnlyWhenPresent) {
  HeaderRules r = rules();
  std::array<http::Header, 1> ok{{{"authorization", "Bearer abc.DEF-123=="}}};
  EXPECT_FALSE(r.check(ok).has_value());
  std::array<http::Header, 2> with_id{{{"authorization", "Bearer x"}, {"x-request-id", "0123abcd-0000-1111-2222-333344445555"}}};
  EXPECT_FALSE(r.check(with_id).has_value());
  std::array<http::Header, 2> bad_id{{{"authorization", "Bearer x"}, {"X-Request-Id", "not-a-uuid"}}};
  auto v = r.check(bad_id);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->status, 400);
  EXPECT_EQ(v->code, "invalid_header");
  EXPECT_EQ(v->rule, "pattern:x-request-id");
  EXPECT_EQ(v->header, "x-request-id");
  EXPECT_EQ(v->value_length, 10u);
}

TEST(HeaderRules, RequiredRuleRejectsAbsenceAndBadShape) {
  HeaderRules r = rules();
  auto v = r.check({});
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->code, "missing_header");
  EXPECT_EQ(v->rule, "required:authorization");
  EXPECT_EQ(v->value_length, 0u);
  std::array<http::Header, 1> basic{{{"Authorization", "Basic dXNlcjpwYXNz"}}};
  v = r.check(basic);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->rule, "pattern:authorization");
  // Every occurrence must match, not just the first.
  std::array<http::Header, 2> twice{{{"authorization", "Bearer ok"}, {"authorization", "Bearer bad token"}}};
  EXPECT_TRUE(r.check(twice).has_value());
}

TEST(HeaderRules, PatternsAreFullMatches) {
  auto r = HeaderRules::compile({{"x-model-name", "[a-z0-9.-]+", false}}, 0);
  ASSERT_TRUE(r.has_value());
  std::array<http::Header, 1> partial{{{"x-model-name", "llama-3 evil"}}};
  EXPECT_TRUE(r->check(partial).has_value());
  std::array<http::Header, 1> whole{{{"x-model-name", "llama-3.1"}}};
  EXPECT_FALSE(r->check(whole).has_value());
}

TEST(HeaderRules, ValueCapComesFirstAndNamesTheHeader) {
  HeaderRules r = rules(16);
  std::string big(17, 'a');
  std::array<http::Header, 2> h{{{"authorization", "Bearer x"}, {"x-custom", big}}};
  auto v = r.check(h);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->status, 431);
  EXPECT_EQ(v->code, "header_value_too_large");
  EXPECT_EQ(v->rule, "max_header_value_bytes");
  EXPECT_EQ(v->header, "x-custom");
  EXPECT_EQ(v->value_length, 17u);
  std::array<http::Header, 1> at_cap{{{"authorization", "Bearer 12345678"}}};  // 15 bytes
  EXPECT_FALSE(r.check(at_cap).has_value());
}

TEST(HeaderRules, InvalidPatternIsAnError) {
  auto r = HeaderRules::compile({{"x", "(unclosed", false}}, 0);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.status().message().find("invalid pattern"), std::string::npos) << r.status().message();
}

TEST(HeaderRules, LabelsListEveryRule) {
  HeaderRules r = rules(8);
  auto l = r.labels();
  std::vector<std::string> got(l.begin(), l.end());
  EXPECT_EQ(got, (std::vector<std::string>{"max_header_value_bytes", "pattern:x-request-id", "pattern:authorization",
                                           "required:authorization"}));
  EXPECT_TRUE(HeaderRules().empty());
}

TEST(AllowHeaders, NamesAreCaseInsensitive) {
  AllowHeaders a{AllowHeaders::Mode::kDrop, {"content-type", "x-request-id"}};
  EXPECT_TRUE(a.allows("Content-Type"));
  EXPECT_FALSE(a.allows("x-secret"));
}

}  // namespace
}  // namespace sluice::policy
