#include "actors/session_actor.hpp"

#include <array>
#include <chrono>

#include "actors/internal/deferred_posts.hpp"
#include "actors/internal/job_costs.hpp"
#include "actors/job_queue.hpp"
#include "actors/session_core.hpp"
#include "pkcs11/rv.hpp"

namespace hsmactor {
namespace {

struct SessionState {
  /// Sees every PKCS#11 call; declared first so it outlives the session,
  /// whose closing it also sees.
  std::shared_ptr<pkcs11::CallObserver> calls;
  std::shared_ptr<pkcs11::Module> module;
  supervisor_actor supervisor;
  CK_SLOT_ID slot = 0;
  std::uint64_t generation = 0;
  pkcs11::Session session;
  KeyCache keys;
  bool streaming = false;
  /// The stream this session serves (StreamSpec::stream_id) while streaming.
  std::uint64_t stream_id = 0;
  StreamKind stream_kind = StreamKind::digest;
  std::uint64_t streamed_bytes = 0;
  std::uint64_t restarts = 0;
  /// The token is supposed to be logged in (the supervisor holds its login).
  bool login_expected = false;
  /// The pool queue this actor pulls jobs from (none outside a pool).
  JobSource source;
  caf::actor_addr self_address;
  /// A heal is in progress: queued jobs wait until it is done.
  bool healing = false;
  /// The session could not open for lack of room; the actor is leaving.
  bool retiring = false;
  /// What jobs of each kind took here: which ones are cheap enough to group.
  internal::JobCosts costs;
  /// Where answers wait for the rest of their group (see DeferredPosts).
  std::shared_ptr<internal::DeferredPosts::Box> held_answers =
      internal::DeferredPosts::make_box();
  const char* name = "hsmactor.session";

  ~SessionState() {
    if (source.queue) source.queue->detach(source.slot, self_address);
  }

  /// Opens the session if there is none. A new session on a token that should
  /// be logged in but is not (it was reset) reports CKR_USER_NOT_LOGGED_IN, so
  /// the caller heals instead of finding no private keys.
  Result<void> ensure_open() {
    if (session.is_open()) return success();
    auto opened = module->open_session(slot, pkcs11::SessionMode::read_write, calls.get());
    if (!opened) return opened.error();
    session = std::move(*opened);
    if (login_expected) {
      auto info = session.info();
      if (!info) return info.error();
      if (!info->logged_in()) {
        (void)session.close();
        return Error::from_rv(CKR_USER_NOT_LOGGED_IN, "C_GetSessionInfo");
      }
    }
    return success();
  }

