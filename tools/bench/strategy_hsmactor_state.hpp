// What the hsmactor strategies share (internal to //tools/bench:strategy_hsmactor):
// the open Hsm and Token with the benchmark's keys, the per-cell probes, and the
// factories of the strategies that live in their own files (Asio's headers and
// the completion queue's loop stay out of the others' compile).
//
// Usage (inside the strategy files):
//   Key key = state.key_for(workload);
//   HsmactorBench::State::StallWatch watch(state.token, timing);
//   CellResult cell = ...;
//   watch.finish(cell);
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "hsmactor.hpp"
#include "tools/bench/strategy.hpp"
#include "tools/bench/strategy_hsmactor.hpp"

namespace hsmactor::bench {

/// Reports `result` to `done`.
template <class T>
void complete(const Completion& done, const Result<T>& result) {
  if (result) {
    done(nullptr);
    return;
  }
  std::string error = result.error().message();
  done(&error);
}

struct HsmactorBench::State {
  /// Collects the pool's accept-to-reply durations while a cell runs (after
  /// its warm-up), through the token's trace sink.
  class PoolProbe {
   public:
    PoolProbe(const Token& token, bool enabled, const Timing& timing) : token_(token) {
      if (!enabled) return;
      active_ = true;
      recorder_.reserve(kReservedSamples);
      auto from = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(timing.warmup));
      token_.set_trace_sink([this, from](const TraceEvent& event) {
        if (event.what != "request" || Clock::now() < from) return;
        // Runs on CAF workers; the lock is held for one push_back.
        std::lock_guard<std::mutex> lock(mutex_);
        recorder_.record(event.duration_us * 1000);
      });
    }
    ~PoolProbe() {
      if (active_) token_.set_trace_sink(nullptr);
    }
    /// Stops collecting and stores the summary in `cell`.
    void finish(CellResult& cell) {
      if (!active_) return;
      token_.set_trace_sink(nullptr);
      active_ = false;
      std::lock_guard<std::mutex> lock(mutex_);
      cell.pool_latency = recorder_.summary();
    }

   private:
    const Token& token_;
    bool active_ = false;
    std::mutex mutex_;
    LatencyRecorder recorder_;
  };

  /// Snapshots the pool's metrics if a cell is still draining well after its
  /// window (its requests should all be answered within milliseconds), so a
  /// stall is reported with the pool state that caused it.
  class StallWatch {
   public:
    StallWatch(const Token& token, const Timing& timing) : token_(token) {
      auto due = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(timing.warmup + timing.seconds +
                                                                  kStallSeconds + 0.5));
      thread_ = std::thread([this, due] {
        std::unique_lock<std::mutex> lock(mutex_);
        if (finished_changed_.wait_until(lock, due, [this] { return finished_; })) return;
        lock.unlock();
        std::string detail = describe(token_.metrics());
        lock.lock();
        detail_ = std::move(detail);
      });
    }
    ~StallWatch() { stop(); }

    /// Stops watching and stores a snapshot taken during a stall in `cell`.
    void finish(CellResult& cell) {
      stop();
      cell.stall_detail = detail_;
    }

   private:
    static std::string describe(const Result<PoolMetrics>& metrics) {
      if (!metrics) return "metrics unavailable: " + metrics.error().message();
      std::string text = "sessions open " + std::to_string(metrics->sessions_open) + ", busy " +
                         std::to_string(metrics->sessions_busy) + ", queued " +
                         std::to_string(metrics->queue_depth) + ", requests " +
                         std::to_string(metrics->requests) + ", failed " +
                         std::to_string(metrics->failed) + ", restarts " +
                         std::to_string(metrics->session_restarts);
      for (const auto& [code, count] : metrics->errors_by_code) {
        text += ", " + code + " x" + std::to_string(count);
      }
      return text;
    }

    void stop() {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        finished_ = true;
      }
      finished_changed_.notify_all();
      if (thread_.joinable()) thread_.join();
    }

    const Token& token_;
    std::mutex mutex_;
    std::condition_variable finished_changed_;
    bool finished_ = false;
    std::string detail_;
    std::thread thread_;
  };

  bool breakdown = false;
  const BenchToken* bench = nullptr;
  std::unique_ptr<Hsm> hsm;
  Token token;
  std::map<std::string, Key> keys;

  ~State() {
    // The pool must stop before the actor system it runs on.
    token.close();
    token = Token();
    hsm.reset();
  }

  /// Returns the (resolved) key of `workload`, or an empty Key for keyless ones.
  Key key_for(const Workload& workload) const {
    auto found = keys.find(workload.key_label);
    return found == keys.end() ? Key() : found->second;
  }
};

/// Returns the hsm-asio strategy: `threads` io_context threads keeping the
/// cell's concurrency in requests in flight through asio_support::async_*.
std::unique_ptr<Strategy> make_asio_strategy(HsmactorBench::State& state, std::size_t threads);

/// Returns the hsm-cq strategy: `threads` loop threads, each draining its own
/// CompletionQueue, keeping the cell's concurrency in requests in flight.
std::unique_ptr<Strategy> make_completion_queue_strategy(HsmactorBench::State& state,
                                                         std::size_t threads);

/// Returns the hsm-batch strategy: a thread per caller, each with one batch of
/// `batch_size` items in flight.
std::unique_ptr<Strategy> make_batch_strategy(HsmactorBench::State& state,
                                              std::size_t batch_size);

}  // namespace hsmactor::bench
