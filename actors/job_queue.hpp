// JobQueue: the lock-free path from callers to the session actors of one pool.
//
// Callers push QueuedJobs into a bounded multi-producer multi-consumer ring
// (Dmitry Vyukov's sequence-numbered array queue); the pool's session actors
// pull from it. A request therefore reaches the one actor that owns a session
// without passing through any other actor and without a mutex, and the answer
// goes straight from that actor's thread to the caller's promise or callback.
//
// Consumers (session actors) have a slot each, in one of these states:
//   empty    no session actor in the slot
//   running  pulling jobs; it looks at the ring again before it parks
//   busy     running one job
//   parked   back in its CAF mailbox; a producer must wake it
//   waking   a producer claimed it and sent it a `pull` message
//   pinned   serving a multi-part stream; never woken for queued jobs
// A consumer that finds the ring empty may spin briefly (one consumer at a
// time), then parks. Both sides write then read with sequential consistency
// (push then look for a parked consumer; park then look at the depth), so a
// job is never left in the ring with every consumer asleep. A consumer that
// goes away while a wake-up is addressed to it (waking), or while jobs wait,
// passes the wake-up on to another parked consumer.
//
// Deadlines: the pool's sweep moves the ring's jobs, in order, into a side
// queue (guarded by a mutex) and answers the expired ones there. Consumers
// read the side queue before the ring (its jobs are older), and take its
// mutex only while it holds jobs, so the hot path stays lock-free. Jobs keep
// their place in the limit wherever they wait; a job a consumer gives back
// (requeue) goes to the front of the side queue, or is answered shutting_down
// once the queue is closed.
//
// Usage (producer):
//   queue->admit(queue->make_job(std::move(request), std::move(done)));
//   // done gets the answer exactly once: from a session, or at once with
//   // overloaded or shutting_down
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

#include "actors/internal/future_state.hpp"
#include "actors/internal/job_costs.hpp"
#include "actors/protocol.hpp"

namespace hsmactor {

class QueuedJob;

/// Sees every queued job's outcome just before its caller does (metrics, trace).
class JobObserver {
 public:
  virtual ~JobObserver() = default;
  virtual void finished(const QueuedJob& job, const Result<JobResult>& result) noexcept = 0;
};

/// One request in a JobQueue; it is answered exactly once, by complete() or,
/// if it is destroyed unanswered (its session actor died), with broken_promise.
class QueuedJob {
 public:
  using Completion = internal::Callback<JobResult>;

  QueuedJob(Job job, Completion done, JobObserver* observer = nullptr,
            internal::RequestStage* stage = nullptr);
  ~QueuedJob();
  QueuedJob(const QueuedJob&) = delete;
  QueuedJob& operator=(const QueuedJob&) = delete;

  /// Answers the job; later calls do nothing.
  void complete(Result<JobResult> result);
  /// A session calls it just before the job's first PKCS#11 call: false if
  /// the caller withdrew the job first (it is then answered withdrawn here
  /// and must not run).
  bool start();

  Job job;
  /// When the job was accepted, for latency figures.
  const std::chrono::steady_clock::time_point accepted;

 private:
  Completion done_;
  JobObserver* observer_;
  // Lives in the promise `done_` holds, so as long as this job.
  internal::RequestStage* stage_;
  bool answered_ = false;
};

using QueuedJobPtr = std::unique_ptr<QueuedJob>;

enum class PushOutcome : std::uint8_t {
  queued,      ///< a session actor will run it
  overloaded,  ///< the queue holds `limit` jobs already
  closed,      ///< the pool is closing
};

class JobQueue {
 public:
  /// The largest `limit` a queue accepts (larger values are clamped): a ring
  /// of this many cells takes 16 MiB. Options beyond it are invalid_argument.
  static constexpr std::size_t kMaxLimit = std::size_t{1} << 20;
  /// The most consumers (sessions) one queue serves; larger values are clamped.
  static constexpr std::size_t kMaxConsumers = 4096;

