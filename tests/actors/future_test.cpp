#include "actors/future.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <mutex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "pkcs11/error.hpp"

namespace hsmactor {
namespace {

using std::chrono::milliseconds;

/// Returns "ok" for a success, otherwise the name of the error's condition.
template <class T>
std::string outcome(const Result<T>& result) {
  return result.ok() ? "ok" : to_string(result.error().condition());
}

Error overloaded_error() { return Error::make(Condition::overloaded, "queue full"); }

/// Returns true as soon as `condition` holds; false if it still does not after 10 s.
template <class Condition>
bool eventually(Condition condition) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

/// An executor that runs tasks on one thread of its own and counts them.
class CountingExecutor final : public Executor {
 public:
  CountingExecutor() : thread_([this] { run(); }) {}
  ~CountingExecutor() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }
  void post(Task task) noexcept override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    posted_.fetch_add(1);
    wake_.notify_one();
  }
  int posted() const { return posted_.load(); }
  std::thread::id thread_id() const { return thread_.get_id(); }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      Task task = std::move(tasks_.front());
      tasks_.erase(tasks_.begin());
      lock.unlock();
      task();
      lock.lock();
    }
  }
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<Task> tasks_;
  bool stop_ = false;
  std::atomic<int> posted_{0};
  std::thread thread_;
};

TEST_CASE("a value set on the promise is what get returns") {
  auto [promise, future] = make_promise<std::string>();
  REQUIRE(future.valid());
  REQUIRE_FALSE(future.ready());

  REQUIRE(promise.set_value("signature"));
  REQUIRE(future.ready());

  Result<std::string> result = future.get();
  REQUIRE(outcome(result) == "ok");
  REQUIRE(*result == "signature");
}

TEST_CASE("an error set on the promise is what get returns") {
  auto [promise, future] = make_promise<int>();
  REQUIRE(promise.set_error(Error::from_rv(CKR_DEVICE_REMOVED, "C_Sign", "sign")));

  Result<int> result = future.get();
  REQUIRE(outcome(result) == "pkcs11_error");
  REQUIRE(result.error().rv() == CKR_DEVICE_REMOVED);
  REQUIRE(result.error().function() == "C_Sign");
}

TEST_CASE("set_result carries either a value or an error") {
  auto [value_promise, value_future] = make_promise<int>();
  REQUIRE(value_promise.set_result(Result<int>(7)));
  REQUIRE(*value_future.get() == 7);

  auto [error_promise, error_future] = make_promise<int>();
  REQUIRE(error_promise.set_result(Result<int>(overloaded_error())));
  REQUIRE(outcome(error_future.get()) == "overloaded");
}

TEST_CASE("a void promise resolves its future with success or with an error") {
  auto [promise, future] = make_promise<void>();
  REQUIRE(promise.set_value());
  REQUIRE(outcome(future.get()) == "ok");

  auto [failing, failed] = make_promise<void>();
  REQUIRE(failing.set_error(overloaded_error()));
  REQUIRE(outcome(failed.get()) == "overloaded");
}

TEST_CASE("a promise accepts a value that converts to its type") {
  auto [promise, future] = make_promise<long>();
  REQUIRE(promise.set_value(1));
  REQUIRE(*future.get() == 1L);
}

TEST_CASE("get with a timeout reports wait_timeout and the future can be waited on again") {
  auto [promise, future] = make_promise<int>();

  auto started = std::chrono::steady_clock::now();
  Result<int> early = future.get(milliseconds(20));
  auto waited = std::chrono::steady_clock::now() - started;

  REQUIRE(outcome(early) == "wait_timeout");
  REQUIRE(waited >= milliseconds(20));
  REQUIRE(future.valid());
  REQUIRE_FALSE(future.ready());

  std::thread producer([promise = std::move(promise)]() mutable { promise.set_value(42); });
  Result<int> late = future.get(std::chrono::hours(1));
  producer.join();

  REQUIRE(outcome(late) == "ok");
  REQUIRE(*late == 42);
  REQUIRE_FALSE(future.valid());
}

TEST_CASE("get with a zero or negative timeout returns a result that is already there") {
  auto [promise, future] = make_promise<int>();
  REQUIRE(outcome(future.get(milliseconds(0))) == "wait_timeout");
  REQUIRE(outcome(future.get(milliseconds(-5))) == "wait_timeout");

  REQUIRE(promise.set_value(3));
  REQUIRE(*future.get(milliseconds(0)) == 3);
}

