#include "tools/bench/driver.hpp"

#include <time.h>

#include <algorithm>
#include <memory>
#include <thread>

namespace hsmactor::bench {
namespace {

// Holds every caller thread until all are prepared, then hands them the window,
// so thread start-up and session opening never fall inside a measurement.
class StartGate {
 public:
  explicit StartGate(int callers) : callers_(callers) {}

  /// Blocks a prepared caller until the window is published.
  MeasureWindow arrive() {
    std::unique_lock<std::mutex> lock(mutex_);
    ++arrived_;
    changed_.notify_all();
    changed_.wait(lock, [this] { return published_; });
    return window_;
  }

  /// Waits for every caller, then starts the clock.
  MeasureWindow open_when_all_arrived(const Timing& timing) {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return arrived_ == callers_; });
    window_ = MeasureWindow::starting_now(timing);
    published_ = true;
    changed_.notify_all();
    return window_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int callers_;
  int arrived_ = 0;
  bool published_ = false;
  MeasureWindow window_;
};

}  // namespace

MeasureWindow MeasureWindow::starting_now(const Timing& timing) {
  MeasureWindow window;
  window.start = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(timing.warmup));
  window.end = window.start + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(timing.seconds));
  return window;
}

namespace {

std::chrono::nanoseconds process_cpu_now() {
  timespec now{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec);
}

}  // namespace

std::chrono::nanoseconds process_cpu_during(const MeasureWindow& window) {
  std::this_thread::sleep_until(window.start);
  auto before = process_cpu_now();
  std::this_thread::sleep_until(window.end);
  return process_cpu_now() - before;
}

void set_cpu_per_op(CellResult& cell, std::chrono::nanoseconds cpu) {
  if (cell.operations == 0) return;
  cell.cpu_us_per_op = std::chrono::duration<double, std::micro>(cpu).count() / cell.operations;
}

void CallerTally::complete(const MeasureWindow& window, Clock::time_point started,
                           Clock::time_point done, const std::string* error) {
  if (done > last_done) last_done = done;
  if (done > window.end) {
    ++late;
    if (first_late_error.empty() && error != nullptr) first_late_error = *error;
    return;
  }
  if (!window.counts(done)) return;
  if (error != nullptr) {
    if (errors++ == 0) first_error = *error;
    return;
  }
  ++operations;
  latency.record(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(done - started).count()));
}

void CallerTally::complete_batch(const MeasureWindow& window, Clock::time_point started,
                                 Clock::time_point done, std::uint64_t items,
                                 std::uint64_t failed, const std::string& error) {
  if (done > last_done) last_done = done;
  failed = std::min(failed, items);
  if (done > window.end) {
    late += items;
    if (first_late_error.empty() && failed > 0) first_late_error = error;
    return;
  }
  if (!window.counts(done)) return;
  if (failed > 0 && errors == 0) first_error = error;
  errors += failed;
  operations += items - failed;
  auto nanoseconds = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(done - started).count());
  for (std::uint64_t item = failed; item < items; ++item) latency.record(nanoseconds);
}

CellResult fold_cell(StrategyKind strategy, Operation operation, int concurrency,
                     const MeasureWindow& window, std::vector<CallerTally>& tallies) {
  CellResult cell;
  cell.strategy = strategy;
  cell.operation = operation;
  cell.concurrency = concurrency;
  cell.seconds = window.seconds();
  LatencyRecorder all;
  Clock::time_point last_done = window.end;
  for (CallerTally& tally : tallies) {
    cell.operations += tally.operations;
    cell.errors += tally.errors;
    cell.late += tally.late;
    if (cell.note.empty() && !tally.first_error.empty()) cell.note = tally.first_error;
    if (cell.late_error.empty()) cell.late_error = tally.first_late_error;
    if (tally.last_done > last_done) last_done = tally.last_done;
    all.merge(std::move(tally.latency));
  }
  cell.drain_seconds = std::chrono::duration<double>(last_done - window.end).count();
  cell.latency = all.summary();
  if (cell.operations == 0) {
    cell.status = CellStatus::failed;
    if (cell.note.empty()) cell.note = "no request completed inside the window";
  }
  return cell;
}

