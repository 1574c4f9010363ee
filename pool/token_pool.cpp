#include "pool/token_pool.hpp"

#include "pool/internal/reply_route.hpp"

#include <algorithm>
#include <deque>
#include <unordered_map>
#include <vector>

namespace hsmactor {
namespace {

using internal::ReplyRoute;
using internal::take_reply_route;
using Clock = std::chrono::steady_clock;

constexpr auto kSweepInterval = std::chrono::milliseconds(20);
// How long a session may take to get to an s_begin behind its current call.
constexpr auto kStreamBeginGrace = std::chrono::seconds(60);
constexpr auto kStreamAbortBound = std::chrono::seconds(60);
// How long the ceiling stays where CKR_SESSION_COUNT put it before it rises
// by one session (and again after each further interval without one).
constexpr auto kCeilingBackOff = std::chrono::seconds(1);

// A stream waiting for a session to pin.
struct WaitingStream {
  StreamSpec spec;
  caf::typed_response_promise<PinnedSession> promise;
  Clock::time_point accepted;
};

struct PooledSession {
  session_actor handle;
  std::size_t slot = 0;  ///< its slot in the JobQueue
  bool pinned = false;
  /// The stream it is pinned for (s_begin sent, not yet released).
  std::uint64_t stream_id = 0;
  /// The stream's owner gave it up while s_begin was on its way: abort it
  /// as soon as it has begun.
  bool abandoned = false;
};

struct PoolState {
  supervisor_actor supervisor;
  PoolSettings settings;
  PoolChannel channel;
  std::unordered_map<caf::actor_addr, PooledSession> sessions;
  std::size_t spawning = 0;
  std::size_t ceiling = 1;
  /// When the token last answered CKR_SESSION_COUNT (or the ceiling last rose).
  Clock::time_point ceiling_lowered_at;
  std::deque<WaitingStream> streams;
  bool stopping = false;
  /// Answered once every session is down after a stop.
  caf::typed_response_promise<bool> stopped;
  /// A sweep is due: jobs or streams are waiting.
  bool sweeping = false;
  const char* name = "hsmactor.pool";

  JobQueue& queue() { return *channel.queue; }
  PoolRecorder& recorder() { return *channel.recorder; }

  PooledSession* find(const caf::actor_addr& address) {
    auto it = sessions.find(address);
    return it == sessions.end() ? nullptr : &it->second;
  }

  PooledSession* find_unpinned() {
    for (auto& [address, session] : sessions) {
      if (!session.pinned) return &session;
    }
    return nullptr;
  }

