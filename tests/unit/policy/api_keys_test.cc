#include "policy/api_keys.h"

#include <gtest/gtest.h>

#include <set>

namespace sluice::policy {
namespace {

TEST(ApiKeys, NewKeysAreRandomAndShaped) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    std::string k = new_key();
    ASSERT_EQ(k.size(), 10u + 40u);
    EXPECT_TRUE(k.starts_with("sk-sluice-"));
    for (char c : k.substr(10)) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << k;
    EXPECT_TRUE(seen.insert(k).second);
  }
  EXPECT_TRUE(new_key("sk-team-").starts_with("sk-team-"));
}

TEST(ApiKeys, HashRoundTripsAndMatchesOnlyItsKey) {
  const std::string key = "sk-sluice-TESTtestTESTtestTESTtestTESTtestTESTtest";
  const std::string stored = hash_key(key);
  ASSERT_EQ(stored.size(), 7u + 32u + 1u + 64u) << stored;
  EXPECT_EQ(stored.find(key), std::string::npos);
  auto h = parse_key_hash(stored);
  ASSERT_TRUE(h.has_value()) << h.status().message();
  EXPECT_TRUE(key_matches(*h, key));
  EXPECT_FALSE(key_matches(*h, key + "x"));
  EXPECT_FALSE(key_matches(*h, key.substr(0, key.size() - 1)));
  EXPECT_EQ(h->hint, key_hint(key));
  // Salted: the same key hashes differently each time, and both match.
  const std::string again = hash_key(key);
  EXPECT_NE(again, stored);
  EXPECT_TRUE(key_matches(*parse_key_hash(again), key));
}

TEST(ApiKeys, KnownVector) {
  // printf '%s:%s' 00000000000000000000000000000000 abc | sha256sum
  auto h = parse_key_hash("sha256:00000000000000000000000000000000:"
                          "44f5876cc0fb0bf22103a0bea7b5674c39ecf7d5c49e63a1fab00bdbb75b26f3");
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->hint, 0u);
  EXPECT_TRUE(key_matches(*h, "abc"));
  EXPECT_FALSE(key_matches(*h, "abd"));
}

TEST(ApiKeys, MalformedHashesSayWhatIsWrong) {
  EXPECT_NE(parse_key_hash("md5:aa:bb").status().message().find("sluice keys hash"), std::string::npos);
  EXPECT_NE(parse_key_hash("sha256:abc").status().message().find("missing ':'"), std::string::npos);
  EXPECT_NE(parse_key_hash("sha256:xyz:" + std::string(64, 'a')).status().message().find("salt"),
            std::string::npos);
  EXPECT_NE(parse_key_hash("sha256:" + std::string(32, 'a') + ":" + std::string(63, 'a')).status().message().find(
                "digest"),
            std::string::npos);
  EXPECT_FALSE(parse_key_hash("sha256:" + std::string(32, 'A') + ":" + std::string(64, 'a')).has_value());
}

TEST(ApiKeys, IndexFindsByHintNotByScan) {
  KeyIndex idx;
  std::vector<std::string> keys;
  for (int i = 0; i < 500; ++i) {
    keys.push_back(new_key());
    idx.add(*parse_key_hash(hash_key(keys.back())), static_cast<size_t>(i) * 10);
  }
  for (int i = 0; i < 500; i += 37) EXPECT_EQ(idx.find(keys[i]), i * 10);
  EXPECT_EQ(idx.find("sk-sluice-unknown"), -1);
  EXPECT_EQ(idx.find(""), -1);
}

TEST(ApiKeys, ModelAllowList) {
  const std::vector<std::string> acl = {"gpt-4o*", "llama3", "llama-*-instruct"};
  EXPECT_TRUE(model_allowed(acl, "gpt-4o"));
  EXPECT_TRUE(model_allowed(acl, "gpt-4o-mini"));
  EXPECT_TRUE(model_allowed(acl, "llama3"));
  EXPECT_TRUE(model_allowed(acl, "llama-3.1-70b-instruct"));
  EXPECT_FALSE(model_allowed(acl, "llama3.1"));
  EXPECT_FALSE(model_allowed(acl, "gpt-4"));
  EXPECT_FALSE(model_allowed(acl, "llama-3-chat"));
  EXPECT_TRUE(model_allowed({"*"}, "anything"));
  EXPECT_FALSE(model_allowed({}, "anything"));
}

}  // namespace
}  // namespace sluice::policy
