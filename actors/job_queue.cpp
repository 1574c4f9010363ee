#include "actors/job_queue.hpp"

#include <limits>
#include <thread>

#include "actors/internal/core_budget.hpp"

namespace hsmactor {
namespace {

using Clock = std::chrono::steady_clock;

std::size_t round_up_to_power_of_two(std::size_t n) {
  std::size_t power = 2;
  while (power < n) power <<= 1;
  return power;
}

// A pause that lets the sibling hyper-thread have the core while we spin.
void pause() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Waiting for another producer to finish filling a cell: after a few pauses,
// yield, since that producer may have been descheduled mid-push.
void relax(unsigned round) {
  if (round < 64) {
    pause();
  } else {
    std::this_thread::yield();
  }
}

}  // namespace

// ---- QueuedJob ----

QueuedJob::QueuedJob(Job request, Completion done, JobObserver* observer)
    : job(std::move(request)), accepted(Clock::now()), done_(std::move(done)), observer_(observer) {}

QueuedJob::~QueuedJob() {
  if (!answered_) {
    complete(Error::make(Condition::broken_promise,
                         "the session actor running the request is gone", to_string(job.op)));
  }
}

void QueuedJob::complete(Result<JobResult> result) {
  if (answered_) return;
  answered_ = true;
  if (observer_) observer_->finished(*this, result);
  if (done_) done_(std::move(result));
}

// ---- JobQueue ----

JobQueue::JobQueue(std::size_t limit, std::size_t max_consumers, std::chrono::microseconds spin,
                   std::shared_ptr<JobObserver> observer)
    : limit_(limit),
      spin_(spin),
      // Room for `limit` admitted jobs, as many again re-queued by a deadline
      // sweep while producers refill, and one returned job per consumer.
      ring_(new Cell[round_up_to_power_of_two(2 * limit + 2 * max_consumers + 1)]),
      mask_(round_up_to_power_of_two(2 * limit + 2 * max_consumers + 1) - 1),
      earliest_deadline_ns_(std::numeric_limits<std::int64_t>::max()),
      // Twice the sessions: a replaced session may still hold its slot briefly.
      slots_(new Slot[2 * max_consumers]),
      slot_count_(2 * max_consumers),
      observer_(std::move(observer)) {
  for (std::size_t i = 0; i <= mask_; ++i) ring_[i].sequence.store(i, std::memory_order_relaxed);
}

JobQueue::~JobQueue() {
  for (auto& job : take_all()) {
    job->complete(Error::make(Condition::shutting_down, "the token was closed",
                              to_string(job->job.op)));
  }
}

bool JobQueue::ring_push(QueuedJob* job) {
  std::size_t position = enqueue_pos_.load(std::memory_order_relaxed);
  for (;;) {
    Cell& cell = ring_[position & mask_];
    std::size_t sequence = cell.sequence.load(std::memory_order_acquire);
    auto difference = static_cast<std::intptr_t>(sequence) - static_cast<std::intptr_t>(position);
    if (difference == 0) {
      if (enqueue_pos_.compare_exchange_weak(position, position + 1, std::memory_order_relaxed)) {
        cell.job = job;
        // Sequentially consistent (not just release) for the close() race, see push().
        cell.sequence.store(position + 1, std::memory_order_seq_cst);
        return true;
      }
    } else if (difference < 0) {
      return false;  // full, or a consumer has not finished taking this cell yet
    } else {
      position = enqueue_pos_.load(std::memory_order_relaxed);
    }
  }
}

QueuedJob* JobQueue::ring_pop() {
  std::size_t position = dequeue_pos_.load(std::memory_order_relaxed);
  for (;;) {
    Cell& cell = ring_[position & mask_];
    std::size_t sequence = cell.sequence.load(std::memory_order_seq_cst);
    auto difference =
        static_cast<std::intptr_t>(sequence) - static_cast<std::intptr_t>(position + 1);
    if (difference == 0) {
      if (dequeue_pos_.compare_exchange_weak(position, position + 1, std::memory_order_relaxed)) {
        QueuedJob* job = cell.job;
        cell.job = nullptr;
        cell.sequence.store(position + mask_ + 1, std::memory_order_release);
        return job;
      }
    } else if (difference < 0) {
      return nullptr;  // empty, or a producer has not finished writing this cell
    } else {
      position = dequeue_pos_.load(std::memory_order_relaxed);
    }
  }
}

void JobQueue::note_deadline(std::int64_t deadline_ns) {
  if (deadline_ns == 0) return;  // no deadline
  std::int64_t earliest = earliest_deadline_ns_.load(std::memory_order_relaxed);
  while (deadline_ns < earliest &&
         !earliest_deadline_ns_.compare_exchange_weak(earliest, deadline_ns)) {
  }
}

PushOutcome JobQueue::push(QueuedJobPtr& job) {
  if (closed_.load()) return PushOutcome::closed;
  if (queued_.fetch_add(1) >= static_cast<std::int64_t>(limit_)) {
    queued_.fetch_sub(1);
    return PushOutcome::overloaded;
  }
  std::int64_t deadline = job->job.deadline_ns;
  QueuedJob* raw = job.release();
  // The ring has room for every admitted job; a failed push only means a
  // consumer is between claiming a cell and releasing it.
  for (unsigned round = 0; !ring_push(raw); ++round) relax(round);
  note_deadline(deadline);
  // queued_ went up (sequentially consistent) before the job landed, and the
  // cell was published sequentially consistent too, so either close() sees
  // this job or this load sees close().
  if (closed_.load()) {
    // close() may have emptied the ring before this job landed: answer it
    // (and anything else left) here rather than leave it behind.
    for (auto& left : take_all()) {
      left->complete(Error::make(Condition::shutting_down, "the token was closed",
                                 to_string(left->job.op)));
    }
    return PushOutcome::queued;
  }
  wake_one(/*unless_one_is_looking=*/true);
  return PushOutcome::queued;
}

QueuedJobPtr JobQueue::try_pop() {
  QueuedJob* job = ring_pop();
  if (job == nullptr) return nullptr;
  queued_.fetch_sub(1);
  return QueuedJobPtr(job);
}

void JobQueue::requeue(QueuedJobPtr job) {
  queued_.fetch_add(1);
  std::int64_t deadline = job->job.deadline_ns;
  QueuedJob* raw = job.release();
  for (unsigned round = 0; !ring_push(raw); ++round) relax(round);
  note_deadline(deadline);
  wake_one(/*unless_one_is_looking=*/true);
}

void JobQueue::wake(Slot& slot) {
  session_actor handle;
  {
    std::lock_guard<std::mutex> lock(slot.handle_mutex);
    handle = slot.handle;
  }
  if (handle) caf::anon_send(handle, pull_atom::value);
}

void JobQueue::wake_one(bool unless_one_is_looking) {
  // A spinning consumer will take the job within microseconds.
  if (spinners_.load() > 0) return;
  if (unless_one_is_looking) {
    // A running consumer pops (or sees queued_ in park()) before it parks:
    // queued_ went up before these loads, all sequentially consistent.
    for (std::size_t i = 0; i < slot_count_; ++i) {
      if (slots_[i].state.load() == kRunning) return;
    }
  }
  for (std::size_t i = 0; i < slot_count_; ++i) {
    int expected = kParked;
    if (slots_[i].state.compare_exchange_strong(expected, kWaking)) {
      wake(slots_[i]);
      return;
    }
  }
  // Every consumer is busy (or there are none yet): perhaps the pool can grow.
  if (starved_hook_ && queued_.load() > 0 && !grow_requested_.exchange(true)) starved_hook_();
}

std::optional<std::size_t> JobQueue::attach(const session_actor& consumer) {
  for (std::size_t i = 0; i < slot_count_; ++i) {
    Slot& slot = slots_[i];
    std::lock_guard<std::mutex> lock(slot.handle_mutex);
    if (slot.state.load() != kEmpty) continue;
    slot.handle = consumer;
    slot.state.store(kRunning);
    return i;
  }
  return std::nullopt;
}

void JobQueue::detach(std::size_t slot_index, const caf::actor_addr& consumer) {
  if (slot_index >= slot_count_) return;
  Slot& slot = slots_[slot_index];
  std::lock_guard<std::mutex> lock(slot.handle_mutex);
  if (slot.handle.address() != consumer) return;
  slot.state.store(kEmpty);
  slot.handle = session_actor();
}

void JobQueue::resume(std::size_t slot_index) {
  if (slot_index < slot_count_) slots_[slot_index].state.store(kRunning);
}

void JobQueue::begin_job(std::size_t slot_index) {
  internal::CoreBudget::enter();
  if (slot_index < slot_count_) slots_[slot_index].state.store(kBusy);
}

void JobQueue::end_job(std::size_t slot_index, bool still_occupied) {
  if (!still_occupied) finishing(slot_index);
  internal::CoreBudget::leave();
}

void JobQueue::finishing(std::size_t slot_index) {
  // Only from busy: a consumer that detached meanwhile keeps its slot empty.
  int expected = kBusy;
  if (slot_index < slot_count_) slots_[slot_index].state.compare_exchange_strong(expected, kRunning);
}

void JobQueue::pin(std::size_t slot_index) {
  if (slot_index < slot_count_) slots_[slot_index].state.store(kPinned);
}

bool JobQueue::park(std::size_t slot_index) {
  if (slot_index >= slot_count_) return true;
  Slot& slot = slots_[slot_index];
  slot.state.store(kParked);
  if (queued_.load() > 0 || closed_.load()) {
    int expected = kParked;
    // If a producer got here first, its `pull` is on the way: stay parked.
    if (slot.state.compare_exchange_strong(expected, kRunning)) return false;
  }
  return true;
}

QueuedJobPtr JobQueue::spin_pop() {
  int expected = 0;
  if (spin_.count() <= 0 || !spinners_.compare_exchange_strong(expected, 1)) return nullptr;
  if (!internal::CoreBudget::try_enter_spinning()) {
    spinners_.store(0);
    return nullptr;
  }
  auto until = Clock::now() + spin_;
  unsigned round = 0;
  QueuedJobPtr job;
  while (!closed_.load()) {
    job = try_pop();
    if (job) break;
    // Pauses first: a yield is a system call (about 1 µs on virtual machines)
    // and delays noticing the job. Later an occasional yield, because threads
    // CoreBudget does not count (the application's) may want this core, and
    // without it they would wait for the scheduler's tick (milliseconds).
    ++round;
    if (round < 512 || (round & 63) != 0) {
      pause();
    } else {
      std::this_thread::yield();
    }
    if ((round & 15) == 0 && Clock::now() >= until) break;
  }
  internal::CoreBudget::leave();
  spinners_.store(0);
  return job;
}

void JobQueue::close() {
  closed_.store(true);
  for (std::size_t i = 0; i < slot_count_; ++i) {
    int expected = kParked;
    if (slots_[i].state.compare_exchange_strong(expected, kWaking)) wake(slots_[i]);
  }
}

std::vector<QueuedJobPtr> JobQueue::take_all() {
  earliest_deadline_ns_.store(std::numeric_limits<std::int64_t>::max());
  std::vector<QueuedJobPtr> jobs;
  while (auto job = try_pop()) jobs.push_back(std::move(job));
  // A producer between claiming a cell and filling it stops the loop early;
  // jobs behind it lost their deadlines from the hint, so look again soon.
  if (queued_.load() > 0) earliest_deadline_ns_.store(0);
  return jobs;
}

std::size_t JobQueue::depth() const {
  std::int64_t queued = queued_.load();
  return queued > 0 ? static_cast<std::size_t>(queued) : 0;
}

std::size_t JobQueue::consumers() const {
  std::size_t count = 0;
  for (std::size_t i = 0; i < slot_count_; ++i) count += slots_[i].state.load() != kEmpty;
  return count;
}

std::size_t JobQueue::busy_consumers() const {
  std::size_t count = 0;
  for (std::size_t i = 0; i < slot_count_; ++i) {
    int state = slots_[i].state.load();
    count += state == kBusy || state == kPinned;
  }
  return count;
}

}  // namespace hsmactor
