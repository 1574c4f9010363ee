// LoopExecutor: an hsmactor::Executor that hands answers to an event loop in
// batches.
//
// Session threads post continuations here; they go into one queue behind a
// short mutex, and the loop is woken only when it is not already due to drain
// (one schedule call per batch, not per answer). The loop then runs the whole
// batch in one go, so under load one wake-up carries many answers and the
// loop's own queue sees one entry instead of hundreds.
//
// States: idle (nothing queued, no drain scheduled) -> scheduled (a drain is
// queued on the loop; posts only append) -> draining (the loop runs the batch
// it took; posts append to the next batch, which is scheduled again when this
// one ends) -> idle. detach() moves it to detached for good: queued and later
// tasks go to hsmactor's completion pool, so nothing is lost once the loop is
// gone.
//
// Usage:
//   auto loop = std::make_shared<LoopExecutor>(
//       [ex = io.get_executor()](Task drain) { asio::post(ex, std::move(drain)); });
//   options.executor = loop;          // continuations now run on `io`'s thread
//   ...
//   token.close(); loop->detach();    // before `io` is destroyed
// (hsmactor_asio.hpp's make_loop_executor(executor) writes the first line for Asio.)
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "actors/executor.hpp"

namespace hsmactor::asio_support {

/// Counters of a LoopExecutor, read with relaxed loads (for benchmarks).
struct LoopExecutorStats {
  /// Tasks posted.
  std::uint64_t posted = 0;
  /// Drains scheduled on the loop (wake-ups).
  std::uint64_t wakeups = 0;
  /// Largest batch one drain ran.
  std::uint64_t largest_batch = 0;
};

/// An Executor that runs its tasks in batches on one event loop.
class LoopExecutor final : public Executor {
 public:
  /// Asks the loop to call `drain` once, soon, from the loop (never inline);
  /// called at most once per batch, from whichever thread posts first.
  using Schedule = std::function<void(Task drain)>;

  explicit LoopExecutor(Schedule schedule);
  ~LoopExecutor() override;
  LoopExecutor(const LoopExecutor&) = delete;
  LoopExecutor& operator=(const LoopExecutor&) = delete;

  /// Queues `task` for the loop; schedules a drain unless one is due already.
  void post(Task task) noexcept override;
  /// Queues every task under one lock, behind at most one scheduled drain.
  void post_all(std::vector<Task>& tasks) noexcept override;

  /// Hands every queued and every later task to hsmactor's completion pool;
  /// call it before the loop stops for good. Idempotent.
  void detach();

  /// Returns the counters so far.
  LoopExecutorStats stats() const;

 private:
  struct Shared;
  static void drain(const std::shared_ptr<Shared>& shared);
  static void reschedule(const std::shared_ptr<Shared>& shared);

  // Shared with every scheduled drain, so a drain that runs after this object
  // is gone finds its queue still there.
  std::shared_ptr<Shared> shared_;
};

}  // namespace hsmactor::asio_support
