#include "core/flat_buffer.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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

TEST(FlatBuffer, CompactsBeforeGrowingAndGrowsByBlocks) {
  FlatBuffer b(1024);
  append(b, std::string(1000, 'a'));
  EXPECT_EQ(b.capacity(), 1024u);
  b.consume(900);
  append(b, std::string(900, 'b'));  // fits once the 100 unread bytes move to the front
  EXPECT_EQ(b.capacity(), 1024u);
  EXPECT_EQ(b.view(), std::string(100, 'a') + std::string(900, 'b'));
  append(b, std::string(2000, 'c'));  // grows to the next block size that holds all 3000
  EXPECT_EQ(b.capacity(), 4096u);
  EXPECT_EQ(b.view().substr(0, 1000), std::string(100, 'a') + std::string(900, 'b'));
  EXPECT_EQ(b.view().substr(1000), std::string(2000, 'c'));
}

TEST(FlatBuffer, ReleasedBlocksAreReusedFromThePool) {
  const char* first = nullptr;
  size_t cached0 = 0;
  {
    FlatBuffer b(4096);
    first = b.prepare(10);  // a block from this thread's pool or the heap
    cached0 = BufferPool::cached_bytes();
    b.release_if_empty();  // empty: its block returns to this thread's pool
    EXPECT_EQ(BufferPool::cached_bytes(), cached0 + 4096);
    EXPECT_EQ(b.prepare(10), first);  // and is taken again
    EXPECT_EQ(BufferPool::cached_bytes(), cached0);
    append(b, "x");
    b.release_if_empty();  // not empty: kept
    EXPECT_EQ(b.capacity(), 4096u);
  }
  EXPECT_EQ(BufferPool::cached_bytes(), cached0 + 4096);  // the destructor gives it back too
}

TEST(BufferPool, KeepsABoundedNumberPerSize) {
  std::vector<char*> blocks;
  for (int i = 0; i < 100; ++i) blocks.push_back(BufferPool::take(8192));
  for (char* b : blocks) BufferPool::give(b, 8192);
  EXPECT_LE(BufferPool::cached_bytes(), 7 * BufferPool::kKeepBytes);
  EXPECT_EQ(BufferPool::block_size(1), 1024u);
  EXPECT_EQ(BufferPool::block_size(1025), 2048u);
  EXPECT_EQ(BufferPool::block_size(100000), 131072u);
  char* big = BufferPool::take(100000);  // beyond the largest class: straight from the heap
  big[131071] = 1;
  BufferPool::give(big, BufferPool::block_size(100000));
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
