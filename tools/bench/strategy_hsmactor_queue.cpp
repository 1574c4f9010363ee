// hsm-cq and hsm-batch: the two ways hsmactor cuts the hand-offs per answer.
//
// hsm-cq: a few loop threads, each owning a CompletionQueue and a handle on
// the pool whose callbacks run there (Token::with_executor). A loop keeps its
// share of the cell's requests in flight; each callback records its answer and
// starts the next request, and the loop sleeps in CompletionQueue::wait()
// between wake-ups, each of which runs every answer that arrived meanwhile.
//
// hsm-batch: a thread per caller, each with one batch in flight (sign_many,
// digest_many or random_many of --batch items), blocking on its future as
// hsm-future does; every item counts as one request, with the batch's latency.
#include <algorithm>
#include <cstdio>
#include <thread>
#include <vector>

#include "tools/bench/strategy_hsmactor_state.hpp"

namespace hsmactor::bench {
namespace {

/// How long a loop waits in one CompletionQueue::wait(): long enough to sleep
/// through a quiet spell, short enough that an idle loop notices it is done.
constexpr auto kLoopWait = std::chrono::milliseconds(20);

/// One loop thread of hsm-cq: its queue, its handle and its requests. Touched
/// only by its own thread (callbacks run inside wait() there, or inline in
/// the request call when the answer is already known).
class CompletionLoop {
 public:
  CompletionLoop(const Token& token, const Key& key, const Workload& workload)
      : queue_(std::make_shared<CompletionQueue>()),
        token_(token.with_executor(queue_)),
        key_(key),
        workload_(workload) {
    tally_.latency.reserve(kReservedSamples);
  }

  /// Keeps `requests` in flight until `window` closes and the last answer is in.
  void run(const MeasureWindow& window, int requests) {
    window_ = window;
    for (int i = 0; i < requests; ++i) issue();
    for (;;) {
      // Answers that came back inside issue() start their successors here, so
      // a run of instant refusals loops instead of recursing.
      while (deferred_ > 0) {
        --deferred_;
        issue();
      }
      if (in_flight_ == 0) break;
      queue_->wait(kLoopWait);
    }
  }

  CallerTally& tally() { return tally_; }
  std::uint64_t answers() const { return answers_; }
  std::uint64_t wakeups() const { return queue_->wakeups(); }

 private:
  void issue() {
    Clock::time_point started = Clock::now();
    if (!window_.open(started)) return;
    ++in_flight_;
    issuing_ = true;
    auto done = [this, started](Result<Bytes> output) {
      --in_flight_;
      ++answers_;
      if (output) {
        tally_.complete(window_, started, Clock::now(), nullptr);
      } else {
        std::string error = output.error().message();
        tally_.complete(window_, started, Clock::now(), &error);
      }
      if (issuing_) {
        ++deferred_;
      } else {
        issue();
      }
    };
    switch (workload_.operation) {
      case Operation::random: token_.random(workload_.random_length).then(done); break;
      case Operation::digest: token_.digest(workload_.mechanism, workload_.data).then(done); break;
      default: token_.sign(key_, workload_.mechanism, workload_.data, done);
    }
    issuing_ = false;
  }

  std::shared_ptr<CompletionQueue> queue_;
  Token token_;
  Key key_;
  const Workload& workload_;
  MeasureWindow window_;
  CallerTally tally_;
  std::size_t in_flight_ = 0;
  std::size_t deferred_ = 0;
  std::uint64_t answers_ = 0;
  bool issuing_ = false;
};

class HsmCompletionQueue final : public Strategy {
 public:
  HsmCompletionQueue(HsmactorBench::State& state, std::size_t threads)
      : state_(state), threads_(threads) {}

  StrategyKind kind() const override { return StrategyKind::hsm_cq; }

  CellResult run(const Workload& workload, int concurrency, const Timing& timing) override {
    Key key = state_.key_for(workload);
    HsmactorBench::State::PoolProbe probe(state_.token, state_.breakdown, timing);
    HsmactorBench::State::StallWatch watch(state_.token, timing);
    std::size_t loop_count = std::min<std::size_t>(threads_, concurrency);
    std::vector<std::unique_ptr<CompletionLoop>> loops;
    for (std::size_t i = 0; i < loop_count; ++i) {
      loops.push_back(std::make_unique<CompletionLoop>(state_.token, key, workload));
    }
    MeasureWindow window = MeasureWindow::starting_now(timing);
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < loop_count; ++i) {
      // The requests in flight, shared out as evenly as they go.
      int share = concurrency / static_cast<int>(loop_count) +
                  (static_cast<int>(i) < concurrency % static_cast<int>(loop_count) ? 1 : 0);
      threads.emplace_back([&window, share, loop = loops[i].get()] { loop->run(window, share); });
    }
    auto cpu = process_cpu_during(window);
    for (std::thread& thread : threads) thread.join();

