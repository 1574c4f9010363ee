// Executor: where hsmactor runs application code (continuations, callbacks,
// trace sinks), so that none of it ever runs on a session actor's thread, on
// a control actor's thread or under a lock of ours.
//
// The default is hsmactor's own completion pool: threads that start when work
// arrives and no thread is idle (up to kMaxThreads, so a continuation that
// blocks, even on another hsmactor answer, holds only its own thread) and end
// after a few seconds idle. An application may supply its own executor (an
// event loop's post(), a thread pool) through TokenOptions::executor.
//
// Usage:
//   class LoopExecutor final : public hsmactor::Executor {
//     void post(hsmactor::Task task) noexcept override { loop.post(std::move(task)); }
//   };
//   options.executor = std::make_shared<LoopExecutor>();
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

namespace hsmactor {

/// A move-only `void()` callable: one piece of application code to run.
class Task {
 public:
  Task() = default;
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, Task>>>
  explicit Task(F&& function)
      : impl_(std::make_unique<Impl<std::decay_t<F>>>(std::forward<F>(function))) {}

  explicit operator bool() const { return impl_ != nullptr; }
  void operator()() { impl_->call(); }

 private:
  struct Base {
    virtual ~Base() = default;
    virtual void call() = 0;
  };
  template <class F>
  struct Impl final : Base {
    explicit Impl(F f) : function(std::move(f)) {}
    void call() override { std::invoke(function); }
    F function;
  };
  std::unique_ptr<Base> impl_;
};

/// Runs tasks somewhere other than the thread that posts them.
///
/// post() must not block for long and must not run the task inline: it is
/// called on session actor threads, which serve nobody else meanwhile. Every
/// posted task must eventually run (or be destroyed, which destroys what it
/// captured); an executor that drops tasks breaks "every request gets exactly
/// one answer" for continuations and callbacks.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual void post(Task task) noexcept = 0;
  /// Posts every task in `tasks`, in order, and empties it. A session that
  /// answered several requests in a row hands their callbacks over this way,
  /// so an executor that can take them in one go (CompletionQueue: one lock,
  /// at most one wake-up) overrides it; the default posts them one by one.
  virtual void post_all(std::vector<Task>& tasks) noexcept;
};

/// Returns hsmactor's completion pool (one per process; a forked child gets a
/// fresh one on first use and never touches the parent's).
Executor& default_executor();

/// Posts `task` to `executor`, or to the default executor when it is null.
/// On a session thread answering a group of jobs the post is held until the
/// group is answered (actors/internal/deferred_posts.hpp), then handed over
/// with the group's other posts to the same executor through post_all(); the
/// shared_ptr keeps the executor alive until then.
void post_to(const std::shared_ptr<Executor>& executor, Task task) noexcept;
/// The same for an executor the caller keeps alive itself: never held back.
inline void post_to(Executor* executor, Task task) noexcept {
  (executor != nullptr ? *executor : default_executor()).post(std::move(task));
}

/// Limits of the default completion pool.
struct CompletionPoolLimits {
  /// Threads it starts at most; beyond, tasks wait for a free thread.
  static constexpr std::size_t kMaxThreads = 256;
  /// A thread with nothing to do for this long ends.
  static constexpr int kIdleSeconds = 5;
};

}  // namespace hsmactor
