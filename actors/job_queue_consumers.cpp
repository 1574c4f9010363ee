// JobQueue's consumer side: the session actors' slots, their states (see
// job_queue.hpp), wake-ups and the brief spin before a consumer parks. The
// ring, admission, the side queue and deadlines are in job_queue.cpp.
#include <thread>

#include "actors/internal/core_budget.hpp"
#include "actors/internal/cpu_pause.hpp"
#include "actors/job_queue.hpp"

namespace hsmactor {

using Clock = std::chrono::steady_clock;

bool JobQueue::wake(Slot& slot) {
  session_actor handle;
  {
    std::lock_guard<std::mutex> lock(slot.handle_mutex);
    // No longer waking: its consumer resumed (and will look), or detach()
    // took over this wake-up and passes it on.
    if (slot.state.load() != kWaking) return true;
    handle = slot.handle;
  }
  if (!handle) return false;
  // Should the actor be dying, the pull is dropped; its detach(), still to
  // come, finds the slot waking and passes the wake-up on.
  caf::anon_send(handle, pull_atom::value);
  return true;
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
    if (slots_[i].state.compare_exchange_strong(expected, kWaking) && wake(slots_[i])) return;
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
  int was;
  {
    std::lock_guard<std::mutex> lock(slot.handle_mutex);
    if (slot.handle.address() != consumer) return;
    was = slot.state.exchange(kEmpty);
    slot.handle = session_actor();
  }
  if (was == kWaking) {
    // A producer picked this consumer to take its job; nobody else was told.
    wake_one(/*unless_one_is_looking=*/false);
  } else if (queued_.load() > 0) {
    // Producers may have counted on this consumer to look before it parked.
    wake_one(/*unless_one_is_looking=*/true);
  }
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
    // Every core busy: spinning would take one from work, but the thread it
    // most likely goes to is the caller just answered, whose next request
    // then finds this session still looking. A few yields (about 1 µs each)
    // cost less than parking and the wake-up a `pull` needs (measured: ECDSA
    // futures and completion queue 0.04-0.12 closer to raw at 1-64 callers).
    for (int round = 0; round < kYieldsBeforePark; ++round) {
      std::this_thread::yield();
      if (QueuedJobPtr job = try_pop()) return job;
    }
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
      internal::cpu_pause();
    } else {
      std::this_thread::yield();
    }
    if ((round & 15) == 0 && Clock::now() >= until) break;
  }
  internal::CoreBudget::leave();
  spinners_.store(0);
  return job;
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
