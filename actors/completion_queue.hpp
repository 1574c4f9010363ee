// CompletionQueue: an Executor an event loop drains, so that one wake-up
// carries many answers.
//
// Session threads post callbacks and continuations here instead of waking a
// thread per answer. The queue signals its eventfd only when a task arrives
// in an empty queue, so however many answers come in while the loop is busy,
// the loop is woken at most once for them and runs them all in one go.
// Nothing here blocks a poster for longer than a short append.
//
// Usage (any loop that can poll a file descriptor, or a plain thread):
//   auto completions = std::make_shared<hsmactor::CompletionQueue>();
//   hsmactor::Token on_loop = token.with_executor(completions);
//   on_loop.sign(key, Mechanism::ecdsa(), digest, [](Result<Bytes> s) { ... });
//   // epoll: add completions->fd() (readable while tasks wait), then on
//   // readiness call completions->run_ready(); or block in a thread:
//   while (running) completions->wait(std::chrono::milliseconds(100));
//
// Rules: run_ready() and wait() are for one thread at a time (the loop's);
// a task may call them again (each call runs only the tasks it took, each
// once); post() may come from any thread. The queue lives as long as any
// request that will post to it (handles hold it through shared_ptr);
// whatever is still queued when it goes is handed to hsmactor's completion
// pool (never run on the thread that drops it, which may be a session's), so
// no answer is lost.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <vector>

#include "actors/executor.hpp"

namespace hsmactor {

class CompletionQueue final : public Executor {
 public:
  /// Creates the queue and its eventfd; throws std::system_error if the
  /// system refuses an eventfd.
  CompletionQueue();
  /// Hands whatever is still queued to hsmactor's completion pool.
  ~CompletionQueue() override;
  CompletionQueue(const CompletionQueue&) = delete;
  CompletionQueue& operator=(const CompletionQueue&) = delete;

  /// Queues `task`; writes the eventfd only if the queue was empty.
  void post(Task task) noexcept override;
  /// Queues every task under one lock, behind at most one eventfd write.
  void post_all(std::vector<Task>& tasks) noexcept override;

  /// A non-blocking eventfd that is readable while tasks may wait. The loop
  /// never reads it itself: run_ready() does.
  int fd() const { return fd_; }

  /// Runs every task queued now (not those they post in turn) and returns how
  /// many ran; never blocks.
  std::size_t run_ready();
  /// Waits until a task is queued or `timeout` passes, then runs what is
  /// ready; returns how many ran (0 on timeout).
  std::size_t wait(std::chrono::nanoseconds timeout);

  /// Tasks queued and not yet taken by run_ready().
  std::size_t pending() const;
  /// Times post() wrote the eventfd (each a possible wake-up of the loop).
  std::uint64_t wakeups() const { return wakeups_.load(std::memory_order_relaxed); }

 private:
  void signal() noexcept;
  void clear_signal();

  const int fd_;
  mutable std::mutex mutex_;
  std::vector<Task> queued_;
  /// An emptied batch kept for reuse (the loop's thread only).
  std::vector<Task> spare_;
  std::atomic<std::uint64_t> wakeups_{0};
};

}  // namespace hsmactor
