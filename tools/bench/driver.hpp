// Load drivers: run N callers against a strategy for warm-up plus a measured
// window, and fold what they saw into a CellResult.
//
// A request counts when it completes inside the window [start, end]; callers
// stop starting requests at `end`. Throughput is counted requests divided by
// the window's length, so warm-up and the drain after `end` are excluded.
//
// Usage (one blocking request per caller thread):
//   CellResult cell = run_closed_loop(StrategyKind::raw_thread, Operation::ecdsa, 4, timing,
//       [&](int caller, std::string& error) -> RequestFn {
//         auto session = open_session();                   // on the caller's thread
//         return [session](std::string& error) { return sign(*session, error); };
//       });
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "tools/bench/cell.hpp"
#include "tools/bench/latency_recorder.hpp"

namespace hsmactor::bench {

using Clock = std::chrono::steady_clock;

/// How long a cell runs.
struct Timing {
  double warmup = 0.5;
  double seconds = 2.0;
};

/// The measured window of one cell.
struct MeasureWindow {
  Clock::time_point start;
  Clock::time_point end;

  /// Returns a window that opens after `timing.warmup` seconds from now.
  static MeasureWindow starting_now(const Timing& timing);

  /// Returns true when a request completing at `done` counts.
  bool counts(Clock::time_point done) const { return done >= start && done <= end; }
  /// Returns true while callers may start new requests.
  bool open(Clock::time_point now) const { return now < end; }
  double seconds() const { return std::chrono::duration<double>(end - start).count(); }
};

/// Sleeps until `window` opens and until it closes, and returns the CPU time
/// the whole process used in between.
std::chrono::nanoseconds process_cpu_during(const MeasureWindow& window);

/// Sets `cell.cpu_us_per_op` from the CPU time spent in its window.
void set_cpu_per_op(CellResult& cell, std::chrono::nanoseconds cpu);

/// Samples reserved per caller before a run, so recording rarely allocates.
inline constexpr std::size_t kReservedSamples = 1 << 16;

/// What one caller saw in one cell.
struct CallerTally {
  LatencyRecorder latency;
  std::uint64_t operations = 0;
  std::uint64_t errors = 0;
  std::string first_error;
  /// Requests that completed after the window closed (not counted above),
  /// the first error among them, and when the last one completed.
  std::uint64_t late = 0;
  std::string first_late_error;
  Clock::time_point last_done{};

  /// Records a request that started at `started` and completed at `done`;
  /// `error` is null on success.
  void complete(const MeasureWindow& window, Clock::time_point started, Clock::time_point done,
                const std::string* error);
  /// Records a batch of `items` requests answered together: each counts as one
  /// request with the batch's latency; `failed` of them (the first with
  /// `error`) failed.
  void complete_batch(const MeasureWindow& window, Clock::time_point started,
                      Clock::time_point done, std::uint64_t items, std::uint64_t failed,
                      const std::string& error);
};

/// Returns the cell made of the callers' tallies (consumes their samples).
CellResult fold_cell(StrategyKind strategy, Operation operation, int concurrency,
                     const MeasureWindow& window, std::vector<CallerTally>& tallies);

/// Performs one request on the caller's thread: true on success, or false with
/// `error` set.
using RequestFn = std::function<bool(std::string& error)>;
/// Prepares caller `index` on its own thread (before the clock starts) and
/// returns its request function, or an empty function with `error` set. The
/// function is destroyed on the same thread after the run.
using CallerSetup = std::function<RequestFn(int index, std::string& error)>;

/// Runs `concurrency` threads, each issuing one request at a time.
CellResult run_closed_loop(StrategyKind strategy, Operation operation, int concurrency,
                           const Timing& timing, const CallerSetup& setup);

/// What one batch brought back: how many items it carried and how many of
/// them failed (the first failure's message in `first_error`).
struct BatchOutcome {
  std::uint64_t items = 0;
  std::uint64_t failed = 0;
  std::string first_error;
};

/// Performs one batch on the caller's thread.
using BatchFn = std::function<BatchOutcome()>;
/// Prepares caller `index` like CallerSetup, returning its batch function.
using BatchSetup = std::function<BatchFn(int index, std::string& error)>;

/// Runs `concurrency` threads, each sending one batch at a time; every item
/// counts as an operation with its batch's latency.
CellResult run_closed_loop_batches(StrategyKind strategy, Operation operation, int concurrency,
                                   const Timing& timing, const BatchSetup& setup);

class AsyncCaller;

/// Ends one asynchronous request; call it exactly once, from any thread.
class Completion {
 public:
  Completion(AsyncCaller* caller, Clock::time_point started)
      : caller_(caller), started_(started) {}
  /// Reports success (`error` null) or failure.
  void operator()(const std::string* error) const;

 private:
  AsyncCaller* caller_;
  Clock::time_point started_;
};

/// Starts one request for caller `index` and arranges for `done` to run once
/// when it ends. Must not block.
using AsyncRequestFn = std::function<void(int index, Completion done)>;

/// Runs `concurrency` threads, each keeping up to `window` requests in flight.
CellResult run_windowed(StrategyKind strategy, Operation operation, int concurrency,
                        std::size_t window, const Timing& timing, const AsyncRequestFn& start);

}  // namespace hsmactor::bench