namespace {

/// One prepared caller's measuring loop: runs on its thread once the window is
/// published, recording into the caller's tally.
using CallerLoop = std::function<void(const MeasureWindow& window, CallerTally& tally)>;
/// Prepares caller `index` on its own thread; an empty loop with `error` set
/// when it cannot.
using CallerPrepare = std::function<CallerLoop(int index, std::string& error)>;

/// Runs `concurrency` threads through the start gate, one loop each.
CellResult run_callers(StrategyKind strategy, Operation operation, int concurrency,
                       const Timing& timing, const CallerPrepare& prepare) {
  std::vector<CallerTally> tallies(concurrency);
  std::vector<std::string> setup_errors(concurrency);
  StartGate gate(concurrency);
  std::vector<std::thread> threads;
  threads.reserve(concurrency);
  for (int index = 0; index < concurrency; ++index) {
    threads.emplace_back([&, index] {
      CallerTally& tally = tallies[index];
      tally.latency.reserve(kReservedSamples);
      CallerLoop loop = prepare(index, setup_errors[index]);
      MeasureWindow window = gate.arrive();
      if (loop) loop(window, tally);
    });
  }
  MeasureWindow window = gate.open_when_all_arrived(timing);
  auto cpu = process_cpu_during(window);
  for (std::thread& thread : threads) thread.join();
  CellResult cell = fold_cell(strategy, operation, concurrency, window, tallies);
  set_cpu_per_op(cell, cpu);
  for (const std::string& error : setup_errors) {
    if (!error.empty()) {
      cell.status = CellStatus::failed;
      cell.note = "caller set-up failed: " + error;
      break;
    }
  }
  return cell;
}

}  // namespace

CellResult run_closed_loop(StrategyKind strategy, Operation operation, int concurrency,
                           const Timing& timing, const CallerSetup& setup) {
  return run_callers(strategy, operation, concurrency, timing,
                     [&setup](int index, std::string& setup_error) -> CallerLoop {
                       RequestFn request = setup(index, setup_error);
                       if (!request) return {};
                       return [request = std::move(request)](const MeasureWindow& window,
                                                             CallerTally& tally) {
                         std::string error;
                         for (;;) {
                           Clock::time_point started = Clock::now();
                           if (!window.open(started)) break;
                           bool ok = request(error);
                           tally.complete(window, started, Clock::now(), ok ? nullptr : &error);
                         }
                       };
                     });
}

CellResult run_closed_loop_batches(StrategyKind strategy, Operation operation, int concurrency,
                                   const Timing& timing, const BatchSetup& setup) {
  return run_callers(strategy, operation, concurrency, timing,
                     [&setup](int index, std::string& setup_error) -> CallerLoop {
                       BatchFn batch = setup(index, setup_error);
                       if (!batch) return {};
                       return [batch = std::move(batch)](const MeasureWindow& window,
                                                         CallerTally& tally) {
                         for (;;) {
                           Clock::time_point started = Clock::now();
                           if (!window.open(started)) break;
                           BatchOutcome outcome = batch();
                           tally.complete_batch(window, started, Clock::now(), outcome.items,
                                                outcome.failed, outcome.first_error);
                         }
                       };
                     });
}

/// One caller of run_windowed: its window of requests in flight and its tally.
class AsyncCaller {
 public:
  explicit AsyncCaller(std::size_t window_size) : window_size_(window_size) {
    tally_.latency.reserve(kReservedSamples);
  }

  void set_window(const MeasureWindow& window) { window_ = window; }

  /// Waits for room in the window; returns false once the measurement is over.
  bool acquire() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return in_flight_ < window_size_; });
    if (!window_.open(Clock::now())) return false;
    ++in_flight_;
    return true;
  }

  /// Records a finished request and frees its place in the window.
  void finish(Clock::time_point started, const std::string* error) {
    Clock::time_point done = Clock::now();
    std::lock_guard<std::mutex> lock(mutex_);
    tally_.complete(window_, started, done, error);
    --in_flight_;
    // Notified under the lock: once the caller sees zero in flight it may
    // destroy this object, and it cannot see that before the lock is released.
    changed_.notify_all();
  }

  /// Waits until every request of this caller has finished.
  void drain() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return in_flight_ == 0; });
  }

  CallerTally& tally() { return tally_; }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::size_t window_size_;
  std::size_t in_flight_ = 0;
  MeasureWindow window_;
  CallerTally tally_;
};

void Completion::operator()(const std::string* error) const { caller_->finish(started_, error); }

CellResult run_windowed(StrategyKind strategy, Operation operation, int concurrency,
                        std::size_t window_size, const Timing& timing, const AsyncRequestFn& start) {
  std::vector<std::unique_ptr<AsyncCaller>> callers;
  callers.reserve(concurrency);
  for (int index = 0; index < concurrency; ++index) {
    callers.push_back(std::make_unique<AsyncCaller>(window_size));
  }
  StartGate gate(concurrency);
  std::vector<std::thread> threads;
  threads.reserve(concurrency);
  for (int index = 0; index < concurrency; ++index) {
    threads.emplace_back([&, index] {
      AsyncCaller& caller = *callers[index];
      caller.set_window(gate.arrive());
      while (caller.acquire()) start(index, Completion(&caller, Clock::now()));
      caller.drain();
    });
  }
  MeasureWindow window = gate.open_when_all_arrived(timing);
  auto cpu = process_cpu_during(window);
  for (std::thread& thread : threads) thread.join();
  std::vector<CallerTally> tallies;
  tallies.reserve(concurrency);
  for (auto& caller : callers) tallies.push_back(std::move(caller->tally()));
  CellResult cell = fold_cell(strategy, operation, concurrency, window, tallies);
  set_cpu_per_op(cell, cpu);
  return cell;
}

}  // namespace hsmactor::bench