    std::vector<CallerTally> tallies;
    std::uint64_t answers = 0;
    std::uint64_t wakeups = 0;
    for (auto& loop : loops) {
      answers += loop->answers();
      wakeups += loop->wakeups();
      tallies.push_back(std::move(loop->tally()));
    }
    CellResult cell = fold_cell(kind(), workload.operation, concurrency, window, tallies);
    set_cpu_per_op(cell, cpu);
    if (wakeups > 0) {
      char per_wakeup[96];
      std::snprintf(per_wakeup, sizeof(per_wakeup), "%zu loop%s, %.1f answers per wake-up",
                    loop_count, loop_count == 1 ? "" : "s",
                    static_cast<double>(answers) / static_cast<double>(wakeups));
      cell.caveat = per_wakeup;
    }
    probe.finish(cell);
    watch.finish(cell);
    return cell;
  }

 private:
  HsmactorBench::State& state_;
  std::size_t threads_;
};

/// Folds a batch's answer into what the driver counts.
BatchOutcome outcome_of(const Result<std::vector<Result<Bytes>>>& answer, std::size_t items) {
  BatchOutcome outcome;
  outcome.items = items;
  if (!answer) {
    // Overload, deadline or shutdown answer the batch as a whole.
    outcome.failed = items;
    outcome.first_error = answer.error().message();
    return outcome;
  }
  for (const Result<Bytes>& item : *answer) {
    if (item) continue;
    if (outcome.failed++ == 0) outcome.first_error = item.error().message();
  }
  if (answer->size() != items) {
    outcome.failed = items;
    outcome.first_error = "the batch answered " + std::to_string(answer->size()) + " of " +
                          std::to_string(items) + " items";
  }
  return outcome;
}

class HsmBatch final : public Strategy {
 public:
  HsmBatch(HsmactorBench::State& state, std::size_t batch_size)
      : state_(state), batch_size_(batch_size) {}

  StrategyKind kind() const override { return StrategyKind::hsm_batch; }

  CellResult run(const Workload& workload, int concurrency, const Timing& timing) override {
    Key key = state_.key_for(workload);
    const Token& token = state_.token;
    HsmactorBench::State::PoolProbe probe(token, state_.breakdown, timing);
    HsmactorBench::State::StallWatch watch(token, timing);
    const std::size_t items = batch_size_;
    CellResult cell = run_closed_loop_batches(
        kind(), workload.operation, concurrency, timing, [&](int, std::string&) -> BatchFn {
          // The API takes its inputs by value: each batch gets a fresh copy
          // of this caller's, as a server would hand over its requests.
          auto inputs = std::make_shared<std::vector<Bytes>>(items, workload.data);
          return [&, inputs, items] {
            switch (workload.operation) {
              case Operation::random:
                return outcome_of(token.random_many(workload.random_length, items).get(), items);
              case Operation::digest:
                return outcome_of(token.digest_many(workload.mechanism, *inputs).get(), items);
              default:
                return outcome_of(token.sign_many(key, workload.mechanism, *inputs).get(), items);
            }
          };
        });
    cell.caveat = std::to_string(items) + " items per batch";
    probe.finish(cell);
    watch.finish(cell);
    return cell;
  }

 private:
  HsmactorBench::State& state_;
  std::size_t batch_size_;
};

}  // namespace

std::unique_ptr<Strategy> make_completion_queue_strategy(HsmactorBench::State& state,
                                                         std::size_t threads) {
  return std::make_unique<HsmCompletionQueue>(state, threads == 0 ? 1 : threads);
}

std::unique_ptr<Strategy> make_batch_strategy(HsmactorBench::State& state,
                                              std::size_t batch_size) {
  if (batch_size == 0 || batch_size > Token::kMaxBatchItems) batch_size = 32;
  return std::make_unique<HsmBatch>(state, batch_size);
}

}  // namespace hsmactor::bench
