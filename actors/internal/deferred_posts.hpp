// DeferredPosts: holds back the executor posts a session thread makes while
// it answers a group of jobs, and hands them over per executor at the end.
//
// A session that takes several cheap jobs at once (session_actor.cpp, drain)
// answers each as it finishes: a blocking waiter is released at once, but a
// callback, a continuation or an event loop's completion is posted to an
// executor, and each post may wake that executor's thread (an eventfd write,
// a futex, a thread switch), which for a 2 µs operation costs more than the
// operation. While a DeferredPosts is open on the thread, post_to() appends
// here instead; flush() gives every executor its share in one post_all(), in
// the order they were posted, so one wake-up carries the group's answers.
//
// Only the outermost scope on a thread collects (a nested one is inert), and
// the destructor flushes, so no post is ever lost, even when a job throws.
//
// Held answers never wait on a PKCS#11 call that overruns: before each call,
// the session guards what it holds (a Guard), and if the call is still
// running when the hold budget of the oldest answer is spent, hsmactor's
// watch thread hands them over instead (within about a millisecond more).
// A module that stalls, or a cheap kind of job that turns slow, delays only
// its own request.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "actors/executor.hpp"

namespace hsmactor::internal {

class DeferredPosts {
 public:
  using Clock = std::chrono::steady_clock;
  class Box;

  /// Where a session's held answers live, reused from group to group (and
  /// watched once it has been guarded).
  static std::shared_ptr<Box> make_box();

  /// Starts collecting this thread's posts (unless a scope already does),
  /// into `box` (a new one if null).
  explicit DeferredPosts(std::shared_ptr<Box> box = nullptr);
  /// Hands over whatever is still held.
  ~DeferredPosts();
  DeferredPosts(const DeferredPosts&) = delete;
  DeferredPosts& operator=(const DeferredPosts&) = delete;

  /// Posts everything held, each executor's tasks through one post_all().
  void flush() noexcept;
  /// Tasks held now.
  std::size_t held() const;
  /// When the oldest held task was posted (meaningful while held() > 0).
  Clock::time_point oldest() const;

  /// While a Guard lives (around one PKCS#11 call), the answers held when it
  /// began are handed over by the watch thread if they are still held at
  /// `rescue_at`. Inert if nothing is held.
  class Guard {
   public:
    Guard(DeferredPosts& posts, Clock::time_point rescue_at);
    ~Guard();
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    Box* box_ = nullptr;
  };

  /// For post_to(): the collecting scope of this thread, or null.
  static DeferredPosts* current() noexcept;
  /// Holds `task` for `executor` (null: the default executor), keeping the
  /// executor alive; never throws: if holding fails, it is posted at once.
  void hold(const std::shared_ptr<Executor>& executor, Task task) noexcept;

  /// Answers handed over by the watch thread so far, in this process.
  static std::uint64_t rescued();

 private:
  bool collecting_ = false;
  std::shared_ptr<Box> box_;
};

}  // namespace hsmactor::internal
