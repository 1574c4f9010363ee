#include "actors/job_queue.hpp"

#include <algorithm>
#include <limits>
#include <thread>

#include "actors/internal/cpu_pause.hpp"

namespace hsmactor {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::int64_t kNoDeadline = std::numeric_limits<std::int64_t>::max();

// Only for n up to JobQueue::kMaxLimit: beyond 2^63 the loop would never end.
std::size_t round_up_to_power_of_two(std::size_t n) {
  std::size_t power = 2;
  while (power < n) power <<= 1;
  return power;
}

// Ring cells: every admitted job has a cell (given-back jobs wait on the side,
// so they need none). A producer only claims a cell after the limit admitted
// it, and a consumer frees its cell before the count drops, so `limit` cells
// are always enough.
std::size_t ring_size_for(std::size_t limit) {
  static_assert(JobQueue::kMaxLimit <= (std::size_t{1} << 40), "keep the ring allocatable");
  return round_up_to_power_of_two(std::min(limit, JobQueue::kMaxLimit));
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

bool expired_at(const QueuedJob& job, std::int64_t now) {
  return job.job.deadline_ns != 0 && job.job.deadline_ns <= now;
}

void answer_expired(QueuedJob& job) {
  job.complete(Error::make(Condition::deadline_exceeded,
                           "the deadline passed while waiting for a session",
                           to_string(job.job.op)));
}

void answer_closed(QueuedJob& job) {
  job.complete(
      Error::make(Condition::shutting_down, "the token was closed", to_string(job.job.op)));
}

// Waiting for another producer to finish filling a cell: after a few pauses,
// yield, since that producer may have been descheduled mid-push.
void relax(unsigned round) {
  if (round < 64) {
    internal::cpu_pause();
  } else {
    std::this_thread::yield();
  }
}

}  // namespace

// ---- QueuedJob ----

QueuedJob::QueuedJob(Job request, Completion done, JobObserver* observer,
                     internal::RequestStage* stage)
    : job(std::move(request)),
      accepted(Clock::now()),
      done_(std::move(done)),
      observer_(observer),
      stage_(stage) {}

bool QueuedJob::start() {
  if (stage_ == nullptr || stage_->try_start()) return true;
  complete(Error::make(Condition::withdrawn,
                       "the caller withdrew the request before it started", to_string(job.op)));
  return false;
}

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
                   std::shared_ptr<JobObserver> observer, std::chrono::nanoseconds hold_budget)
    : limit_(std::min(limit, kMaxLimit)),
      spin_(spin),
      hold_budget_(std::max(hold_budget, std::chrono::nanoseconds(0))),
      ring_(new Cell[ring_size_for(limit)]),
      mask_(ring_size_for(limit) - 1),
      earliest_deadline_ns_(kNoDeadline),
      // Twice the sessions: a replaced session may still hold its slot briefly.
      slots_(new Slot[2 * std::clamp<std::size_t>(max_consumers, 1, kMaxConsumers)]),
      slot_count_(2 * std::clamp<std::size_t>(max_consumers, 1, kMaxConsumers)),
      observer_(std::move(observer)) {
  for (std::size_t i = 0; i <= mask_; ++i) ring_[i].sequence.store(i, std::memory_order_relaxed);
}

JobQueue::~JobQueue() {
  for (auto& job : take_all()) answer_closed(*job);
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
  // The ring has a cell for every admitted job (see ring_size_for), so this
  // retries only as a guard.
  for (unsigned round = 0; !ring_push(raw); ++round) relax(round);
  note_deadline(deadline);
  // queued_ went up (sequentially consistent) before the job landed, and the
  // cell was published sequentially consistent too, so either close() sees
  // this job or this load sees close().
  if (closed_.load()) {
    // close() may have emptied the ring before this job landed: answer it
    // (and anything else left) here rather than leave it behind.
    for (auto& left : take_all()) answer_closed(*left);
    return PushOutcome::queued;
  }
  wake_one(/*unless_one_is_looking=*/true);
  return PushOutcome::queued;
}

PushOutcome JobQueue::admit(QueuedJobPtr job) {
  PushOutcome outcome = push(job);
  switch (outcome) {
    case PushOutcome::queued:
      break;
    case PushOutcome::overloaded:
      job->complete(Error::make(Condition::overloaded,
                                "all sessions are busy and " + std::to_string(limit_) +
                                    " requests are already waiting",
                                to_string(job->job.op)));
      break;
    case PushOutcome::closed:
      answer_closed(*job);
      break;
  }
  return outcome;
}