  PooledSession* find_pinned_for(std::uint64_t stream_id) {
    for (auto& [address, session] : sessions) {
      if (session.pinned && session.stream_id == stream_id) return &session;
    }
    return nullptr;
  }
};

using pool_pointer = pool_actor::stateful_pointer<PoolState>;

void grow(pool_pointer self);

Error shutting_down_error(const char* operation) {
  return Error::make(Condition::shutting_down, "the token is closing", operation);
}

void fail_stream(pool_pointer self, WaitingStream& waiting, const Error& error) {
  self->state.recorder().record("open_stream", waiting.accepted, &error, 1);
  waiting.promise.deliver(to_caf_error(error));
}

// Answers every queued job with `error` (nothing can serve them).
void fail_queued(pool_pointer self, const Error& error) {
  for (auto& job : self->state.queue().take_all()) {
    job->complete(error.in_operation(to_string(job->job.op)));
  }
}

void pump_streams(pool_pointer self);

// Gives a pinned session back. The pool is the only sender of s_begin and
// s_abort, so its abort arrives after the s_begin it undoes (mailboxes keep a
// sender's order), and the session is not pinned for another stream until the
// abort is done.
void release_stream(pool_pointer self, std::uint64_t stream_id, bool abort) {
  auto* session = self->state.find_pinned_for(stream_id);
  if (session == nullptr) return;
  auto address = session->handle.address();
  auto unpin = [self, address, stream_id] {
    auto* pinned = self->state.find(address);
    if (pinned != nullptr && pinned->stream_id == stream_id) {
      pinned->pinned = false;
      pinned->stream_id = 0;
      pinned->abandoned = false;
    }
    pump_streams(self);
  };
  if (!abort) {
    unpin();
    return;
  }
  self->request(session->handle, kStreamAbortBound, s_abort_atom::value, stream_id)
      .then([unpin](bool) { unpin(); }, [unpin](caf::error&) { unpin(); });
}

void dispatch_stream(pool_pointer self, PooledSession& session, WaitingStream waiting) {
  session.pinned = true;
  session.stream_id = waiting.spec.stream_id;
  session.abandoned = false;
  auto handle = session.handle;
  auto address = handle.address();
  auto stream_id = waiting.spec.stream_id;
  auto spec = waiting.spec;
  // Bounded by the stream's deadline plus the longest a session may take to
  // get to the message; a session that starts it later still gets the abort.
  self->request(handle, time_left(spec.deadline_ns) + kStreamBeginGrace, s_begin_atom::value,
                std::move(spec))
      .then(
          [self, handle, address, stream_id, waiting](std::uint64_t) mutable {
            auto* pinned = self->state.find(address);
            if (pinned != nullptr && pinned->stream_id == stream_id && pinned->abandoned) {
              // Its owner gave it up; the abort sent then follows this answer.
              fail_stream(self, waiting,
                          Error::make(Condition::deadline_exceeded,
                                      "the stream was given up before it started", "open_stream"));
              return;
            }
            self->state.recorder().record("open_stream", waiting.accepted, nullptr, 1);
            waiting.promise.deliver(PinnedSession{handle});
          },
          [self, stream_id, waiting](caf::error& failure) mutable {
            fail_stream(self, waiting, from_caf_error(failure));
            // A timed-out s_begin may still start later: undo it.
            release_stream(self, stream_id, /*abort=*/true);
          });
}

// Pins sessions for waiting streams, answering those whose deadline passed.
void pump_streams(pool_pointer self) {
  auto& st = self->state;
  while (!st.streams.empty()) {
    if (time_left(st.streams.front().spec.deadline_ns).count() == 0) {
      WaitingStream expired = std::move(st.streams.front());
      st.streams.pop_front();
      fail_stream(self, expired,
                  Error::make(Condition::deadline_exceeded,
                              "the deadline passed while waiting for a session", "open_stream"));
      continue;
    }
    PooledSession* session = st.find_unpinned();
    if (session == nullptr) break;
    WaitingStream next = std::move(st.streams.front());
    st.streams.pop_front();
    dispatch_stream(self, *session, std::move(next));
  }
}

// Answers queued jobs whose deadline passed, where they wait: the others keep
// their order and the queue its limit. Done here too (not only when a session
// pops a job) because every session may be stuck in a long PKCS#11 call.
void expire_queued(pool_pointer self) { self->state.queue().expire_overdue(); }

void spawn_one(pool_pointer self) {
  auto& st = self->state;
  st.spawning++;
  self->request(st.supervisor, std::chrono::seconds(30), spawn_atom::value,
                std::uint64_t{st.settings.slot})
      .then(
          [self](session_actor& session) {
            auto& state = self->state;
            state.spawning--;
            if (state.stopping) {
              self->send_exit(session, caf::exit_reason::user_shutdown);
              return;
            }
            auto slot = state.queue().attach(session);
            if (!slot) {
              self->send_exit(session, caf::exit_reason::user_shutdown);
              return;
            }
            self->monitor(session);
            state.sessions.emplace(session.address(), PooledSession{session, *slot});
            self->send(session, serve_atom::value,
                       JobSource{state.channel.queue, *slot, state.settings.trace});
            pump_streams(self);
            grow(self);
          },
          [self](caf::error& failure) {
            auto& state = self->state;
            state.spawning--;
            if (state.sessions.empty() && state.spawning == 0) {
              // Nothing can serve the queue: answer it rather than let it wait.
              Error error = from_caf_error(failure);
              fail_queued(self, error);
              while (!state.streams.empty()) {
                WaitingStream waiting = std::move(state.streams.front());
                state.streams.pop_front();
                fail_stream(self, waiting, error);
              }
            }
            state.queue().rearm_starved();
          });
}

// Sweeps for passed deadlines every 20 ms while anything waits. An idle pool
// does not tick, so CAF's scheduler threads can go to sleep.
void keep_sweeping(pool_pointer self) {
  auto& st = self->state;
  if (st.sweeping || st.stopping) return;
  if (st.queue().depth() == 0 && st.streams.empty()) return;
  st.sweeping = true;
  self->delayed_send(self, kSweepInterval, sweep_atom::value);
}

// Returns true if the ceiling rose: CKR_SESSION_COUNT lowered it a back-off
// ago and has not come since, so the token may have room again (another
// application closed sessions). One session at a time, so a token that is
// still full costs one refused C_OpenSession per back-off.
bool raise_ceiling_after_back_off(PoolState& st) {
  if (st.ceiling >= std::max<std::size_t>(1, st.settings.max_sessions)) return false;
  auto now = Clock::now();
  if (now - st.ceiling_lowered_at < kCeilingBackOff) return false;
  st.ceiling++;
  st.ceiling_lowered_at = now;
  return true;
}

void grow(pool_pointer self) {
  auto& st = self->state;
  if (st.stopping) return;
  keep_sweeping(self);
  raise_ceiling_after_back_off(st);
  auto& queue = st.queue();
  std::size_t total = st.sessions.size() + st.spawning;
  std::size_t idle = queue.consumers() - std::min(queue.consumers(), queue.busy_consumers());
  std::size_t waiting = queue.depth() + st.streams.size();
  // Open another session only when waiting requests outnumber sessions that
  // are idle or about to arrive; never beyond the ceiling.
  while (total < st.ceiling &&
         (waiting > idle + st.spawning || total < st.settings.min_sessions)) {
    spawn_one(self);
    total++;
  }
  // While there is room to grow, let the queue ask again; at the ceiling it
  // stays quiet until a session goes or the queue empties (see the sweep).
  if (total < st.ceiling) queue.rearm_starved();
}

pool_actor::behavior_type pool_impl(pool_pointer self, supervisor_actor supervisor,
                                    PoolSettings settings, PoolChannel channel) {
  auto& st = self->state;
  st.supervisor = std::move(supervisor);
  st.settings = std::move(settings);
  st.channel = std::move(channel);
  st.ceiling = std::max<std::size_t>(1, st.settings.max_sessions);
  self->set_down_handler([self](caf::down_msg& down) {
    auto& state = self->state;
    auto it = state.sessions.find(down.source);
    if (it == state.sessions.end()) return;
    // The actor detaches itself once serving; one that died before its
    // `serve` message arrived cannot, so free its slot here (a no-op otherwise).
    state.queue().detach(it->second.slot, down.source);
    state.sessions.erase(it);
    if (state.stopping) {
      if (state.sessions.empty() && state.stopped.pending()) state.stopped.deliver(true);
      return;
    }
    Error why = from_caf_error(down.reason);
    if (why.rv() == CKR_SESSION_COUNT) {
      // The token had no room for that session: lower the ceiling (for a
      // back-off, see raise_ceiling_after_back_off).
      state.ceiling = std::max<std::size_t>(1, state.sessions.size() + state.spawning);
      state.ceiling_lowered_at = Clock::now();
      state.recorder().event("session_count", "open_session", "CKR_SESSION_COUNT");
    } else {
      state.recorder().session_restarted();
      state.recorder().event("session_lost", "", "down");
    }
    state.queue().rearm_starved();
    grow(self);
    pump_streams(self);
  });
  return {
      [self](run_atom, Job& job) -> caf::delegated<JobResult> {
        auto& state = self->state;
        if (job.deadline_ns == 0) job.deadline_ns = deadline_after(state.settings.default_deadline);
        // The session actor that runs the job answers the requester itself.
        auto route = std::make_shared<ReplyRoute>(take_reply_route(self));
        auto queued = state.queue().make_job(
            std::move(job), QueuedJob::Completion([route](Result<JobResult> result) {
              if (result) {
                route->send(caf::make_message(std::move(*result)));
              } else {
                route->send(caf::make_message(to_caf_error(result.error())));
              }
            }));
        state.queue().admit(std::move(queued));
        return {};
      },
      [self](open_atom, StreamSpec& spec) -> caf::result<PinnedSession> {
        auto& state = self->state;
        WaitingStream waiting;
        waiting.spec = std::move(spec);
        if (waiting.spec.deadline_ns == 0) {
          waiting.spec.deadline_ns = deadline_after(state.settings.default_deadline);
        }
        waiting.promise = self->make_response_promise<PinnedSession>();
        waiting.accepted = Clock::now();
        auto promise = waiting.promise;
        if (state.stopping) {
          fail_stream(self, waiting, shutting_down_error("open_stream"));
          return promise;
        }
        if (state.streams.size() >= state.settings.queue_limit) {
          state.recorder().event("overloaded", "open_stream", "overloaded");
          fail_stream(self, waiting,
                      Error::make(Condition::overloaded, "too many streams are waiting for a session",
                                  "open_stream"));
          return promise;
        }
        state.streams.push_back(std::move(waiting));
        pump_streams(self);
        grow(self);
        return promise;
      },
      [self](unpin_atom, std::uint64_t stream_id, bool tainted) {
        auto& state = self->state;
        // Still waiting for a session: nobody wants it any more.
        for (auto it = state.streams.begin(); it != state.streams.end(); ++it) {
          if (it->spec.stream_id != stream_id) continue;
          WaitingStream given_up = std::move(*it);
          state.streams.erase(it);
          fail_stream(self, given_up,
                      Error::make(Condition::deadline_exceeded,
                                  "the stream was given up while waiting for a session",
                                  "open_stream"));
          return;
        }
        auto* pinned = state.find_pinned_for(stream_id);
        if (pinned == nullptr) return;
        if (tainted) state.recorder().event("stream", "abort", "closed");
        // s_begin may not have answered yet: its answer must not hand out
        // a stream whose abort is already on the way.
        if (tainted) pinned->abandoned = true;
        release_stream(self, stream_id, tainted);
      },
      [self](stats_atom) -> PoolMetrics {
        auto& state = self->state;
        PoolMetrics metrics = state.recorder().snapshot();
        metrics.sessions_open = state.sessions.size();
        metrics.sessions_busy = std::min(state.queue().busy_consumers(), state.sessions.size());
        metrics.queue_depth = state.queue().depth() + state.streams.size();
        metrics.queue_limit = state.settings.queue_limit;
        metrics.sessions_max = state.ceiling;
        return metrics;
      },
      [self](stop_atom) -> caf::result<bool> {
        auto& state = self->state;
        state.stopping = true;
        state.queue().close();
        fail_queued(self, shutting_down_error("request"));
        while (!state.streams.empty()) {
          WaitingStream waiting = std::move(state.streams.front());
          state.streams.pop_front();
          fail_stream(self, waiting, shutting_down_error("open_stream"));
        }
        // Jobs in flight are answered by their sessions before the exit
        // message (mailboxes are FIFO), or with broken_promise. The answer
        // waits until every session is down, so that a logout after it never
        // pulls the login from under a call still running.
        for (auto& [address, session] : state.sessions) {
          self->send_exit(session.handle, caf::exit_reason::user_shutdown);
        }
        if (state.sessions.empty()) return true;
        state.stopped = self->make_response_promise<bool>();
        return state.stopped;
      },
      [self](sweep_atom) {
        auto& state = self->state;
        state.sweeping = false;
        if (state.stopping) return;
        expire_queued(self);
        pump_streams(self);
        keep_sweeping(self);
        // Jobs wait while the pool sits at a lowered ceiling, which keeps the
        // queue from asking again: the sweep is where the ceiling may rise.
        if (raise_ceiling_after_back_off(state)) grow(self);
        // Waiting is over: the next job that finds every session busy
        // reports it again (and restarts the sweep).
        if (!state.sweeping) state.queue().rearm_starved();
      },
      [self](grow_atom) { grow(self); },
      // Test-only: kills one session actor, whatever it is doing; the down
      // handler replaces it as for any session that dies.
      [self](kill_atom) {
        auto& sessions = self->state.sessions;
        if (!sessions.empty()) {
          self->send_exit(sessions.begin()->second.handle, caf::exit_reason::kill);
        }
      },
  };
}

}  // namespace

PoolChannel make_pool_channel(const PoolSettings& settings) {
  PoolChannel channel;
  channel.recorder = std::make_shared<PoolRecorder>(settings.trace);
  channel.queue = std::make_shared<JobQueue>(settings.queue_limit,
                                             std::max<std::size_t>(1, settings.max_sessions),
                                             settings.idle_spin, channel.recorder,
                                             settings.coalescing_hold);
  return channel;
}

pool_actor spawn_token_pool(caf::actor_system& system, supervisor_actor supervisor,
                            PoolSettings settings, PoolChannel channel) {
  auto queue = channel.queue;
  auto pool = system.spawn(pool_impl, std::move(supervisor), std::move(settings),
                           std::move(channel));
  // Set before any caller can push (the token is not handed out yet).
  auto address = caf::actor_cast<caf::actor_addr>(pool);
  queue->on_starved([address] {
    if (auto handle = caf::actor_cast<pool_actor>(address)) {
      caf::anon_send(handle, grow_atom::value);
    }
  });
  return pool;
}

}  // namespace hsmactor