  /// Closes the session so it is never reused (after a stale code, or with an
  /// operation left in flight).
  void discard_session() {
    (void)session.close();
    keys.clear();
    streaming = false;
    stream_id = 0;
    streamed_bytes = 0;
  }
};

using session_pointer = session_actor::stateful_pointer<SessionState>;

Error stale_retry_failed(const Error& last) {
  return last.as(Condition::stale_session_retry_failed,
                 "the session went stale, was replaced, and the retry failed too");
}

using Finish = std::function<void(Result<JobResult>)>;

// The one retry of `job` on the session opened after a heal.
Result<JobResult> retry_after_heal(SessionState& state, const Job& job) {
  auto opened = state.ensure_open();
  if (!opened) return stale_retry_failed(opened.error());
  auto retried = execute_job(state.session, job, state.generation, state.keys);
  if (retried) {
    retried->attempts = 2;
    return retried;
  }
  if (pkcs11::is_stale_session_rv(retried.error().rv())) {
    state.discard_session();
    return stale_retry_failed(retried.error());
  }
  return retried;
}

// Runs `job` once on this actor's session (opening one if needed).
Result<JobResult> run_once(SessionState& st, const Job& job) {
  const char* operation = to_string(job.op);
  if (time_left(job.deadline_ns).count() == 0) {
    return Error::make(Condition::deadline_exceeded,
                       "the deadline passed before the request started", operation);
  }
  auto opened = st.ensure_open();
  if (!opened) return opened.error().in_operation(operation);
  return execute_job(st.session, job, st.generation, st.keys);
}

void drain(session_pointer self);

// Heals through the supervisor after a stale code, then retries `job` once on
// a new session and hands the outcome to `finish`. Other messages, and queued
// jobs, wait until this is done (await); then the session serves the queue
// again. With no time left for a heal, `finish` runs at once and the caller
// (drain's loop) simply goes on: serving again from here would nest a drain
// inside the running one, whose held answers would wait for the inner one.
void heal_and_retry(session_pointer self, Job job, Error first, Finish finish) {
  auto& st = self->state;
  auto timeout = time_left(job.deadline_ns);
  if (timeout.count() == 0) {
    finish(Error::make(Condition::deadline_exceeded,
                       "the deadline passed during a session restart", to_string(job.op)));
    return;
  }
  st.healing = true;
  self->request(st.supervisor, timeout, heal_atom::value, std::uint64_t{st.slot},
                std::uint64_t{first.rv()}, st.generation)
      .await(
          [self, job, finish](std::uint64_t generation) {
            auto& state = self->state;
            state.healing = false;
            state.generation = generation;
            state.restarts++;
            finish(retry_after_heal(state, job));
            drain(self);
          },
          [self, job, finish](caf::error& failure) {
            // The heal itself failed (token absent, login refused, timeout).
            self->state.healing = false;
            finish(from_caf_error(failure).in_operation(to_string(job.op)));
            drain(self);
          });
}

// Runs one job taken from the pool's queue.
void run_pulled(session_pointer self, QueuedJobPtr queued) {
  auto& st = self->state;
  auto& queue = *st.source.queue;
  // Withdrawn by its caller: answered (withdrawn) without any PKCS#11 call.
  if (!queued->start()) return;
  if (!st.session.is_open() && time_left(queued->job.deadline_ns).count() > 0) {
    auto opened = st.ensure_open();
    if (!opened && opened.error().rv() == CKR_SESSION_COUNT && queue.consumers() > 1) {
      // The token has no room for this session: leave the job to the others
      // and go, so the pool lowers its ceiling (it sees why in the down message).
      // Detached first, so the requeue wakes another consumer, not this one.
      queue.detach(st.source.slot, st.self_address);
      queue.requeue(std::move(queued));
      st.retiring = true;
      self->quit(to_caf_error(opened.error().in_operation("open_session")));
      return;
    }
  }
  auto result = run_once(st, queued->job);
  const bool stale = !result && pkcs11::is_stale_session_rv(result.error().rv());
  if (stale) st.discard_session();
  if (!stale || !may_retry_after_stale_session(queued->job.op)) {
    // Answering only hands the result over, so this session already counts
    // as looking for work: the caller's next request need not wake another.
    queue.finishing(st.source.slot);
    queued->complete(std::move(result));
    return;
  }
  // The job outlives this call while the heal runs; CAF handlers are copied,
  // hence shared ownership.
  auto held = std::make_shared<QueuedJobPtr>(std::move(queued));
  Job job = (*held)->job;
  heal_and_retry(self, std::move(job), result.error(), [held](Result<JobResult> outcome) {
    (*held)->complete(std::move(outcome));
  });
}

// Marks a consumer busy for one job, even if the job throws.
class JobScope {
 public:
  JobScope(JobQueue& queue, std::size_t slot, const bool& healing)
      : queue_(queue), slot_(slot), healing_(healing) {
    queue_.begin_job(slot_);
  }
  // A session still healing stays busy, so producers wake other consumers.
  ~JobScope() { queue_.end_job(slot_, healing_); }
  JobScope(const JobScope&) = delete;
  JobScope& operator=(const JobScope&) = delete;

 private:
  JobQueue& queue_;
  std::size_t slot_;
  const bool& healing_;
};

// Jobs a session took from the queue at once. Those it does not get to run
// (it went to heal, or gave up its place) go back first in line, in order.
class JobGroup {
 public:
  explicit JobGroup(JobQueue& queue) : queue_(queue) {}
  ~JobGroup() {
    // Back to front: each requeue puts its job at the head of the line.
    for (std::size_t i = size_; i > next_; --i) queue_.requeue(std::move(jobs_[i - 1]));
  }
  JobGroup(const JobGroup&) = delete;
  JobGroup& operator=(const JobGroup&) = delete;

  bool full() const { return size_ == jobs_.size(); }
  void add(QueuedJobPtr job) { jobs_[size_++] = std::move(job); }
  bool done() const { return next_ == size_; }
  const Job& next_job() const { return jobs_[next_]->job; }
  QueuedJobPtr take() { return std::move(jobs_[next_++]); }

