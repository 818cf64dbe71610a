#include "core/flat_buffer.h"

#include <gtest/gtest.h>

#include "core/status.h"

namespace sluice {
namespace {

void append(FlatBuffer& b, std::string_view s) {
  char* p = b.prepare(s.size());
  std::memcpy(p, s.data(), s.size());
  b.commit(s.size());
}

TEST(FlatBuffer, AppendConsumeAndCompact) {
  FlatBuffer b(8);
  append(b, "hello");
  EXPECT_EQ(b.view(), "hello");
  b.consume(2);
  EXPECT_EQ(b.view(), "llo");
  append(b, "worldwide");  // needs growth or compaction; unread bytes survive
  EXPECT_EQ(b.view(), "lloworldwide");
  b.consume(b.size());
  EXPECT_TRUE(b.empty());
  b.release_if_empty();
  EXPECT_EQ(b.capacity(), 0u);
  append(b, "again");
  EXPECT_EQ(b.view(), "again");
}

TEST(FlatBuffer, PrepareGivesAtLeastWhatWasAsked) {
  FlatBuffer b(4);
  for (size_t n : {1u, 7u, 100u, 5000u}) {
    b.prepare(n);
    EXPECT_GE(b.writable(), n);
  }
}

TEST(Status, ResultCarriesValueOrStatus) {
  Result<int> ok = 5;
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 5);
  Result<int> bad = Status(Errc::kInvalid, "nope");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.status().code(), Errc::kInvalid);
  EXPECT_EQ(bad.status().message(), "nope");
  EXPECT_EQ(errc_name(Errc::kTimeout), "timeout");
}

}  // namespace
}  // namespace sluice