  /// A queue of at most `limit` waiting jobs, served by at most
  /// `max_consumers` session actors (both clamped to the maxima above); an
  /// idle consumer spins up to `spin` before it parks. Its consumers group
  /// jobs cheaper than `hold_budget` (see CoalescingLimits; 0: never).
  JobQueue(std::size_t limit, std::size_t max_consumers,
           std::chrono::microseconds spin = std::chrono::microseconds(50),
           std::shared_ptr<JobObserver> observer = nullptr,
           std::chrono::nanoseconds hold_budget = internal::CoalescingLimits::kHoldBudget);

  /// How long a consumer may hold answers for the rest of their group.
  std::chrono::nanoseconds hold_budget() const { return hold_budget_; }
  /// Answers whatever is still queued with shutting_down.
  ~JobQueue();
  JobQueue(const JobQueue&) = delete;
  JobQueue& operator=(const JobQueue&) = delete;

  // ---- producers (any thread) ----

  /// Returns a job for this queue (its outcome goes to the queue's observer).
  /// `stage` (from the caller's promise, optional) lets the caller withdraw it.
  QueuedJobPtr make_job(Job job, QueuedJob::Completion done,
                        internal::RequestStage* stage = nullptr) const {
    return std::make_unique<QueuedJob>(std::move(job), std::move(done), observer_.get(), stage);
  }

  /// Queues `job` (taking it) and wakes a parked consumer if none is awake to
  /// see it; on overloaded or closed, `job` stays with the caller, unanswered.
  PushOutcome push(QueuedJobPtr& job);

  /// The one admission of every request, whoever sends it: queues `job`, or
  /// answers it at once with overloaded (the queue is full) or shutting_down
  /// (the queue is closed). Returns what happened.
  PushOutcome admit(QueuedJobPtr job);

  /// Called (on the producer's thread) when jobs wait and no consumer is idle,
  /// at most once until rearm_starved(); set before the queue is shared.
  void on_starved(std::function<void()> hook) { starved_hook_ = std::move(hook); }
  /// Re-arms the starved hook (the pool calls it while it can still grow).
  void rearm_starved() { grow_requested_.store(false); }

  // ---- consumers (session actors) ----

  /// Returns the oldest waiting job, or nullptr when none is visible. Jobs
  /// found expired in the side queue are answered deadline_exceeded on the way.
  QueuedJobPtr try_pop();
  /// Puts back, first in line, a job a consumer could not run (its session
  /// could not open); never refused, because at most one job per consumer
  /// comes back. On a closed queue the job is answered shutting_down instead.
  void requeue(QueuedJobPtr job);
  /// Waits a little before a consumer looks again after park() refused
  /// although try_pop() found nothing: a job is counted but not visible yet
  /// (its producer is between claiming a cell and filling it, or a sweep is
  /// moving it). `round` counts the consecutive waits: pauses, then yields
  /// (the producer may need this core), then short sleeps.
  static void back_off(unsigned round);

  /// Gives `consumer` a slot (running); nullopt when every slot is taken.
  std::optional<std::size_t> attach(const session_actor& consumer);
  /// Empties the slot if `consumer` still holds it (the actor is gone or
  /// going); a wake-up addressed to it, or waiting jobs, go to another
  /// parked consumer.
  void detach(std::size_t slot, const caf::actor_addr& consumer);
  /// Marks the slot running after a `pull` arrived or a stream ended.
  void resume(std::size_t slot);
  /// Marks the slot busy with a job (and counts the core it uses), and back
  /// to running unless `still_occupied` (a heal in progress keeps it busy).
  void begin_job(std::size_t slot);
  void end_job(std::size_t slot, bool still_occupied = false);
  /// Marks a busy slot running just before its job is answered: the caller
  /// reacting to the answer with its next request then sees a consumer that
  /// is about to look for work and wakes nobody (a wake-up costs a system call
  /// on each side, and a thread switch, for a job this consumer takes anyway).
  void finishing(std::size_t slot);
  /// Marks the slot pinned (a stream) so no producer wakes it.
  void pin(std::size_t slot);
  /// Parks the slot; returns false (and leaves it running) when jobs arrived
  /// meanwhile or the queue closed, so the consumer must keep pulling.
  bool park(std::size_t slot);
  /// Spins for up to the spin budget for a job; at most one consumer spins,
  /// and only while a core is free. With every core busy it yields the core
  /// a few times instead, looking for a job after each.
  QueuedJobPtr spin_pop();
  /// Wakes one parked consumer for jobs that are waiting (a consumer asking
  /// for help with a backlog: other running consumers do not count).
  void wake_idle() { wake_one(/*unless_one_is_looking=*/false); }

