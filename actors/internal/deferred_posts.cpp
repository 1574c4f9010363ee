#include "actors/internal/deferred_posts.hpp"

namespace hsmactor::internal {
namespace {

thread_local DeferredPosts* t_collecting = nullptr;

}  // namespace

DeferredPosts::DeferredPosts() {
  if (t_collecting == nullptr) {
    t_collecting = this;
    collecting_ = true;
  }
}

DeferredPosts::~DeferredPosts() {
  flush();
  if (collecting_) t_collecting = nullptr;
}

DeferredPosts* DeferredPosts::current() noexcept { return t_collecting; }

void DeferredPosts::hold(const std::shared_ptr<Executor>& executor, Task task) noexcept {
  Executor& target = executor != nullptr ? *executor : default_executor();
  try {
    Share* share = nullptr;
    for (Share& candidate : shares_) {
      if (candidate.executor == &target) {
        share = &candidate;
        break;
      }
    }
    if (share == nullptr) {
      shares_.push_back(Share{executor, &target, {}});
      share = &shares_.back();
    }
    share->tasks.push_back(std::move(task));
  } catch (...) {
    // No memory to hold it: hand it over now rather than lose an answer.
    // (push_back leaves `task` untouched when it throws.)
    target.post(std::move(task));
    return;
  }
  if (held_++ == 0) oldest_ = Clock::now();
}

void DeferredPosts::flush() noexcept {
  if (held_ == 0) return;
  held_ = 0;
  // Not collecting while handing over: an executor whose post_all() posts
  // again (one forwarding to another) posts straight through, and the list
  // is not appended to while it is walked.
  DeferredPosts* const collector = t_collecting;
  t_collecting = nullptr;
  for (Share& share : shares_) {
    if (!share.tasks.empty()) share.executor->post_all(share.tasks);
    share.tasks.clear();
  }
  // The executors are not kept past the group: a queue the application has
  // dropped goes as soon as its last answer is handed over.
  shares_.clear();
  t_collecting = collector;
}

}  // namespace hsmactor::internal
