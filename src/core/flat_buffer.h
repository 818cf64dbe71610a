#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace sluice {

// A contiguous read buffer: bytes are appended at the end (prepare/commit) and
// consumed from the front. Consumed space is reclaimed by moving the unread
// tail to the front only when room is needed. Grows on demand; shrink()
// returns a large buffer to its initial size once idle.
class FlatBuffer {
 public:
  explicit FlatBuffer(size_t initial = 4096) : initial_(initial) {}

  const char* data() const { return buf_.get() + begin_; }
  char* data() { return buf_.get() + begin_; }
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
    if (cap_ - end_ >= n) return buf_.get() + end_;
    size_t used = size();
    if (begin_ > 0 && cap_ - used >= n) {
      std::memmove(buf_.get(), buf_.get() + begin_, used);
    } else {
      size_t cap = cap_ ? cap_ : initial_;
      while (cap - used < n) cap *= 2;
      std::unique_ptr<char[]> nb(new char[cap]);
      if (used) std::memcpy(nb.get(), buf_.get() + begin_, used);
      buf_ = std::move(nb);
      cap_ = cap;
    }
    begin_ = 0;
    end_ = used;
    return buf_.get() + end_;
  }
  size_t writable() const { return cap_ - end_; }
  void commit(size_t n) { end_ += n; }

  // Frees memory while idle: drops the buffer entirely when empty.
  void release_if_empty() {
    if (empty() && buf_) {
      buf_.reset();
      cap_ = begin_ = end_ = 0;
    }
  }

 private:
  std::unique_ptr<char[]> buf_;
  size_t initial_;
  size_t cap_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace sluice