  // ---- the pool ----

  /// Refuses further pushes and wakes every parked consumer so it sees that.
  void close();
  bool closed() const { return closed_.load(); }
  /// Removes and returns every queued job (for shutdown).
  std::vector<QueuedJobPtr> take_all();
  /// Answers deadline_exceeded every waiting job whose deadline passed, where
  /// it waits; the others keep their order and their place in the limit.
  /// Returns how many it answered. For the pool's periodic sweep; cheap when
  /// the deadline hint says nothing can have expired.
  std::size_t expire_overdue();
  /// Returns the earliest deadline (steady_clock ns) any queued job may have;
  /// a hint: INT64_MAX when none was recorded since the last take_all() or
  /// expire_overdue() (which records the deadlines of the jobs it keeps).
  std::int64_t earliest_deadline_ns() const { return earliest_deadline_ns_.load(); }

  /// Jobs waiting (admitted, not yet taken by a consumer).
  std::size_t depth() const;
  std::size_t limit() const { return limit_; }
  /// Consumers attached, and those of them busy with a job or a stream.
  std::size_t consumers() const;
  std::size_t busy_consumers() const;

 private:
  // A test stands in for a producer stalled between claiming a cell and
  // filling it, which no public call can hold still.
  friend class JobQueueTestPeer;

  enum SlotState : int { kEmpty, kRunning, kBusy, kParked, kWaking, kPinned };
  static constexpr int kYieldsBeforePark = 4;

  struct Cell {
    std::atomic<std::size_t> sequence{0};
    QueuedJob* job = nullptr;
  };

  struct alignas(64) Slot {
    std::atomic<int> state{kEmpty};
    std::mutex handle_mutex;  // per slot: guards `handle` against attach/detach
    session_actor handle;
  };

  bool ring_push(QueuedJob* job);
  QueuedJob* ring_pop();
  /// Returns the side queue's oldest job (nullptr if none); the caller holds
  /// side_mutex_.
  QueuedJobPtr take_side_front();
  /// After the ring was emptied under side_mutex_: jobs a stalled producer
  /// kept out of sight lost their deadline from the hint, so look again soon.
  void distrust_hint_if_ring_not_empty();
  void note_deadline(std::int64_t deadline_ns);
  /// Wakes one parked consumer, unless one spins (or, if
  /// `unless_one_is_looking`, is running between jobs and will look anyway).
  void wake_one(bool unless_one_is_looking);
  /// Sends `pull` to a slot this thread moved to waking; returns false when
  /// the slot has no consumer to send it to (so the caller tries another).
  bool wake(Slot& slot);

  const std::size_t limit_;
  const std::chrono::microseconds spin_;
  const std::chrono::nanoseconds hold_budget_;
  std::unique_ptr<Cell[]> ring_;
  const std::size_t mask_;
  alignas(64) std::atomic<std::size_t> enqueue_pos_{0};
  alignas(64) std::atomic<std::size_t> dequeue_pos_{0};
  alignas(64) std::atomic<std::int64_t> queued_{0};
  std::atomic<int> spinners_{0};
  std::atomic<bool> closed_{false};
  std::atomic<bool> grow_requested_{false};
  std::atomic<std::int64_t> earliest_deadline_ns_;
  // Jobs taken out of the ring by a sweep, and jobs given back, oldest first.
  // side_count_ mirrors side_.size() so consumers lock only when it is not 0.
  alignas(64) std::atomic<std::size_t> side_count_{0};
  std::mutex side_mutex_;
  std::deque<QueuedJobPtr> side_;
  std::unique_ptr<Slot[]> slots_;
  const std::size_t slot_count_;
  std::function<void()> starved_hook_;
  // Jobs keep a raw pointer to it: they live only in the ring or with a
  // consumer that holds this queue, so the queue outlives them all.
  std::shared_ptr<JobObserver> observer_;
};

}  // namespace hsmactor
