// TokenPool: one cooperative actor per open token that dispatches requests to
// idle session actors.
//
// States of a pooled session: idle -> busy (one Job) -> idle; idle -> pinned
// (a multi-part stream) -> idle or closed. Requests that find no idle session
// wait in a bounded FIFO; beyond the bound they get `overloaded`, and a request
// whose deadline passes while queued gets `deadline_exceeded` within one sweep
// (20 ms), wherever it waits in the queue. Sessions are opened lazily up to a
// ceiling that never exceeds the token's own limit and drops when the token
// answers CKR_SESSION_COUNT. A session actor that dies is
// forgotten and replaced on demand; its in-flight request is answered with
// broken_promise by CAF's request_receiver_down.
//
// The pool itself never blocks: session actors are detached and do the
// PKCS#11 calls; the pool's mailbox is CAF's lock-free queue.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include "actors/protocol.hpp"
#include "pool/metrics.hpp"

#include <functional>
#include <mutex>

namespace hsmactor {

/// Where trace events go; the sink can be swapped while the pool runs.
class TraceHub {
 public:
  void set(std::function<void(const TraceEvent&)> sink) {
    std::lock_guard<std::mutex> lock(mutex_);
    sink_ = std::move(sink);
  }
  void emit(const TraceEvent& event) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (sink_) sink_(event);
  }
  bool active() {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<bool>(sink_);
  }

 private:
  std::mutex mutex_;
  std::function<void(const TraceEvent&)> sink_;
};

/// A pinned stream's session, as handed to the caller.
struct PinnedSession {
  session_actor session;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, PinnedSession& x) {
  return f(caf::meta::type_name("PinnedSession"), x.session);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, OperationMetrics& x) {
  return f(caf::meta::type_name("OperationMetrics"), x.requests, x.errors, x.p50_us, x.p99_us,
           x.max_us);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, PoolMetrics& x) {
  return f(caf::meta::type_name("PoolMetrics"), x.requests, x.succeeded, x.failed, x.retries,
           x.overloaded, x.deadline_exceeded, x.session_restarts, x.sessions_open,
           x.sessions_busy, x.sessions_max, x.queue_depth, x.queue_limit, x.errors_by_code,
           x.operations);
}

/// The pool's typed interface.
using pool_actor = caf::typed_actor<
    caf::replies_to<run_atom, Job>::with<JobResult>,
    caf::replies_to<open_atom, StreamSpec>::with<PinnedSession>,
    caf::reacts_to<unpin_atom, session_actor, bool>,
    caf::replies_to<stats_atom>::with<PoolMetrics>,
    caf::replies_to<stop_atom>::with<bool>,
    caf::reacts_to<sweep_atom>,
    caf::reacts_to<grow_atom>>;

/// How a pool is sized.
struct PoolSettings {
  CK_SLOT_ID slot = 0;
  std::size_t min_sessions = 1;
  std::size_t max_sessions = 4;
  std::size_t queue_limit = 1024;
  std::chrono::milliseconds default_deadline{30000};
  /// Receives trace events (may be replaced while running).
  std::shared_ptr<TraceHub> trace;
};

/// Spawns a pool that gets its session actors from `supervisor`.
pool_actor spawn_token_pool(caf::actor_system& system, supervisor_actor supervisor,
                            PoolSettings settings);

}  // namespace hsmactor