QueuedJobPtr JobQueue::take_side_front() {
  if (side_.empty()) return nullptr;
  QueuedJobPtr job = std::move(side_.front());
  side_.pop_front();
  side_count_.fetch_sub(1);
  queued_.fetch_sub(1);
  return job;
}

QueuedJobPtr JobQueue::try_pop() {
  // The side queue is empty almost always; then no lock and no clock.
  while (side_count_.load() > 0) {
    QueuedJobPtr job;
    {
      std::lock_guard<std::mutex> lock(side_mutex_);
      job = take_side_front();
    }
    if (!job) break;
    // Side jobs waited through a sweep already: some may have expired since.
    if (!expired_at(*job, now_ns())) return job;
    answer_expired(*job);
  }
  QueuedJob* job = ring_pop();
  if (job == nullptr) return nullptr;
  queued_.fetch_sub(1);
  return QueuedJobPtr(job);
}

void JobQueue::requeue(QueuedJobPtr job) {
  {
    // Under the mutex take_all() takes too: either it runs later and finds
    // this job, or it ran already and this sees closed_ (stored before it).
    std::lock_guard<std::mutex> lock(side_mutex_);
    if (!closed_.load()) {
      note_deadline(job->job.deadline_ns);
      queued_.fetch_add(1);
      side_.push_front(std::move(job));
      side_count_.fetch_add(1);
    }
  }
  if (job) {
    answer_closed(*job);
    return;
  }
  wake_one(/*unless_one_is_looking=*/true);
}

void JobQueue::back_off(unsigned round) {
  if (round < 16) {
    internal::cpu_pause();
  } else if (round < 256) {
    std::this_thread::yield();
  } else {
    // The producer was preempted for a scheduler tick or more: stop burning
    // the core it may need, but look again well before a tick passes.
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

void JobQueue::close() {
  closed_.store(true);
  for (std::size_t i = 0; i < slot_count_; ++i) {
    int expected = kParked;
    if (slots_[i].state.compare_exchange_strong(expected, kWaking)) wake(slots_[i]);
  }
}

std::vector<QueuedJobPtr> JobQueue::take_all() {
  std::vector<QueuedJobPtr> jobs;
  std::lock_guard<std::mutex> lock(side_mutex_);
  earliest_deadline_ns_.store(kNoDeadline);
  while (auto job = take_side_front()) jobs.push_back(std::move(job));
  while (QueuedJob* job = ring_pop()) {
    queued_.fetch_sub(1);
    jobs.emplace_back(job);
  }
  distrust_hint_if_ring_not_empty();
  return jobs;
}

std::size_t JobQueue::expire_overdue() {
  const std::int64_t now = now_ns();
  if (earliest_deadline_ns_.load() > now) return 0;
  std::vector<QueuedJobPtr> expired;
  {
    std::lock_guard<std::mutex> lock(side_mutex_);
    earliest_deadline_ns_.store(kNoDeadline);
    // The side queue's jobs first (they are the oldest), then the ring's, so
    // the survivors keep their order. Moving a job keeps its count in queued_.
    std::deque<QueuedJobPtr> kept;
    for (auto& job : side_) {
      if (expired_at(*job, now)) {
        expired.push_back(std::move(job));
      } else {
        note_deadline(job->job.deadline_ns);
        kept.push_back(std::move(job));
      }
    }
    side_.swap(kept);
    side_count_.store(side_.size());
    while (QueuedJob* raw = ring_pop()) {
      QueuedJobPtr job(raw);
      if (expired_at(*job, now)) {
        expired.push_back(std::move(job));
        continue;
      }
      note_deadline(job->job.deadline_ns);
      side_.push_back(std::move(job));
      side_count_.fetch_add(1);
    }
    distrust_hint_if_ring_not_empty();
  }
  queued_.fetch_sub(static_cast<std::int64_t>(expired.size()));
  // Answered outside the lock: a completion may take a while.
  for (auto& job : expired) answer_expired(*job);
  return expired.size();
}

void JobQueue::distrust_hint_if_ring_not_empty() {
  if (enqueue_pos_.load() != dequeue_pos_.load()) earliest_deadline_ns_.store(0);
}

std::size_t JobQueue::depth() const {
  std::int64_t queued = queued_.load();
  return queued > 0 ? static_cast<std::size_t>(queued) : 0;
}

}  // namespace hsmactor