 private:
  JobQueue& queue_;
  std::array<QueuedJobPtr, internal::CoalescingLimits::kMaxGroup> jobs_;
  std::size_t size_ = 0;
  std::size_t next_ = 0;
};

// Pulls and runs queued jobs until the queue is empty, then spins briefly and
// parks. Returns early when other messages wait (a stream, an exit, a status
// query), after sending itself a `pull` to come back afterwards.
//
// Coalescing: jobs this session has measured cheap are taken several at once
// (as many as fit the hold budget together), run back to back, and each is
// answered as it finishes; a blocking caller is released at once, while the
// callbacks and continuations bound for executors are handed over together
// when the group is done (or before a dear job would keep them waiting past
// the budget), so one wake-up of an event loop carries the group's answers,
// and parked sessions are not woken for jobs cheaper than the wake-up.
void drain(session_pointer self) {
  using Clock = std::chrono::steady_clock;
  auto& st = self->state;
  if (!st.source.queue || st.retiring) return;
  auto& queue = *st.source.queue;
  if (st.streaming || st.healing) {
    // A producer may have woken this actor for a job it cannot take now:
    // pass the wake-up on so the job does not wait for the next push.
    if (queue.depth() > 0) queue.wake_idle();
    return;
  }
  queue.resume(st.source.slot);
  unsigned refused_parks = 0;
  while (!queue.closed()) {
    if (!self->mailbox().empty()) {
      self->send(caf::actor_cast<session_actor>(self), pull_atom::value);
      return;
    }
    QueuedJobPtr first = queue.try_pop();
    if (!first) first = queue.spin_pop();
    if (!first) {
      if (queue.park(st.source.slot)) return;
      // A job is counted but not visible yet: give its producer the core.
      JobQueue::back_off(refused_parks++);
      continue;
    }
    refused_parks = 0;
    // Declared before the group: jobs the group gives back, if answered at
    // once (the queue closed), are handed over with the others.
    internal::DeferredPosts answers(st.held_answers);
    JobGroup group(queue);
    auto expected = st.costs.expected(internal::JobCosts::kind_of(first->job));
    group.add(std::move(first));
    const auto hold_budget = st.costs.hold_budget();
    while (!group.full() && expected < hold_budget) {
      QueuedJobPtr more = queue.try_pop();
      if (!more) break;
      expected += st.costs.expected(internal::JobCosts::kind_of(more->job));
      group.add(std::move(more));
    }
    // More waiting: let a parked session start on them while this one works.
    if (queue.depth() > 0) queue.wake_idle();
    auto now = Clock::now();
    while (!group.done()) {
      const auto kind = internal::JobCosts::kind_of(group.next_job());
      if (answers.held() > 0 &&
          now - answers.oldest() + st.costs.expected(kind) > hold_budget) {
        answers.flush();
      }
      const auto started = now;
      {
        JobScope scope(queue, st.source.slot, st.healing);
        // Should this call overrun, what is held goes out without it.
        internal::DeferredPosts::Guard guard(answers, answers.oldest() + hold_budget);
        run_pulled(self, group.take());
      }
      now = Clock::now();
      st.costs.record(kind, now - started);
      if (st.healing || st.retiring) return;
    }
  }
}

// A stream ended: the session serves the queue again.
void end_stream(session_pointer self) {
  auto& st = self->state;
  st.streaming = false;
  st.stream_id = 0;
  st.streamed_bytes = 0;
  if (st.source.queue) {
    st.source.queue->resume(st.source.slot);
    self->send(caf::actor_cast<session_actor>(self), pull_atom::value);
  }
}

Error pinned_error(const char* operation) {
  return Error::make(Condition::invalid_argument,
                     "the session is pinned by an unfinished multi-part stream", operation);
}

// A step for a stream this session does not serve (it was given up, aborted
// or failed): it must not touch whatever the session does now.
caf::error not_this_stream(const SessionState& st, std::uint64_t stream_id,
                           const char* operation) {
  if (st.streaming && st.stream_id == stream_id) return caf::error();
  return to_caf_error(Error::make(Condition::invalid_argument,
                                  "the stream is not open on this session any more", operation));
}

// Ends a stream after a failure: the operation may still be active inside the
// module, so the session is closed rather than reused.
caf::error fail_stream(session_pointer self, const Error& error) {
  bool was_streaming = self->state.streaming;
  self->state.discard_session();
  if (was_streaming) end_stream(self);
  if (pkcs11::is_stale_session_rv(error.rv())) {
    return to_caf_error(error.as(Condition::stream_interrupted,
                                 "the session went stale during a multi-part stream; "
                                 "it cannot be replayed"));
  }
  return to_caf_error(error);
}

session_actor::behavior_type session_impl(session_pointer self,
                                          std::shared_ptr<pkcs11::Module> module,
                                          supervisor_actor supervisor, CK_SLOT_ID slot,
                                          std::uint64_t generation, bool login_expected) {
  self->state.login_expected = login_expected;
  self->state.module = std::move(module);
  self->state.supervisor = std::move(supervisor);
  self->state.slot = slot;
  self->state.generation = generation;
  self->set_exception_handler([](caf::scheduled_actor*, std::exception_ptr& failure) {
    std::string what = "unexpected exception in a session actor";
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      what += std::string(": ") + e.what();
    } catch (...) {
    }
    return to_caf_error(Error::make(Condition::internal_error, what));
  });
  return {
      [self](s_begin_atom, StreamSpec& spec) -> caf::result<std::uint64_t> {
        auto& st = self->state;
        if (st.streaming) return to_caf_error(pinned_error("stream_begin"));
        if (time_left(spec.deadline_ns).count() == 0) {
          return to_caf_error(Error::make(Condition::deadline_exceeded,
                                          "the deadline passed before the stream started",
                                          "stream_begin"));
        }
        auto opened = st.ensure_open();
        if (!opened) return fail_stream(self, opened.error().in_operation("stream_begin"));
        Result<void> started = success();
        if (spec.kind == StreamKind::digest) {
          started = st.session.digest_init(spec.mechanism);
        } else {
          auto init = [&](CK_OBJECT_HANDLE key) {
            return spec.kind == StreamKind::sign ? st.session.sign_init(spec.mechanism, key)
                                                 : st.session.verify_init(spec.mechanism, key);
          };
          auto key = resolve_key(st.session, spec.key, st.generation, st.keys);
          if (!key) return fail_stream(self, key.error().in_operation("stream_begin"));
          started = init(*key);
          if (!started && (started.error().rv() == CKR_OBJECT_HANDLE_INVALID ||
                           started.error().rv() == CKR_KEY_HANDLE_INVALID)) {
            // A cached handle the token no longer knows: look the key up once
            // more, as single-shot jobs do (execute_job), never use it blindly.
            st.keys.forget(spec.key.query);
            KeyRef fresh = spec.key;
            fresh.handle = 0;
            key = resolve_key(st.session, fresh, st.generation, st.keys);
            if (!key) return fail_stream(self, key.error().in_operation("stream_begin"));
            started = init(*key);
          }
        }
        if (!started) return fail_stream(self, started.error());
        st.streaming = true;
        st.stream_id = spec.stream_id;
        if (st.source.queue) {
          st.source.queue->pin(st.source.slot);
          if (st.source.queue->depth() > 0) st.source.queue->wake_idle();
        }
        st.stream_kind = spec.kind;
        st.streamed_bytes = 0;
        return std::uint64_t{st.session.handle()};
      },
      [self](s_update_atom, std::uint64_t stream_id,
             Bytes& data) -> caf::result<std::uint64_t> {
        auto& st = self->state;
        if (auto wrong = not_this_stream(st, stream_id, "stream_update")) return wrong;
        Result<void> updated = success();
        switch (st.stream_kind) {
          case StreamKind::sign: updated = st.session.sign_update(data); break;
          case StreamKind::verify: updated = st.session.verify_update(data); break;
          case StreamKind::digest: updated = st.session.digest_update(data); break;
        }
        if (!updated) return fail_stream(self, updated.error());
        st.streamed_bytes += data.size();
        return st.streamed_bytes;
      },
      [self](s_finish_atom, std::uint64_t stream_id,
             Bytes& signature) -> caf::result<JobResult> {
        auto& st = self->state;
        if (auto wrong = not_this_stream(st, stream_id, "stream_finish")) return wrong;
        JobResult result;
        if (st.stream_kind == StreamKind::verify) {
          auto valid = st.session.verify_final(signature);
          if (!valid) return fail_stream(self, valid.error());
          result.verified = *valid;
        } else {
          auto out = st.stream_kind == StreamKind::sign ? st.session.sign_final()
                                                        : st.session.digest_final();
          if (!out) return fail_stream(self, out.error());
          result.bytes = std::move(*out);
        }
        end_stream(self);
        return result;
      },
      [self](s_abort_atom, std::uint64_t stream_id) -> bool {
        // PKCS#11 2.40 cannot cancel an operation: closing is the only way to
        // make sure nothing half-done is ever shared.
        if (self->state.streaming && self->state.stream_id == stream_id) {
          self->state.discard_session();
          end_stream(self);
        }
        return true;
      },
      [self](status_atom) -> SessionStatus {
        auto& st = self->state;
        SessionStatus status;
        status.session_open = st.session.is_open();
        status.streaming = st.streaming;
        status.generation = st.generation;
        status.session_handle = st.session.handle();
        status.restarts = st.restarts;
        return status;
      },
      [self](serve_atom, JobSource& source) {
        auto& st = self->state;
        st.calls = source.calls;
        st.session.set_observer(st.calls.get());
        st.source = std::move(source);
        st.self_address = self->address();
        // The pool's budget for grouping; what was learnt before is kept
        // only if it was learnt against the same one.
        if (st.source.queue && st.source.queue->hold_budget() != st.costs.hold_budget()) {
          st.costs = internal::JobCosts(st.source.queue->hold_budget());
        }
        drain(self);
      },
      [self](pull_atom) { drain(self); },
  };
}

}  // namespace

session_actor spawn_session_actor(caf::local_actor* parent,
                                  std::shared_ptr<pkcs11::Module> module,
                                  supervisor_actor supervisor, CK_SLOT_ID slot,
                                  std::uint64_t generation, bool login_expected) {
  return parent->spawn<caf::detached + caf::monitored>(session_impl, std::move(module),
                                                       std::move(supervisor), slot, generation,
                                                       login_expected);
}

}  // namespace hsmactor
