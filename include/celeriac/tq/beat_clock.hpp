// BeatClock: where beat reads the time — the real clocks, or a virtual
// clock that tests (and users testing their schedules) move by hand.
#pragma once

#include <atomic>
#include <chrono>

namespace celeriac::tq {

/// Beat's two clocks: the wall clock (crontab slots, stored run times,
/// SQLite lease expiry) and the monotonic clock (intervals, lease renewal).
class BeatClock {
 public:
  virtual ~BeatClock() = default;
  /// Wall-clock now.
  virtual std::chrono::system_clock::time_point wall() const = 0;
  /// Monotonic now.
  virtual std::chrono::steady_clock::time_point mono() const = 0;
};

/// The process's real clocks.
class SystemBeatClock final : public BeatClock {
 public:
  std::chrono::system_clock::time_point wall() const override {
    return std::chrono::system_clock::now();
  }
  std::chrono::steady_clock::time_point mono() const override {
    return std::chrono::steady_clock::now();
  }
  /// The shared instance.
  static SystemBeatClock& instance() {
    static SystemBeatClock c;
    return c;
  }
};

/// A clock that moves only when told. advance() moves both clocks; set_wall()
/// moves the wall clock alone (a clock step: NTP, a manual change).
/// Thread-safe.
class VirtualBeatClock final : public BeatClock {
 public:
  /// Starts at wall time `start` (monotonic time starts at an arbitrary origin).
  explicit VirtualBeatClock(std::chrono::system_clock::time_point start)
      : wall_ns_(ns(start.time_since_epoch())) {}
  std::chrono::system_clock::time_point wall() const override {
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::nanoseconds(wall_ns_.load())));
  }
  std::chrono::steady_clock::time_point mono() const override {
    return std::chrono::steady_clock::time_point(
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(
            std::chrono::nanoseconds(mono_ns_.load())));
  }
  /// Moves both clocks forward by `d`.
  template <class Rep, class Period>
  void advance(std::chrono::duration<Rep, Period> d) {
    wall_ns_ += ns(d);
    mono_ns_ += ns(d);
  }
  /// Steps the wall clock to `t` (monotonic time does not move).
  void set_wall(std::chrono::system_clock::time_point t) { wall_ns_ = ns(t.time_since_epoch()); }

 private:
  template <class D>
  static long long ns(D d) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  }
  std::atomic<long long> wall_ns_;
  std::atomic<long long> mono_ns_{1'000'000'000'000LL};
};

}  // namespace celeriac::tq
