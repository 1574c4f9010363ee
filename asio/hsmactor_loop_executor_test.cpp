#include "asio/hsmactor_loop_executor.hpp"

#include <catch2/catch.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <atomic>
#include <future>
#include <stdexcept>
#include <thread>
#include <vector>

#include "asio/hsmactor_asio.hpp"

namespace hsmactor::asio_support {
namespace {

// A loop we turn by hand: schedule() only records the drain.
struct HandLoop {
  std::vector<Task> drains;
  std::shared_ptr<LoopExecutor> executor = std::make_shared<LoopExecutor>(
      [this](Task drain) { drains.push_back(std::move(drain)); });

  // Runs the drains scheduled so far (not those they schedule).
  void turn() {
    std::vector<Task> now;
    now.swap(drains);
    for (Task& drain : now) drain();
  }
};

TEST_CASE("posts before a drain share one wake-up and run in order") {
  HandLoop loop;
  std::vector<int> ran;
  for (int i = 0; i < 100; ++i) loop.executor->post(Task([&ran, i] { ran.push_back(i); }));
  CHECK(loop.drains.size() == 1);
  CHECK(ran.empty());  // never inline
  loop.turn();
  REQUIRE(ran.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(ran[i] == i);
  CHECK(loop.drains.empty());
  LoopExecutorStats stats = loop.executor->stats();
  CHECK(stats.posted == 100);
  CHECK(stats.wakeups == 1);
  CHECK(stats.largest_batch == 100);
}

TEST_CASE("a task posted during a drain waits for the next drain") {
  HandLoop loop;
  int inner = 0;
  loop.executor->post(Task([&] { loop.executor->post(Task([&] { ++inner; })); }));
  loop.turn();
  CHECK(inner == 0);
  CHECK(loop.drains.size() == 1);
  loop.turn();
  CHECK(inner == 1);
  // Idle again: the next post wakes the loop once more.
  loop.executor->post(Task([&] { ++inner; }));
  CHECK(loop.drains.size() == 1);
  loop.turn();
  CHECK(inner == 2);
}

TEST_CASE("a task that throws leaves the rest of its batch for the next drain") {
  HandLoop loop;
  int ran = 0;
  loop.executor->post(Task([&] { ++ran; }));
  loop.executor->post(Task([] { throw std::runtime_error("handler failed"); }));
  loop.executor->post(Task([&] { ++ran; }));
  loop.executor->post(Task([&] { ++ran; }));
  CHECK_THROWS_AS(loop.turn(), std::runtime_error);
  CHECK(ran == 1);
  REQUIRE(loop.drains.size() == 1);
  loop.turn();
  CHECK(ran == 3);
  CHECK(loop.drains.empty());
}

TEST_CASE("after detach queued and later tasks run on the completion pool") {
  HandLoop loop;
  std::promise<std::thread::id> queued_ran;
  std::promise<std::thread::id> later_ran;
  loop.executor->post(Task([&] { queued_ran.set_value(std::this_thread::get_id()); }));
  loop.executor->detach();
  loop.executor->post(Task([&] { later_ran.set_value(std::this_thread::get_id()); }));
  CHECK(queued_ran.get_future().get() != std::this_thread::get_id());
  CHECK(later_ran.get_future().get() != std::this_thread::get_id());
  loop.turn();  // the drain scheduled before detach finds nothing
}

TEST_CASE("tasks from many threads all run once on the io_context thread") {
  asio::io_context io;
  auto executor = make_loop_executor(io.get_executor());
  auto work = asio::make_work_guard(io);
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  std::atomic<int> ran{0};
  std::atomic<int> off_loop{0};
  std::thread::id loop_thread;
  std::thread runner([&] {
    loop_thread = std::this_thread::get_id();
    io.run();
  });
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        executor->post(Task([&] {
          if (!io.get_executor().running_in_this_thread()) off_loop.fetch_add(1);
          if (ran.fetch_add(1) + 1 == kThreads * kPerThread) work.reset();
        }));
      }
    });
  }
  for (auto& poster : posters) poster.join();
  runner.join();  // returns once the last task let the work guard go
  CHECK(ran.load() == kThreads * kPerThread);
  CHECK(off_loop.load() == 0);
  LoopExecutorStats stats = executor->stats();
  CHECK(stats.posted == static_cast<std::uint64_t>(kThreads * kPerThread));
  CHECK(stats.wakeups <= stats.posted);
  INFO("wake-ups: " << stats.wakeups << " largest batch: " << stats.largest_batch);
  SUCCEED();
}

}  // namespace
}  // namespace hsmactor::asio_support
