// A move-only void() callable with small-buffer storage (std::function needs
// copyable callables; std::move_only_function is C++23).
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace celeriac::exec::detail {

class UniqueFunction {
  static constexpr std::size_t kInline = 48;
  struct Ops {
    void (*call)(void*);
    void (*move)(void* dst, void* src) noexcept;  // move-constructs, destroys src
    void (*destroy)(void*) noexcept;
  };

  template <class F>
  static constexpr bool kSmall =
      sizeof(F) <= kInline &&
      alignof(F) <= alignof(std::max_align_t) && std::is_nothrow_move_constructible_v<F>;

  template <class F>
  static constexpr Ops kSmallOps = {
      [](void* p) { (*std::launder(static_cast<F*>(p)))(); },
      [](void* dst, void* src) noexcept {
        F* s = std::launder(static_cast<F*>(src));
        ::new (dst) F(std::move(*s));
        s->~F();
      },
      [](void* p) noexcept { std::launder(static_cast<F*>(p))->~F(); }};

  template <class F>
  static constexpr Ops kHeapOps = {
      [](void* p) { (**std::launder(static_cast<F**>(p)))(); },
      [](void* dst, void* src) noexcept { ::new (dst) F*(*std::launder(static_cast<F**>(src))); },
      [](void* p) noexcept { delete *std::launder(static_cast<F**>(p)); }};

 public:
  UniqueFunction() noexcept = default;
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, UniqueFunction>>>
  UniqueFunction(F&& f) {  // NOLINT: implicit like std::function
    using Fn = std::decay_t<F>;
    if constexpr (kSmall<Fn>) {
      ::new (static_cast<void*>(buf_)) Fn(std::forward<F>(f));
      ops_ = &kSmallOps<Fn>;
    } else {
      ::new (static_cast<void*>(buf_)) Fn*(new Fn(std::forward<F>(f)));
      ops_ = &kHeapOps<Fn>;
    }
  }
  UniqueFunction(UniqueFunction&& o) noexcept : ops_(o.ops_) {
    if (ops_) ops_->move(buf_, o.buf_);
    o.ops_ = nullptr;
  }
  UniqueFunction& operator=(UniqueFunction&& o) noexcept {
    if (this != &o) {
      reset();
      ops_ = o.ops_;
      if (ops_) ops_->move(buf_, o.buf_);
      o.ops_ = nullptr;
    }
    return *this;
  }
  ~UniqueFunction() { reset(); }

  explicit operator bool() const noexcept { return ops_ != nullptr; }
  void operator()() { ops_->call(buf_); }
  void reset() noexcept {
    if (ops_) ops_->destroy(buf_);
    ops_ = nullptr;
  }

 private:
  const Ops* ops_ = nullptr;
  alignas(std::max_align_t) unsigned char buf_[kInline];
};

}  // namespace celeriac::exec::detail
