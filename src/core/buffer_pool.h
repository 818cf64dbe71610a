#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace sluice {

// Per-thread recycling of I/O buffer blocks in power-of-two sizes from 1 KiB
// to 64 KiB. Connections hold a read buffer only while bytes are in it and
// give it back when it empties (FlatBuffer::release_if_empty), so thousands of
// idle streams hold none; the recycler makes that hand-back and the next take
// a pointer swap instead of a trip through malloc. Each size keeps at most a
// few blocks (kKeepBytes per size), so the cache stays small; larger sizes go
// straight to operator new. A block may be given back on another thread than
// the one that took it (it joins that thread's cache).
class BufferPool {
 public:
  static constexpr size_t kMinBlock = 1024;
  static constexpr size_t kMaxBlock = 64 * 1024;
  static constexpr size_t kKeepBytes = 64 * 1024;  // cached per size class and thread

  // The block size serving a request of `n` bytes (n rounded up to a class).
  static size_t block_size(size_t n) {
    if (n <= kMinBlock) return kMinBlock;
    return std::bit_ceil(n);
  }

  // A block of exactly block_size(n) bytes.
  static char* take(size_t n) {
    const size_t size = block_size(n);
    if (size > kMaxBlock) return static_cast<char*>(::operator new(size));
    Class& c = local().classes[index(size)];
    if (c.count > 0) return c.blocks[--c.count];
    return static_cast<char*>(::operator new(size));
  }

  // Gives back a block from take(); `size` is its block size.
  static void give(char* block, size_t size) {
    if (!block) return;
    if (size <= kMaxBlock) {
      Class& c = local().classes[index(size)];
      if (c.count < keep_count(size)) {
        c.blocks[c.count++] = block;
        return;
      }
    }
    ::operator delete(block);
  }

  // Blocks cached on this thread (for tests and the memory report).
  static size_t cached_bytes() {
    size_t total = 0;
    const Local& l = local();
    for (size_t i = 0; i < kClasses; ++i) total += l.classes[i].count * (kMinBlock << i);
    return total;
  }

 private:
  static constexpr size_t kClasses = 7;  // 1, 2, 4, 8, 16, 32, 64 KiB
  static constexpr size_t kMaxKeep = kKeepBytes / kMinBlock;

  struct Class {
    std::array<char*, kMaxKeep> blocks{};
    size_t count = 0;
  };
  struct Local {
    std::array<Class, kClasses> classes;
    ~Local() {
      for (auto& c : classes)
        while (c.count > 0) ::operator delete(c.blocks[--c.count]);
    }
  };

  static size_t index(size_t size) { return std::countr_zero(size / kMinBlock); }
  static size_t keep_count(size_t size) { return kKeepBytes / size; }
  static Local& local() {
    thread_local Local l;
    return l;
  }
};

}  // namespace sluice
