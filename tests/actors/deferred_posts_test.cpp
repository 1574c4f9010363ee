// Answers a session gives while it runs a group of jobs: executor posts are
// held on that thread and handed over per executor in one post_all(), in
// order, with every executor kept alive until then; nothing is ever lost.
// Also JobCosts, which decides which jobs a session groups.
#include "actors/internal/deferred_posts.hpp"

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "actors/completion_queue.hpp"
#include "actors/internal/job_costs.hpp"
#include "actors/operations.hpp"

namespace hsmactor {
namespace {

using internal::DeferredPosts;

/// Runs every task at once and counts how it was handed them.
class CountingExecutor final : public Executor {
 public:
  explicit CountingExecutor(bool* destroyed = nullptr) : destroyed_(destroyed) {}
  ~CountingExecutor() override {
    if (destroyed_ != nullptr) *destroyed_ = true;
  }
  void post(Task task) noexcept override {
    posts++;
    task();
  }
  void post_all(std::vector<Task>& tasks) noexcept override {
    batches.push_back(tasks.size());
    for (Task& task : tasks) task();
    tasks.clear();
  }
  int posts = 0;
  std::vector<std::size_t> batches;

 private:
  bool* destroyed_;
};

TEST_CASE("without a collecting scope a post goes through at once") {
  auto executor = std::make_shared<CountingExecutor>();
  std::shared_ptr<Executor> as_executor = executor;
  int ran = 0;
  post_to(as_executor, Task([&] { ran++; }));
  CHECK(ran == 1);
  CHECK(executor->posts == 1);
  CHECK(executor->batches.empty());
}

TEST_CASE("posts made inside a scope are held and handed over per executor in order") {
  auto first = std::make_shared<CountingExecutor>();
  auto second = std::make_shared<CountingExecutor>();
  std::shared_ptr<Executor> to_first = first;
  std::shared_ptr<Executor> to_second = second;
  std::vector<std::string> order;
  {
    DeferredPosts answers;
    post_to(to_first, Task([&] { order.push_back("a1"); }));
    post_to(to_second, Task([&] { order.push_back("b1"); }));
    post_to(to_first, Task([&] { order.push_back("a2"); }));
    post_to(to_first, Task([&] { order.push_back("a3"); }));
    CHECK(answers.held() == 4);
    CHECK(order.empty());
    answers.flush();
    CHECK(answers.held() == 0);
    CHECK(order == std::vector<std::string>{"a1", "a2", "a3", "b1"});
    CHECK(first->batches == std::vector<std::size_t>{3});
    CHECK(second->batches == std::vector<std::size_t>{1});
    // Collecting again after a flush; the destructor hands this one over.
    post_to(to_second, Task([&] { order.push_back("b2"); }));
    CHECK(order.size() == 4);
  }
  CHECK(order.back() == "b2");
  CHECK(second->batches == std::vector<std::size_t>{1, 1});
  CHECK(first->posts == 0);
  CHECK(second->posts == 0);
}

TEST_CASE("a nested scope does not collect: the outer one hands everything over") {
  auto executor = std::make_shared<CountingExecutor>();
  std::shared_ptr<Executor> as_executor = executor;
  int ran = 0;
  {
    DeferredPosts outer;
    {
      DeferredPosts inner;
      post_to(as_executor, Task([&] { ran++; }));
      CHECK(inner.held() == 0);
    }
    CHECK(ran == 0);
    CHECK(outer.held() == 1);
  }
  CHECK(ran == 1);
  CHECK(executor->batches == std::vector<std::size_t>{1});
}

TEST_CASE("a held post keeps its executor alive until it is handed over") {
  bool destroyed = false;
  auto executor = std::make_shared<CountingExecutor>(&destroyed);
  int ran = 0;
  {
    DeferredPosts answers;
    {
      std::shared_ptr<Executor> last_holder = std::move(executor);
      post_to(last_holder, Task([&] { ran++; }));
    }
    CHECK_FALSE(destroyed);
    answers.flush();
    CHECK(ran == 1);
    // Not kept beyond the group.
    CHECK(destroyed);
  }
}

TEST_CASE("scopes are per thread: another thread's posts go through at once") {
  auto executor = std::make_shared<CountingExecutor>();
  std::shared_ptr<Executor> as_executor = executor;
  DeferredPosts answers;
  int ran = 0;
  std::thread other([&] { post_to(as_executor, Task([&] { ran++; })); });
  other.join();
  CHECK(ran == 1);
  CHECK(answers.held() == 0);
}

TEST_CASE("a CompletionQueue takes a group behind one wake-up, after what it holds") {
  CompletionQueue completions;
  std::vector<int> order;
  completions.post(Task([&] { order.push_back(0); }));
  CHECK(completions.wakeups() == 1);
  std::vector<Task> group;
  for (int i = 1; i <= 5; ++i) group.emplace_back([&, i] { order.push_back(i); });
  completions.post_all(group);
  CHECK(group.empty());
  CHECK(completions.wakeups() == 1);  // it was not empty: no second signal
  CHECK(completions.run_ready() == 6);
  CHECK(order == std::vector<int>{0, 1, 2, 3, 4, 5});

  for (int i = 6; i <= 8; ++i) group.emplace_back([&, i] { order.push_back(i); });
  completions.post_all(group);
  CHECK(completions.wakeups() == 2);  // into an empty queue: one signal
  CHECK(completions.wait(std::chrono::milliseconds(100)) == 3);
  CHECK(order.back() == 8);
}

/// Counts, from any thread, the tasks handed over and on which thread.
class ThreadNotingExecutor final : public Executor {
 public:
  void post(Task task) noexcept override {
    note(1);
    task();
  }
  void post_all(std::vector<Task>& tasks) noexcept override {
    note(tasks.size());
    for (Task& task : tasks) task();
    tasks.clear();
  }
  std::size_t tasks() const { return tasks_.load(); }
  bool any_from_another_thread() const { return from_elsewhere_.load(); }

