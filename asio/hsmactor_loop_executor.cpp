#include "asio/hsmactor_loop_executor.hpp"

#include <algorithm>
#include <iterator>
#include <utility>

namespace hsmactor::asio_support {

struct LoopExecutor::Shared {
  explicit Shared(Schedule s) : schedule(std::move(s)) {}

  const Schedule schedule;
  std::mutex mutex;
  std::vector<Task> queue;    // guarded by mutex
  bool scheduled = false;     // guarded by mutex: a drain is due on the loop
  bool detached = false;      // guarded by mutex
  std::atomic<std::uint64_t> posted{0};
  std::atomic<std::uint64_t> wakeups{0};
  std::atomic<std::uint64_t> largest_batch{0};
};

LoopExecutor::LoopExecutor(Schedule schedule)
    : shared_(std::make_shared<Shared>(std::move(schedule))) {}

LoopExecutor::~LoopExecutor() = default;

void LoopExecutor::post(Task task) noexcept {
  shared_->posted.fetch_add(1, std::memory_order_relaxed);
  bool wake = false;
  bool detached = false;
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    detached = shared_->detached;
    if (!detached) {
      shared_->queue.push_back(std::move(task));
      wake = !shared_->scheduled;
      shared_->scheduled = true;
    }
  }
  if (detached) {
    // Outside our lock: the pool's post takes locks of its own.
    default_executor().post(std::move(task));
    return;
  }
  // Scheduled outside the lock, so a loop that runs the drain at once on
  // another thread never waits for this thread to let go.
  if (wake) reschedule(shared_);
}

void LoopExecutor::post_all(std::vector<Task>& tasks) noexcept {
  if (tasks.empty()) return;
  shared_->posted.fetch_add(tasks.size(), std::memory_order_relaxed);
  bool wake = false;
  bool detached = false;
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    detached = shared_->detached;
    if (!detached) {
      shared_->queue.insert(shared_->queue.end(), std::make_move_iterator(tasks.begin()),
                            std::make_move_iterator(tasks.end()));
      wake = !shared_->scheduled;
      shared_->scheduled = true;
    }
  }
  if (detached) {
    default_executor().post_all(tasks);
    return;
  }
  tasks.clear();
  if (wake) reschedule(shared_);
}

void LoopExecutor::drain(const std::shared_ptr<Shared>& shared) {
  std::vector<Task> batch;
  {
    std::lock_guard<std::mutex> lock(shared->mutex);
    batch.swap(shared->queue);
    if (batch.empty()) {
      shared->scheduled = false;
      return;
    }
  }
  std::uint64_t size = batch.size();
  std::uint64_t seen = shared->largest_batch.load(std::memory_order_relaxed);
  while (size > seen &&
         !shared->largest_batch.compare_exchange_weak(seen, size, std::memory_order_relaxed)) {
  }

  // A task that throws (an Asio handler may; the exception leaves run()) must
  // not cost the rest of the batch their one run: they go back to the front of
  // the queue, and the drain stays scheduled for them.
  std::size_t next = 0;
  struct Requeue {
    const std::shared_ptr<Shared>& shared;
    std::vector<Task>& batch;
    std::size_t& next;
    ~Requeue() {
      if (next == batch.size()) return;
      bool detached = false;
      {
        std::lock_guard<std::mutex> lock(shared->mutex);
        detached = shared->detached;
        if (!detached) {
          shared->queue.insert(shared->queue.begin(),
                               std::make_move_iterator(batch.begin() + next),
                               std::make_move_iterator(batch.end()));
        }
      }
      if (detached) {
        for (; next < batch.size(); ++next) default_executor().post(std::move(batch[next]));
        return;
      }
      // `scheduled` is still true, so no post will wake the loop: we must.
      reschedule(shared);
    }
  } requeue{shared, batch, next};
  while (next < batch.size()) {
    Task task = std::move(batch[next]);
    ++next;
    task();
  }

  // One batch per drain: what arrived meanwhile waits for the next drain, so
  // the loop's own I/O handlers get their turn between batches.
  bool again = false;
  {
    std::lock_guard<std::mutex> lock(shared->mutex);
    if (shared->detached) {
      again = false;
    } else if (shared->queue.empty()) {
      shared->scheduled = false;
    } else {
      again = true;
    }
  }
  if (again) reschedule(shared);
}

void LoopExecutor::reschedule(const std::shared_ptr<Shared>& shared) {
  shared->wakeups.fetch_add(1, std::memory_order_relaxed);
  shared->schedule(Task([shared] { drain(shared); }));
}

void LoopExecutor::detach() {
  std::vector<Task> left;
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    shared_->detached = true;
    left.swap(shared_->queue);
  }
  for (Task& task : left) default_executor().post(std::move(task));
}

LoopExecutorStats LoopExecutor::stats() const {
  LoopExecutorStats stats;
  stats.posted = shared_->posted.load(std::memory_order_relaxed);
  stats.wakeups = shared_->wakeups.load(std::memory_order_relaxed);
  stats.largest_batch = shared_->largest_batch.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace hsmactor::asio_support
