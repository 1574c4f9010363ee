// PoolRecorder: counts what a token pool answers, from many threads at once.
//
// Session actors answer jobs on their own threads, so the counts are kept in
// shards, each with its own (practically uncontended) mutex, picked by thread;
// a snapshot adds the shards up. Also forwards request-level events to the
// trace sink when one is installed.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "actors/executor.hpp"
#include "actors/job_queue.hpp"
#include "actors/operations.hpp"
#include "pkcs11/call_observer.hpp"
#include "pool/latency_histogram.hpp"
#include "pool/metrics.hpp"

namespace hsmactor {

/// Where trace events go; the sink can be swapped while the pool runs. As a
/// CallObserver it turns each PKCS#11 call into a "call" event.
///
/// Events are queued (session threads never wait for a sink) and delivered in
/// order, one at a time, on the token's executor, never under a lock of ours:
/// a sink may block, install another sink or call the token. At most
/// kMaxPending events wait; beyond that new ones are counted and reported in
/// one "trace_dropped" event (result: how many) before the next delivered one.
/// The hub holds the sink (a copy of the std::function) until it is replaced.
/// Once set() returns, the sink it replaced is not called any more: set()
/// waits for a call of it in progress on another thread (a sink replacing
/// itself from inside is not waited for). The token calls set(nullptr) when it
/// closes, so no sink runs after close() or the last Token copy is gone.
class TraceHub final : public pkcs11::CallObserver,
                       public std::enable_shared_from_this<TraceHub> {
 public:
  static constexpr std::size_t kMaxPending = 65536;

  explicit TraceHub(std::shared_ptr<Executor> executor = nullptr)
      : executor_(std::move(executor)) {}

  void on_call(const pkcs11::CallRecord& record) noexcept override;

  /// Installs `sink` (nullptr removes it); events still queued go to the new one.
  void set(std::function<void(const TraceEvent&)> sink);
  /// Removes the sink for good (later set() calls install nothing), waiting
  /// for a call of it in progress on another thread, as set() does.
  void close();
  /// close() without the wait: a call in progress may still finish; for a
  /// thread that must not wait, e.g. where the last Token copy goes.
  void clear() noexcept;
  /// Queues `event` for the sink, if one is installed.
  void emit(const TraceEvent& event) noexcept;
  /// Lock-free, for the request path.
  bool active() const { return active_.load(std::memory_order_relaxed); }

 private:
  using Sink = std::function<void(const TraceEvent&)>;
  /// Runs on the executor: hands the queued events to the sink, in order.
  void deliver();
  void replace(std::function<void(const TraceEvent&)> sink, bool closing, bool wait);

  const std::shared_ptr<Executor> executor_;
  std::mutex mutex_;  // guards the fields below; never held while a sink runs
  std::condition_variable call_done_;
  std::shared_ptr<const Sink> sink_;
  std::deque<TraceEvent> pending_;
  bool delivering_ = false;
  /// A sink is being called, on `calling_thread_`.
  bool calling_ = false;
  std::thread::id calling_thread_;
  std::uint64_t dropped_ = 0;
  bool closed_ = false;
  std::atomic<bool> active_{false};
};

class PoolRecorder final : public JobObserver {
 public:
  explicit PoolRecorder(std::shared_ptr<TraceHub> trace) : trace_(std::move(trace)) {}

  /// Counts one queued job's outcome (called on the answering thread).
  void finished(const QueuedJob& job, const Result<JobResult>& result) noexcept override;
  /// Counts a request that is not a queued job (opening a stream).
  void record(const char* operation, std::chrono::steady_clock::time_point accepted,
              const Error* error, std::uint32_t attempts);
  /// Counts a session replaced after it was lost.
  void session_restarted() { session_restarts_.fetch_add(1); }
  /// Sends a pool event to the trace sink, if any.
  void event(const char* what, const std::string& operation, const std::string& result);

  /// Returns the counts so far (the session and queue fields are the caller's).
  PoolMetrics snapshot() const;

 private:
  // One slot per Op (sized by the operation table), one for streams and one
  // for an Op outside the table.
  static constexpr std::size_t kStreamSlot = kOperationCount;
  static constexpr std::size_t kUnknownSlot = kOperationCount + 1;
  static constexpr std::size_t kSlots = kOperationCount + 2;
  static constexpr std::size_t kShards = 8;

  struct OperationShard {
    std::uint64_t requests = 0;
    std::uint64_t errors = 0;
    std::unique_ptr<LatencyHistogram> latency;  // allocated on first use
  };

  struct alignas(64) Shard {
    mutable std::mutex mutex;
    std::uint64_t requests = 0;
    std::uint64_t succeeded = 0;
    std::uint64_t failed = 0;
    std::uint64_t retries = 0;
    std::uint64_t overloaded = 0;
    std::uint64_t deadline_exceeded = 0;
    std::uint64_t session_restarts = 0;
    std::map<std::string, std::uint64_t> errors_by_code;
    std::array<OperationShard, kSlots> operations;
    std::array<const char*, kSlots> names{};
  };

  void count(std::size_t index, const char* operation, std::uint64_t micros, const Error* error,
             std::uint32_t attempts);
  static std::size_t shard_of_this_thread();

  std::shared_ptr<TraceHub> trace_;
  std::array<Shard, kShards> shards_;
  std::atomic<std::uint64_t> session_restarts_{0};
};

/// Returns how an error is counted: its CKR_* name, its condition, or both
/// ("stale_session_retry_failed/CKR_SESSION_HANDLE_INVALID").
std::string error_label(const Error& error);

}  // namespace hsmactor