TEST_CASE("get with an enormous timeout waits for the answer instead of overflowing") {
  auto [promise, future] = make_promise<int>();
  REQUIRE(promise.set_value(9));
  REQUIRE(*future.get(std::chrono::seconds::max()) == 9);

  auto [late_promise, late_future] = make_promise<int>();
  std::thread producer([&late_promise = late_promise] {
    std::this_thread::sleep_for(milliseconds(10));
    late_promise.set_value(10);
  });
  Result<int> result = late_future.get(std::chrono::nanoseconds::max());
  producer.join();
  REQUIRE(*result == 10);
}

TEST_CASE("blocking get wakes when another thread resolves the promise") {
  auto [promise, future] = make_promise<int>();
  std::thread producer([promise = std::move(promise)]() mutable {
    std::this_thread::sleep_for(milliseconds(10));
    promise.set_value(5);
  });
  Result<int> result = future.get();
  producer.join();
  REQUIRE(*result == 5);
}

TEST_CASE("then registered before resolution runs on the completion pool, not the resolver") {
  auto [promise, future] = make_promise<int>();
  auto [ran, ran_future] = make_promise<std::thread::id>();
  std::atomic<int> calls{0};
  future.then([&calls, ran = std::move(ran)](Result<int> result) mutable {
    calls.fetch_add(1);
    if (result && *result == 8) ran.set_value(std::this_thread::get_id());
  });
  REQUIRE_FALSE(future.valid());
  REQUIRE(calls == 0);

  std::thread producer([promise = std::move(promise)]() mutable { promise.set_value(8); });
  std::thread::id producer_id = producer.get_id();
  producer.join();

  auto ran_on = ran_future.get(std::chrono::seconds(10));
  REQUIRE(ran_on.ok());
  REQUIRE(*ran_on != producer_id);
  REQUIRE(*ran_on != std::this_thread::get_id());
  REQUIRE(calls == 1);
}

TEST_CASE("a continuation that blocks holds up neither the resolver nor other continuations") {
  auto [slow_promise, slow_future] = make_promise<int>();
  auto [fast_promise, fast_future] = make_promise<int>();
  auto [release, released] = make_promise<void>();
  auto [fast_seen, fast_seen_future] = make_promise<int>();
  slow_future.then([released = std::move(released)](Result<int>) mutable {
    // Blocks on another future's answer: allowed, it holds only this thread.
    (void)released.get(std::chrono::seconds(10));
  });
  fast_future.then([fast_seen = std::move(fast_seen)](Result<int> result) mutable {
    fast_seen.set_result(std::move(result));
  });
  auto started = std::chrono::steady_clock::now();
  REQUIRE(slow_promise.set_value(1));
  REQUIRE(fast_promise.set_value(2));
  REQUIRE(std::chrono::steady_clock::now() - started < std::chrono::seconds(1));
  auto fast = fast_seen_future.get(std::chrono::seconds(5));
  REQUIRE(fast.ok());
  REQUIRE(*fast == 2);
  REQUIRE(release.set_value());
}

TEST_CASE("a continuation runs on the executor its promise was given") {
  auto executor = std::make_shared<CountingExecutor>();
  auto [promise, future] = make_promise<int>(executor);
  auto [ran, ran_future] = make_promise<std::thread::id>();
  future.then([ran = std::move(ran)](Result<int>) mutable {
    ran.set_value(std::this_thread::get_id());
  });
  REQUIRE(promise.set_value(3));
  auto ran_on = ran_future.get(std::chrono::seconds(10));
  REQUIRE(ran_on.ok());
  REQUIRE(*ran_on == executor->thread_id());
  REQUIRE(executor->posted() == 1);
}

TEST_CASE("a future unresolved at fork() answers forked in the child; a resolved one keeps its value") {
  auto [pending_promise, pending] = make_promise<int>();
  auto [answered_promise, answered] = make_promise<int>();
  auto [callback_promise, with_callback] = make_promise<int>();
  REQUIRE(answered_promise.set_value(5));
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int failures = 0;
    auto result = pending.get();  // would hang forever without fork detection
    if (result || result.error().condition() != Condition::forked) failures |= 1;
    auto kept = answered.get();
    if (!kept || *kept != 5) failures |= 2;
    bool called_with_forked = false;
    with_callback.then([&](Result<int> r) {
      called_with_forked = !r && r.error().condition() == Condition::forked;
    });
    if (!called_with_forked) failures |= 4;
    ::_exit(failures);
  }
  int status = 0;
  pid_t waited = 0;
  for (int i = 0; i < 1000 && waited == 0; ++i) {
    waited = ::waitpid(child, &status, WNOHANG);
    if (waited == 0) std::this_thread::sleep_for(milliseconds(10));
  }
  if (waited == 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
  }
  REQUIRE(waited == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  // The parent's futures are unaffected.
  REQUIRE(pending_promise.set_value(1));
  REQUIRE(*pending.get() == 1);
  REQUIRE(callback_promise.set_value(2));
}

