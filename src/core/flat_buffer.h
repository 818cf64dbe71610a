#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>

#include "core/buffer_pool.h"

namespace sluice {

// A contiguous read buffer: bytes are appended at the end (prepare/commit) and
// consumed from the front. Consumed space is reclaimed by moving the unread
// tail to the front only when room is needed. Grows on demand. Its storage is
// a BufferPool block, taken on the first prepare() and given back by
// release_if_empty(), so a connection that is waiting holds no buffer.
class FlatBuffer {
 public:
  explicit FlatBuffer(size_t initial = 4096) : initial_(BufferPool::block_size(initial)) {}
  ~FlatBuffer() { BufferPool::give(buf_, cap_); }
  FlatBuffer(const FlatBuffer&) = delete;
  FlatBuffer& operator=(const FlatBuffer&) = delete;

  const char* data() const { return buf_ + begin_; }
  char* data() { return buf_ + begin_; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  std::string_view view() const { return {data(), size()}; }
  size_t capacity() const { return cap_; }

  void consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }

  // Writable space of at least `n` bytes after the readable ones.
  char* prepare(size_t n) {
    if (cap_ - end_ >= n) return buf_ + end_;
    const size_t used = size();
    if (begin_ > 0 && cap_ - used >= n) {
      std::memmove(buf_, buf_ + begin_, used);
    } else {
      size_t cap = cap_ ? cap_ : initial_;
      while (cap - used < n) cap *= 2;
      cap = BufferPool::block_size(cap);
      char* nb = BufferPool::take(cap);
      if (used) std::memcpy(nb, buf_ + begin_, used);
      BufferPool::give(buf_, cap_);
      buf_ = nb;
      cap_ = cap;
    }
    begin_ = 0;
    end_ = used;
    return buf_ + end_;
  }
  size_t writable() const { return cap_ - end_; }
  void commit(size_t n) { end_ += n; }

  // Gives the storage back while idle: when empty, the block returns to the pool.
  void release_if_empty() {
    if (empty() && buf_) {
      BufferPool::give(buf_, cap_);
      buf_ = nullptr;
      cap_ = begin_ = end_ = 0;
    }
  }

 private:
  char* buf_ = nullptr;
  size_t initial_;
  size_t cap_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace sluice
