// TokenPool: one cooperative actor per open token that owns its session
// actors, while requests go from callers to those actors through a JobQueue.
//
// Jobs never pass through the pool actor on the way in or out: callers push
// them into the lock-free JobQueue and the session actors pull them, parking
// in their mailboxes when it is empty (see actors/job_queue.hpp). The pool
// actor does the rest:
// - sizing: it opens sessions lazily (when jobs wait and no session is idle,
//   the queue tells it) up to a ceiling that never exceeds the token's own
//   limit and drops when the token answers CKR_SESSION_COUNT; a session actor
//   that dies is replaced on demand;
// - deadlines: every 20 ms it answers queued jobs whose deadline passed with
//   `deadline_exceeded`, wherever they wait (overloaded is the queue's own
//   answer, at once);
// - streams: it pins an unpinned session for a multi-part stream (waiting,
//   bounded by the same deadline, when every session is pinned). It alone
//   decides a stream's fate: the caller's give-up (unpin, tainted) aborts the
//   stream on its session before the session is pinned again, also when the
//   give-up comes before the session has begun;
// - actors that send it run_atom + Job have the job queued like any caller's;
//   the session actor that runs it sends the response straight back;
// - stop: it answers everything queued with shutting_down and stops the
//   sessions; requests in flight are answered by their sessions first.
//
// The pool never blocks: session actors are detached and do the PKCS#11 calls.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>

#include "actors/protocol.hpp"
#include "pool/metrics.hpp"

#include "actors/job_queue.hpp"
#include "pool/pool_recorder.hpp"

namespace hsmactor {

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

/// The pool's typed interface. kill_atom is test-only (the soak tool): the pool
/// kills one of its session actors, to exercise a session that dies with
/// requests in flight.
using pool_actor = caf::typed_actor<
    caf::replies_to<run_atom, Job>::with<JobResult>,
    caf::replies_to<open_atom, StreamSpec>::with<PinnedSession>,
    caf::reacts_to<unpin_atom, std::uint64_t, bool>,
    caf::replies_to<stats_atom>::with<PoolMetrics>,
    caf::replies_to<stop_atom>::with<bool>,
    caf::reacts_to<sweep_atom>,
    caf::reacts_to<grow_atom>,
    caf::reacts_to<kill_atom>>;

/// How a pool is sized.
struct PoolSettings {
  CK_SLOT_ID slot = 0;
  std::size_t min_sessions = 1;
  std::size_t max_sessions = 4;
  std::size_t queue_limit = 1024;
  std::chrono::milliseconds default_deadline{30000};
  /// How long an idle session actor keeps looking for work before it parks.
  std::chrono::microseconds idle_spin{50};
  /// How long a session may hold answers bound for an executor for the rest
  /// of their group (TokenOptions::coalescing_hold).
  std::chrono::microseconds coalescing_hold{50};
  /// Receives trace events (may be replaced while running).
  std::shared_ptr<TraceHub> trace;
};

/// What callers share with the pool actor: the queue and the counts.
struct PoolChannel {
  std::shared_ptr<JobQueue> queue;
  std::shared_ptr<PoolRecorder> recorder;
};

/// Returns the queue and recorder a pool made with `settings` will use.
PoolChannel make_pool_channel(const PoolSettings& settings);

/// Spawns a pool that gets its session actors from `supervisor` and serves
/// `channel`'s queue with them.
pool_actor spawn_token_pool(caf::actor_system& system, supervisor_actor supervisor,
                            PoolSettings settings, PoolChannel channel);

}  // namespace hsmactor