TEST_CASE("then registered after resolution runs at once on the calling thread") {
  auto [promise, future] = make_promise<int>();
  REQUIRE(promise.set_value(4));

  int calls = 0;
  std::thread::id ran_on;
  future.then([&](Result<int> result) {
    ++calls;
    REQUIRE(*result == 4);
    ran_on = std::this_thread::get_id();
  });

  REQUIRE(calls == 1);
  REQUIRE(ran_on == std::this_thread::get_id());
  REQUIRE_FALSE(future.valid());
}

TEST_CASE("then accepts a move-only callback, which may answer another promise") {
  auto [inner_promise, inner_future] = make_promise<int>();
  auto [outer_promise, outer_future] = make_promise<std::string>();
  auto suffix = std::make_unique<std::string>(" signatures");

  inner_future.then([outer = std::move(outer_promise), suffix = std::move(suffix)](
                        Result<int> result) mutable {
    if (result) {
      outer.set_value(std::to_string(*result) + *suffix);
    } else {
      outer.set_error(result.error());
    }
  });
  REQUIRE(inner_promise.set_value(3));

  REQUIRE(*outer_future.get() == "3 signatures");
}

TEST_CASE("a callback that drops its promise unanswered breaks the next future") {
  auto [inner_promise, inner_future] = make_promise<int>();
  auto [outer_promise, outer_future] = make_promise<int>();
  inner_future.then([outer = std::move(outer_promise)](Result<int>) {});
  REQUIRE(inner_promise.set_value(1));
  REQUIRE(outcome(outer_future.get()) == "broken_promise");
}

TEST_CASE("a second answer returns false and the first answer wins") {
  auto [promise, future] = make_promise<int>();
  REQUIRE(promise.set_value(1));
  REQUIRE_FALSE(promise.set_value(2));
  REQUIRE_FALSE(promise.set_error(overloaded_error()));
  REQUIRE_FALSE(promise.set_result(Result<int>(3)));

  REQUIRE(*future.get() == 1);
}

TEST_CASE("an error answered first also wins over a later value") {
  auto [promise, future] = make_promise<void>();
  REQUIRE(promise.set_error(overloaded_error()));
  REQUIRE_FALSE(promise.set_value());
  REQUIRE(outcome(future.get()) == "overloaded");
}

TEST_CASE("a promise dropped unfulfilled resolves its future with broken_promise") {
  Future<int> future;
  {
    Promise<int> promise;
    future = promise.get_future();
  }
  Result<int> result = future.get();
  REQUIRE(outcome(result) == "broken_promise");
  REQUIRE(result.error().category() == Category::retry);
}

TEST_CASE("a promise dropped unfulfilled calls a waiting callback with broken_promise") {
  auto [seen, seen_future] = make_promise<std::string>();
  {
    auto [promise, future] = make_promise<void>();
    future.then([seen = std::move(seen)](Result<void> result) mutable {
      seen.set_value(outcome(result));
    });
    REQUIRE_FALSE(seen_future.ready());
  }
  REQUIRE(*seen_future.get(std::chrono::seconds(10)) == "broken_promise");
}

TEST_CASE("a promise that answered is dropped without breaking its future") {
  Future<int> future;
  {
    auto [promise, connected] = make_promise<int>();
    future = std::move(connected);
    REQUIRE(promise.set_value(6));
  }
  REQUIRE(*future.get() == 6);
}

TEST_CASE("moving a promise moves the duty to answer") {
  auto [promise, future] = make_promise<int>();
  Promise<int> moved = std::move(promise);
  REQUIRE_FALSE(promise.valid());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  REQUIRE_FALSE(promise.set_value(1));
  REQUIRE_FALSE(future.ready());

  REQUIRE(moved.set_value(2));
  REQUIRE(*future.get() == 2);
}

