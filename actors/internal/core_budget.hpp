// CoreBudget: how many threads of this process are doing hsmactor work or
// spinning for it, so spinning never takes a core that real work needs.
//
// Not part of the public API.
#pragma once

#include <algorithm>
#include <atomic>
#include <thread>

namespace hsmactor::internal {

class CoreBudget {
 public:
  /// Counts a thread that starts work (a session actor running a job).
  static void enter() { working().fetch_add(1, std::memory_order_relaxed); }
  static void leave() { working().fetch_sub(1, std::memory_order_relaxed); }

  /// Counts a thread that wants to spin, if a core is free for it; returns
  /// false (counting nothing) when every core is taken.
  static bool try_enter_spinning() {
    int now = working().load(std::memory_order_relaxed);
    while (now < cores()) {
      if (working().compare_exchange_weak(now, now + 1, std::memory_order_relaxed)) return true;
    }
    return false;
  }

 private:
  static int cores() {
    static const int count = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    return count;
  }
  static std::atomic<int>& working() {
    static std::atomic<int> count{0};
    return count;
  }
};

}  // namespace hsmactor::internal
