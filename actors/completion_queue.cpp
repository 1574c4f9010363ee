#include "actors/completion_queue.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <iterator>
#include <system_error>
#include <vector>

namespace hsmactor {
namespace {

int open_eventfd() {
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  return fd;
}

}  // namespace

CompletionQueue::CompletionQueue() : fd_(open_eventfd()) {}

CompletionQueue::~CompletionQueue() {
  // No one can post any more (posters hold the queue), but the last holder
  // may be a request's state released on a session thread: answers still
  // queued go to hsmactor's completion pool rather than run here.
  std::vector<Task> left;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    left.swap(queued_);
  }
  for (Task& task : left) default_executor().post(std::move(task));
  ::close(fd_);
}

void CompletionQueue::post(Task task) noexcept {
  bool was_empty = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    was_empty = queued_.empty();
    queued_.push_back(std::move(task));
  }
  if (was_empty) signal();
}

void CompletionQueue::post_all(std::vector<Task>& tasks) noexcept {
  if (tasks.empty()) return;
  bool was_empty = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    was_empty = queued_.empty();
    if (was_empty) {
      queued_.swap(tasks);  // the common case: no copy at all
    } else {
      queued_.insert(queued_.end(), std::make_move_iterator(tasks.begin()),
                     std::make_move_iterator(tasks.end()));
    }
  }
  tasks.clear();
  if (was_empty) signal();
}

void CompletionQueue::signal() noexcept {
  // Only for the first task into an empty queue: the loop was signalled for
  // any earlier one already.
  wakeups_.fetch_add(1, std::memory_order_relaxed);
  const std::uint64_t one = 1;
  // EAGAIN only when the counter is near overflow: it is readable anyway.
  while (::write(fd_, &one, sizeof one) < 0 && errno == EINTR) {
  }
}

void CompletionQueue::clear_signal() {
  std::uint64_t count = 0;
  while (::read(fd_, &count, sizeof count) < 0 && errno == EINTR) {
  }
}

std::size_t CompletionQueue::run_ready() {
  // Cleared before taking the tasks: a post that finds the queue empty after
  // the swap signals again, so no task is ever left without a signal.
  clear_signal();
  // A batch of its own per call: a task may call run_ready() again (a
  // callback that pumps its loop while it waits), and each call runs only
  // the tasks it took, each once; posters only ever touch queued_.
  std::vector<Task> batch = std::move(spare_);
  batch.clear();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    batch.swap(queued_);
  }
  const std::size_t count = batch.size();
  // User code runs outside our lock; a task may post to this queue again.
  for (Task& task : batch) {
    Task run = std::move(task);
    if (run) run();
  }
  batch.clear();
  // Keeps the larger buffer for the next call, so steady traffic allocates none.
  if (batch.capacity() > spare_.capacity()) spare_ = std::move(batch);
  return count;
}

std::size_t CompletionQueue::wait(std::chrono::nanoseconds timeout) {
  if (pending() == 0) {
    pollfd ready{fd_, POLLIN, 0};
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(timeout).count();
    int rc = ::poll(&ready, 1, ms < 0 ? 0 : static_cast<int>(ms));
    if (rc <= 0) return 0;
  }
  return run_ready();
}

std::size_t CompletionQueue::pending() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queued_.size();
}

}  // namespace hsmactor
