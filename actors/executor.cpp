#include "actors/executor.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "actors/internal/deferred_posts.hpp"
#include "actors/process.hpp"

namespace hsmactor {
namespace {

// Threads are detached and hold the pool by shared_ptr, so the pool lives
// until its last thread has ended; the process-wide instance is never
// destroyed (tasks may still be posted during static destruction).
class CompletionPool final : public Executor, public std::enable_shared_from_this<CompletionPool> {
 public:
  explicit CompletionPool(std::uint64_t generation) : generation_(generation) {}

  std::uint64_t generation() const { return generation_; }

  void post(Task task) noexcept override {
    bool start_thread = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      tasks_.push_back(std::move(task));
      // Idle threads already woken for earlier tasks do not count: each task
      // waiting needs a thread of its own, or one blocking task stalls it.
      if (tasks_.size() > idle_ && threads_ < CompletionPoolLimits::kMaxThreads) {
        ++threads_;
        start_thread = true;
      }
    }
    if (start_thread) {
      try {
        std::thread([self = shared_from_this()] { self->work(); }).detach();
        return;
      } catch (...) {
        // No thread to be had: the task stays queued for a running thread.
        std::lock_guard<std::mutex> lock(mutex_);
        --threads_;
      }
    }
    wake_.notify_one();
  }

 private:
  void work() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      if (tasks_.empty()) {
        ++idle_;
        bool got_work = wake_.wait_for(lock, std::chrono::seconds(CompletionPoolLimits::kIdleSeconds),
                                       [this] { return !tasks_.empty(); });
        --idle_;
        if (!got_work) {
          --threads_;
          return;
        }
      }
      Task task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      try {
        task();
      } catch (...) {
        // Application code threw; the pool thread carries on.
      }
      task = Task();  // what the task captured is released here, unlocked
      lock.lock();
    }
  }

  const std::uint64_t generation_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> tasks_;
  std::size_t threads_ = 0;
  std::size_t idle_ = 0;
};

// The pool of this process; replaced (the old one leaked) after a fork,
// without touching the parent's mutex, which a parent thread may have held.
std::atomic<CompletionPool*> g_pool{nullptr};

CompletionPool& current_pool() {
  const std::uint64_t generation = fork_generation();
  CompletionPool* pool = g_pool.load(std::memory_order_acquire);
  while (pool == nullptr || pool->generation() != generation) {
    auto* fresh = new std::shared_ptr<CompletionPool>(std::make_shared<CompletionPool>(generation));
    if (g_pool.compare_exchange_strong(pool, fresh->get(), std::memory_order_acq_rel)) {
      return **fresh;  // the holder is leaked on purpose: the pool is immortal
    }
    delete fresh;  // another thread installed one first; `pool` is it now
  }
  return *pool;
}

}  // namespace

Executor& default_executor() { return current_pool(); }

void Executor::post_all(std::vector<Task>& tasks) noexcept {
  for (Task& task : tasks) post(std::move(task));
  tasks.clear();
}

void post_to(const std::shared_ptr<Executor>& executor, Task task) noexcept {
  if (auto* deferred = internal::DeferredPosts::current()) {
    deferred->hold(executor, std::move(task));
    return;
  }
  post_to(executor.get(), std::move(task));
}

}  // namespace hsmactor
