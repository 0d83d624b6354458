// The byte buffer behind StreamReader: contiguous, grows at the back,
// consumed from the front without moving bytes until space is needed.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace celeriac::aio::detail {

class ByteBuffer {
 public:
  ByteBuffer() = default;
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;

  /// Bytes held.
  std::size_t size() const noexcept { return end_ - begin_; }
  bool empty() const noexcept { return begin_ == end_; }
  /// The held bytes.
  std::string_view view() const noexcept { return {data_.get() + begin_, end_ - begin_}; }

  /// Space for at least `n` more bytes at the back (moves or grows).
  char* prepare(std::size_t n) {
    if (cap_ - end_ >= n) return data_.get() + end_;
    std::size_t held = size();
    if (held + n <= cap_ && begin_ > 0) {
      std::memmove(data_.get(), data_.get() + begin_, held);
    } else {
      std::size_t cap = cap_ ? cap_ : 4096;
      while (cap < held + n) cap *= 2;
      auto fresh = std::make_unique_for_overwrite<char[]>(cap);
      if (held) std::memcpy(fresh.get(), data_.get() + begin_, held);
      data_ = std::move(fresh);
      cap_ = cap;
    }
    begin_ = 0;
    end_ = held;
    return data_.get() + end_;
  }
  /// Free bytes at the back without growing.
  std::size_t tail_room() const noexcept { return cap_ - end_; }
  /// Marks `n` bytes written after prepare().
  void commit(std::size_t n) noexcept { end_ += n; }
  /// Appends bytes.
  void append(std::string_view s) {
    std::memcpy(prepare(s.size()), s.data(), s.size());
    commit(s.size());
  }
  /// Drops `n` bytes from the front.
  void consume(std::size_t n) noexcept {
    begin_ += n;
    if (begin_ >= end_) begin_ = end_ = 0;
  }
  /// Removes and returns the first `n` bytes.
  std::string take(std::size_t n) {
    if (n > size()) n = size();
    std::string s(data_.get() + begin_, n);
    consume(n);
    return s;
  }
  /// Releases memory beyond `keep` bytes when empty (after a large burst).
  void shrink_if_empty(std::size_t keep) {
    if (empty() && cap_ > keep) {
      data_.reset();
      cap_ = begin_ = end_ = 0;
    }
  }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t cap_ = 0, begin_ = 0, end_ = 0;
};

}  // namespace celeriac::aio::detail