TEST_CASE("move-assigning over an unanswered promise breaks its future") {
  auto [first, first_future] = make_promise<int>();
  auto [second, second_future] = make_promise<int>();
  first = std::move(second);
  REQUIRE(outcome(first_future.get()) == "broken_promise");

  REQUIRE(first.set_value(12));
  REQUIRE(*second_future.get() == 12);
}

TEST_CASE("a shared promise breaks its future only when its last copy is dropped") {
  auto [promise, future] = make_promise<int>();
  auto copy = std::make_unique<SharedPromise<int>>(std::move(promise));
  {
    SharedPromise<int> other = *copy;
    std::vector<SharedPromise<int>> more(3, other);
    REQUIRE(other.valid());
  }
  REQUIRE_FALSE(future.ready());

  copy.reset();
  REQUIRE(future.ready());
  REQUIRE(outcome(future.get()) == "broken_promise");
}

TEST_CASE("the copy of a shared promise that answers first wins") {
  auto [promise, future] = make_promise<int>();
  SharedPromise<int> first(std::move(promise));
  SharedPromise<int> second = first;

  REQUIRE(second.set_value(21));
  REQUIRE_FALSE(first.set_value(22));
  REQUIRE_FALSE(first.set_error(overloaded_error()));
  REQUIRE_FALSE(second.set_result(Result<int>(23)));
  REQUIRE(*future.get() == 21);
}

TEST_CASE("a shared promise answered by a copy is not broken when the copies go") {
  auto [promise, future] = make_promise<void>();
  {
    SharedPromise<void> shared(std::move(promise));
    SharedPromise<void> copy = shared;
    REQUIRE(copy.set_value());
  }
  REQUIRE(outcome(future.get()) == "ok");
}

TEST_CASE("an empty shared promise answers nothing") {
  SharedPromise<int> empty;
  REQUIRE_FALSE(empty.valid());
  REQUIRE_FALSE(empty.set_value(1));
  REQUIRE_FALSE(empty.set_error(overloaded_error()));
  REQUIRE_FALSE(empty.set_result(Result<int>(1)));
}

TEST_CASE("a default-constructed future is invalid and get returns internal_error") {
  Future<int> future;
  REQUIRE_FALSE(future.valid());
  REQUIRE_FALSE(future.ready());
  REQUIRE(outcome(future.get()) == "internal_error");
  REQUIRE(outcome(future.get(milliseconds(1))) == "internal_error");

  std::string seen;
  future.then([&](Result<int> result) { seen = outcome(result); });
  REQUIRE(seen == "internal_error");
}

TEST_CASE("get consumes the future: a second get returns internal_error") {
  auto [promise, future] = make_promise<int>();
  REQUIRE(promise.set_value(1));
  REQUIRE(*future.get() == 1);
  REQUIRE_FALSE(future.valid());
  REQUIRE(outcome(future.get()) == "internal_error");
}

TEST_CASE("get consumes the future also when the answer is an error") {
  auto [promise, future] = make_promise<int>();
  REQUIRE(promise.set_error(overloaded_error()));
  REQUIRE(outcome(future.get()) == "overloaded");
  REQUIRE_FALSE(future.valid());
}

TEST_CASE("then consumes the future: a later get returns internal_error") {
  auto [promise, future] = make_promise<int>();
  std::atomic<int> calls{0};
  future.then([&](Result<int>) { calls.fetch_add(1); });
  REQUIRE(outcome(future.get()) == "internal_error");
  REQUIRE(promise.set_value(1));
  REQUIRE(eventually([&] { return calls.load() == 1; }));
}

TEST_CASE("get_future called twice returns a future holding internal_error") {
  Promise<int> promise;
  Future<int> first = promise.get_future();
  Future<int> second = promise.get_future();
  REQUIRE(second.ready());
  REQUIRE(outcome(second.get()) == "internal_error");

  REQUIRE(promise.set_value(1));
  REQUIRE(*first.get() == 1);
}

TEST_CASE("a future dropped before resolution leaves the promise working") {
  auto [promise, future] = make_promise<std::string>();
  future = Future<std::string>();
  REQUIRE(promise.set_value("nobody listens"));
  REQUIRE_FALSE(promise.set_value("again"));
}

TEST_CASE("a callback outlives its dropped future and still gets the answer") {
  auto [promise, future] = make_promise<int>();
  std::atomic<int> seen{0};
  {
    Future<int> gone = std::move(future);
    gone.then([&](Result<int> result) { seen.store(*result); });
  }
  REQUIRE(promise.set_value(17));
  REQUIRE(eventually([&] { return seen.load() == 17; }));
}