 private:
  void note(std::size_t count) {
    tasks_ += count;
    if (std::this_thread::get_id() != owner_) from_elsewhere_ = true;
  }
  const std::thread::id owner_ = std::this_thread::get_id();
  std::atomic<std::size_t> tasks_{0};
  std::atomic<bool> from_elsewhere_{false};
};

// Regression (review, 2026-12-03): answers held for their group waited for
// the next PKCS#11 call however long it took (a stalled module, a cheap kind
// turned slow). A guarded call that overruns now loses them to the watch.
TEST_CASE("answers held across a call that overruns are handed over by the watch thread") {
  auto executor = std::make_shared<ThreadNotingExecutor>();
  const auto rescued_before = DeferredPosts::rescued();
  {
    DeferredPosts scope;
    post_to(executor, Task([] {}));
    post_to(executor, Task([] {}));
    REQUIRE(scope.held() == 2);
    DeferredPosts::Guard guard(scope, DeferredPosts::Clock::now() + std::chrono::milliseconds(5));
    // The "call" stalls: the session thread is away for far longer.
    const auto until = DeferredPosts::Clock::now() + std::chrono::seconds(10);
    while (executor->tasks() < 2 && DeferredPosts::Clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CHECK(executor->tasks() == 2);
    CHECK(executor->any_from_another_thread());
    CHECK(scope.held() == 0);
  }
  CHECK(executor->tasks() == 2);  // nothing handed over twice
  CHECK(DeferredPosts::rescued() - rescued_before == 2);
}

TEST_CASE("a guard that ends in time leaves the held answers to their scope") {
  auto executor = std::make_shared<ThreadNotingExecutor>();
  {
    DeferredPosts scope;
    post_to(executor, Task([] {}));
    {
      DeferredPosts::Guard guard(scope, DeferredPosts::Clock::now() + std::chrono::seconds(30));
    }
    {
      DeferredPosts::Guard expired_later(scope, DeferredPosts::Clock::now() +
                                                    std::chrono::milliseconds(2));
    }  // ended before the watch got to it: no longer guarded
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    CHECK(executor->tasks() == 0);
    CHECK(scope.held() == 1);
  }
  CHECK(executor->tasks() == 1);
  CHECK_FALSE(executor->any_from_another_thread());
}

TEST_CASE("a CompletionQueue task that drains the queue again runs every task exactly once") {
  auto queue = std::make_shared<CompletionQueue>();
  int first = 0, second = 0, later = 0;
  queue->post(Task([&] {
    first++;
    queue->run_ready();  // a callback that pumps its own loop while it waits
  }));
  queue->post(Task([&] { second++; }));
  CHECK(queue->run_ready() == 2);
  queue->post(Task([&] { later++; }));
  CHECK(queue->run_ready() == 1);
  CHECK(queue->run_ready() == 0);
  CHECK(first == 1);
  CHECK(second == 1);
  CHECK(later == 1);
}

TEST_CASE("a CompletionQueue task may post and drain while others post from threads") {
  auto queue = std::make_shared<CompletionQueue>();
  constexpr int kPosts = 20000;
  std::atomic<int> ran{0};
  std::thread poster([&] {
    for (int i = 0; i < kPosts; ++i) queue->post(Task([&] { ran++; }));
  });
  // Some tasks drain again from inside; every task still runs once.
  int nested_drains = 0;
  while (ran.load() < kPosts) {
    queue->post(Task([&] { nested_drains++; queue->run_ready(); }));
    queue->run_ready();
  }
  poster.join();
  queue->run_ready();
  CHECK(ran.load() == kPosts);
  CHECK(nested_drains > 0);
}

TEST_CASE("JobCosts judges against its own budget and groups nothing with none") {
  using internal::JobCosts;
  Job random;
  random.op = Op::random;
  const auto kind = JobCosts::kind_of(random);
  JobCosts generous(std::chrono::milliseconds(10));
  CHECK(generous.hold_budget() == std::chrono::milliseconds(10));
  CHECK(generous.expected(kind) > generous.hold_budget());  // unseen: dear
  generous.record(kind, std::chrono::milliseconds(3));
  CHECK(generous.expected(kind) < generous.hold_budget());  // cheap against 10 ms
  JobCosts none(std::chrono::nanoseconds(0));
  none.record(kind, std::chrono::nanoseconds(1));
  CHECK_FALSE(none.expected(kind) < none.hold_budget());  // never grouped
}

TEST_CASE("JobCosts counts a kind never seen as dear and learns the others") {
  using internal::CoalescingLimits;
  using internal::JobCosts;
  JobCosts costs;
  Job random;
  random.op = Op::random;
  Job sign;
  sign.op = Op::sign;
  sign.mechanism = pkcs11::Mechanism::of(CKM_ECDSA);
  const auto random_kind = JobCosts::kind_of(random);
  const auto sign_kind = JobCosts::kind_of(sign);
  CHECK(random_kind != sign_kind);
  CHECK(costs.expected(random_kind) > CoalescingLimits::kHoldBudget);

  costs.record(random_kind, std::chrono::microseconds(2));
  CHECK(costs.expected(random_kind) == std::chrono::microseconds(2));
  CHECK(costs.expected(sign_kind) > CoalescingLimits::kHoldBudget);
  // One preempted job does not make a cheap kind dear for long...
  costs.record(random_kind, std::chrono::milliseconds(5));
  CHECK(costs.expected(random_kind) < CoalescingLimits::kHoldBudget);
  // ...but a module that slows down is followed within a few jobs.
  for (int i = 0; i < 20; ++i) costs.record(random_kind, std::chrono::microseconds(500));
  CHECK(costs.expected(random_kind) > CoalescingLimits::kHoldBudget);

  // The same operation on another key is another kind.
  Job other_key = sign;
  other_key.key.handle = 42;
  CHECK(JobCosts::kind_of(other_key) != sign_kind);
}

}  // namespace
}  // namespace hsmactor
