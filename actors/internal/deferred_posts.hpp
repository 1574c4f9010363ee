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
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include "actors/executor.hpp"

namespace hsmactor::internal {

class DeferredPosts {
 public:
  using Clock = std::chrono::steady_clock;

  /// Starts collecting this thread's posts (unless a scope already does).
  DeferredPosts();
  /// Hands over whatever is still held.
  ~DeferredPosts();
  DeferredPosts(const DeferredPosts&) = delete;
  DeferredPosts& operator=(const DeferredPosts&) = delete;

  /// Posts everything held, each executor's tasks through one post_all().
  void flush() noexcept;
  /// Tasks held now.
  std::size_t held() const { return held_; }
  /// When the oldest held task was posted (meaningful while held() > 0).
  Clock::time_point oldest() const { return oldest_; }

  /// For post_to(): the collecting scope of this thread, or null.
  static DeferredPosts* current() noexcept;
  /// Holds `task` for `executor` (null: the default executor), keeping the
  /// executor alive; never throws: if holding fails, it is posted at once.
  void hold(const std::shared_ptr<Executor>& executor, Task task) noexcept;

 private:
  struct Share {
    std::shared_ptr<Executor> owner;  // null for the default executor
    Executor* executor;
    std::vector<Task> tasks;
  };

  bool collecting_ = false;
  std::size_t held_ = 0;
  Clock::time_point oldest_{};
  // Few executors per group (usually one): a linear search is cheapest.
  std::vector<Share> shares_;
};

}  // namespace hsmactor::internal