TEST_CASE("make_ready_future returns a future that is ready at once") {
  Future<int> value = make_ready_future<int>(11);
  REQUIRE(value.ready());
  REQUIRE(*value.get() == 11);

  Future<int> error = make_ready_future<int>(overloaded_error());
  REQUIRE(error.ready());
  REQUIRE(outcome(error.get()) == "overloaded");

  Future<void> done = make_ready_future<void>(success());
  REQUIRE(done.ready());
  REQUIRE(outcome(done.get()) == "ok");
}

TEST_CASE("blocking get on one thread sees every value set on another") {
  constexpr int kPairs = 4;
  constexpr int kPerPair = 10000;
  std::vector<std::vector<Promise<int>>> promises(kPairs);
  std::vector<std::vector<Future<int>>> futures(kPairs);
  for (int p = 0; p < kPairs; ++p) {
    for (int i = 0; i < kPerPair; ++i) {
      auto [promise, future] = make_promise<int>();
      promises[p].push_back(std::move(promise));
      futures[p].push_back(std::move(future));
    }
  }

  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int p = 0; p < kPairs; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerPair; ++i) {
        if (!promises[p][i].set_value(i)) wrong.fetch_add(1);
      }
    });
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerPair; ++i) {
        Result<int> result = futures[p][i].get();
        if (!result || *result != i) wrong.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();

  REQUIRE(wrong.load() == 0);
}

TEST_CASE("callbacks registered while other threads answer run exactly once") {
  // 8 threads x 10k answers. For each answer, one thread registers the callback
  // while two other threads race to answer through their own SharedPromise copy;
  // every 13th answer is never given, so the last copy dropped breaks it.
  constexpr int kThreads = 8;
  constexpr int kPerThread = 10000;
  constexpr int kTotal = kThreads * kPerThread;
  auto is_dropped = [](int i) { return i % 13 == 0; };

  std::vector<Future<int>> futures;
  std::vector<SharedPromise<int>> first_copies;
  std::vector<SharedPromise<int>> second_copies;
  futures.reserve(kTotal);
  first_copies.reserve(kTotal);
  second_copies.reserve(kTotal);
  for (int i = 0; i < kTotal; ++i) {
    auto [promise, future] = make_promise<int>();
    futures.push_back(std::move(future));
    first_copies.emplace_back(std::move(promise));
    second_copies.push_back(first_copies.back());
  }

  std::vector<std::atomic<int>> calls(kTotal);
  std::vector<std::atomic<int>> wins(kTotal);
  std::atomic<int> wrong_answers{0};
  std::atomic<int> waiting{kThreads};

  auto answer = [&](std::vector<SharedPromise<int>>& copies, int i) {
    if (is_dropped(i)) {
      copies[i] = SharedPromise<int>();
    } else if (copies[i].set_value(i)) {
      wins[i].fetch_add(1);
    }
  };

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      waiting.fetch_sub(1);
      while (waiting.load() > 0) std::this_thread::yield();
      for (int k = 0; k < kPerThread; ++k) {
        int base = k * kThreads;
        int mine = base + t;
        futures[mine].then([&, mine](Result<int> result) {
          calls[mine].fetch_add(1);
          bool expected = is_dropped(mine)
                              ? !result && result.error().condition() == Condition::broken_promise
                              : result && *result == mine;
          if (!expected) wrong_answers.fetch_add(1);
        });
        answer(first_copies, base + (t + 1) % kThreads);
        answer(second_copies, base + (t + 2) % kThreads);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  // Callbacks whose answer came later run on the completion pool: wait for them.
  REQUIRE(eventually([&] {
    int total = 0;
    for (int i = 0; i < kTotal; ++i) total += calls[i].load() > 0;
    return total == kTotal;
  }));

  int never_called = 0;
  int called_twice = 0;
  int bad_wins = 0;
  for (int i = 0; i < kTotal; ++i) {
    if (calls[i].load() == 0) ++never_called;
    if (calls[i].load() > 1) ++called_twice;
    if (wins[i].load() != (is_dropped(i) ? 0 : 1)) ++bad_wins;
  }
  REQUIRE(never_called == 0);
  REQUIRE(called_twice == 0);
  REQUIRE(bad_wins == 0);
  REQUIRE(wrong_answers.load() == 0);
}

}  // namespace
}  // namespace hsmactor
