#include "pool/token_pool.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <unordered_map>
#include <vector>

#include "pool/latency_histogram.hpp"

namespace hsmactor {
namespace {

using Clock = std::chrono::steady_clock;

// A request waiting for a session: a Job, or a stream to open.
struct Waiting {
  bool is_stream = false;
  Job job;
  StreamSpec spec;
  caf::typed_response_promise<JobResult> job_promise;
  caf::typed_response_promise<PinnedSession> stream_promise;
  Clock::time_point accepted;

  std::int64_t deadline_ns() const { return is_stream ? spec.deadline_ns : job.deadline_ns; }
};

struct PooledSession {
  session_actor handle;
  bool busy = false;
  bool pinned = false;
};

struct PoolState {
  supervisor_actor supervisor;
  PoolSettings settings;
  std::unordered_map<caf::actor_addr, PooledSession> sessions;
  std::size_t spawning = 0;
  std::size_t ceiling = 1;
  std::deque<Waiting> queue;
  bool stopping = false;
  bool sweep_scheduled = false;
  PoolMetrics metrics;
  std::map<std::string, LatencyHistogram> latency;
  const char* name = "hsmactor.pool";

  PooledSession* find_idle() {
    for (auto& [address, session] : sessions) {
      if (!session.busy && !session.pinned) return &session;
    }
    return nullptr;
  }

  PooledSession* find(const caf::actor_addr& address) {
    auto it = sessions.find(address);
    return it == sessions.end() ? nullptr : &it->second;
  }

  void trace(const char* what, const std::string& operation, const std::string& result,
             std::uint64_t attempts, std::uint64_t micros) {
    if (!settings.trace || !settings.trace->active()) return;
    settings.trace->emit(TraceEvent{what, operation, result, attempts, micros});
  }

  void record(const std::string& operation, Clock::time_point accepted, const Error* error,
              std::uint32_t attempts) {
    auto micros = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - accepted).count());
    auto& op = metrics.operations[operation];
    op.requests++;
    latency[operation].record(micros);
    std::string result = "CKR_OK";
    if (error) {
      metrics.failed++;
      op.errors++;
      result = error->rv() != CKR_OK ? error->rv_name() : to_string(error->condition());
      if (error->condition() != Condition::pkcs11_error && error->rv() != CKR_OK) {
        result = std::string(to_string(error->condition())) + "/" + error->rv_name();
      }
      metrics.errors_by_code[result]++;
      if (error->condition() == Condition::overloaded) metrics.overloaded++;
      if (error->condition() == Condition::deadline_exceeded) metrics.deadline_exceeded++;
    } else {
      metrics.succeeded++;
    }
    if (attempts > 1) {
      metrics.retries++;
      metrics.session_restarts++;
    }
    trace("request", operation, result, attempts, micros);
  }
};

using pool_pointer = pool_actor::stateful_pointer<PoolState>;

void pump(pool_pointer self);
void grow(pool_pointer self);

Error shutting_down_error(const char* operation) {
  return Error::make(Condition::shutting_down, "the token is closing", operation);
}

void fail_waiting(pool_pointer self, Waiting& waiting, const Error& error) {
  const char* operation = waiting.is_stream ? "open_stream" : to_string(waiting.job.op);
  self->state.record(operation, waiting.accepted, &error, 1);
  if (waiting.is_stream) {
    waiting.stream_promise.deliver(to_caf_error(error));
  } else {
    waiting.job_promise.deliver(to_caf_error(error));
  }
}

void schedule_sweep(pool_pointer self) {
  if (self->state.sweep_scheduled || self->state.queue.empty()) return;
  self->state.sweep_scheduled = true;
  self->delayed_send(self, std::chrono::milliseconds(20), sweep_atom::value);
}

void release(pool_pointer self, const caf::actor_addr& address) {
  if (auto* session = self->state.find(address)) session->busy = false;
  pump(self);
}

void forget_session(pool_pointer self, const caf::actor_addr& address) {
  auto& st = self->state;
  auto it = st.sessions.find(address);
  if (it == st.sessions.end()) return;
  self->send_exit(it->second.handle, caf::exit_reason::user_shutdown);
  st.sessions.erase(it);
}

void dispatch_job(pool_pointer self, PooledSession& session, Waiting waiting) {
  session.busy = true;
  auto address = session.handle.address();
  // The session always answers (or dies, which CAF turns into an error); the
  // generous timeout only guards against a module call that never returns.
  auto timeout = time_left(waiting.job.deadline_ns) + std::chrono::seconds(60);
  auto job = waiting.job;
  self->request(session.handle, timeout, run_atom::value, std::move(job))
      .then(
          [self, address, waiting](JobResult& result) mutable {
            self->state.record(to_string(waiting.job.op), waiting.accepted, nullptr,
                               result.attempts);
            waiting.job_promise.deliver(std::move(result));
            release(self, address);
          },
          [self, address, waiting](caf::error& failure) mutable {
            auto& st = self->state;
            Error error = from_caf_error(failure);
            if (error.rv() == CKR_SESSION_COUNT && !st.stopping) {
              // The token has no room for this session: lower the ceiling and
              // give the job to another session instead of failing it.
              forget_session(self, address);
              st.ceiling = std::max<std::size_t>(1, st.sessions.size());
              st.metrics.sessions_max = st.ceiling;
              st.trace("session_count", to_string(waiting.job.op), "CKR_SESSION_COUNT", 1, 0);
              if (!st.sessions.empty() || st.spawning > 0) {
                st.queue.push_front(std::move(waiting));
                pump(self);
                return;
              }
            }
            self->state.record(to_string(waiting.job.op), waiting.accepted, &error, 1);
            waiting.job_promise.deliver(to_caf_error(error));
            if (error.condition() == Condition::broken_promise) {
              forget_session(self, address);
              self->state.metrics.session_restarts++;
              self->state.trace("session_lost", to_string(waiting.job.op), "broken_promise", 1, 0);
              grow(self);
              pump(self);
            } else {
              release(self, address);
            }
          });
}

void dispatch_stream(pool_pointer self, PooledSession& session, Waiting waiting) {
  session.pinned = true;
  auto handle = session.handle;
  auto address = handle.address();
  auto spec = waiting.spec;
  self->request(handle, time_left(spec.deadline_ns) + std::chrono::seconds(60), s_begin_atom::value,
                std::move(spec))
      .then(
          [self, handle, waiting](std::uint64_t) mutable {
            self->state.record("open_stream", waiting.accepted, nullptr, 1);
            waiting.stream_promise.deliver(PinnedSession{handle});
          },
          [self, address, waiting](caf::error& failure) mutable {
            Error error = from_caf_error(failure);
            self->state.record("open_stream", waiting.accepted, &error, 1);
            waiting.stream_promise.deliver(to_caf_error(error));
            if (auto* session = self->state.find(address)) session->pinned = false;
            pump(self);
          });
}

void expire(pool_pointer self, Waiting& expired) {
  fail_waiting(self, expired,
               Error::make(Condition::deadline_exceeded,
                           "the deadline passed while waiting for a session",
                           expired.is_stream ? "open_stream" : to_string(expired.job.op)));
}

// Answers every waiting request whose deadline has passed, wherever it is in
// the queue (a short deadline behind long ones must not wait for them).
void expire_waiting(pool_pointer self) {
  auto& st = self->state;
  auto passed = [](const Waiting& waiting) { return time_left(waiting.deadline_ns()).count() == 0; };
  if (std::none_of(st.queue.begin(), st.queue.end(), passed)) return;
  std::deque<Waiting> keep;
  std::vector<Waiting> expired;
  for (auto& waiting : st.queue) {
    if (passed(waiting)) {
      expired.push_back(std::move(waiting));
    } else {
      keep.push_back(std::move(waiting));
    }
  }
  st.queue.swap(keep);
  for (auto& waiting : expired) expire(self, waiting);
}

void pump(pool_pointer self) {
  auto& st = self->state;
  while (!st.queue.empty()) {
    if (time_left(st.queue.front().deadline_ns()).count() == 0) {
      Waiting expired = std::move(st.queue.front());
      st.queue.pop_front();
      expire(self, expired);
      continue;
    }
    PooledSession* idle = st.find_idle();
    if (idle == nullptr) break;
    Waiting next = std::move(st.queue.front());
    st.queue.pop_front();
    if (next.is_stream) {
      dispatch_stream(self, *idle, std::move(next));
    } else {
      dispatch_job(self, *idle, std::move(next));
    }
  }
  grow(self);
}

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
            self->monitor(session);
            state.sessions.emplace(session.address(), PooledSession{session});
            pump(self);
          },
          [self](caf::error& failure) {
            auto& state = self->state;
            state.spawning--;
            if (state.sessions.empty() && state.spawning == 0) {
              // Nothing can serve the queue: answer it rather than let it wait.
              Error error = from_caf_error(failure);
              while (!state.queue.empty()) {
                Waiting waiting = std::move(state.queue.front());
                state.queue.pop_front();
                fail_waiting(self, waiting, error);
              }
            }
          });
}

void grow(pool_pointer self) {
  auto& st = self->state;
  if (st.stopping) return;
  std::size_t busy = 0;
  for (auto& [address, session] : st.sessions) busy += session.busy || session.pinned;
  std::size_t idle = st.sessions.size() - busy;
  // Open another session only when waiting requests outnumber sessions that
  // are idle or about to arrive; never beyond the ceiling.
  while (st.sessions.size() + st.spawning < st.ceiling &&
         (st.queue.size() > idle + st.spawning ||
          st.sessions.size() + st.spawning < st.settings.min_sessions)) {
    spawn_one(self);
  }
}

void accept(pool_pointer self, Waiting waiting) {
  auto& st = self->state;
  st.metrics.requests++;
  const char* operation = waiting.is_stream ? "open_stream" : to_string(waiting.job.op);
  if (st.stopping) {
    fail_waiting(self, waiting, shutting_down_error(operation));
    return;
  }
  if (PooledSession* idle = st.find_idle(); idle != nullptr && st.queue.empty()) {
    if (waiting.is_stream) {
      dispatch_stream(self, *idle, std::move(waiting));
    } else {
      dispatch_job(self, *idle, std::move(waiting));
    }
    return;
  }
  if (st.queue.size() >= st.settings.queue_limit) {
    st.trace("overloaded", operation, "overloaded", 0, 0);
    fail_waiting(self, waiting,
                 Error::make(Condition::overloaded,
                             "all sessions are busy and " +
                                 std::to_string(st.settings.queue_limit) +
                                 " requests are already waiting",
                             operation));
    return;
  }
  st.queue.push_back(std::move(waiting));
  grow(self);
  schedule_sweep(self);
}

pool_actor::behavior_type pool_impl(pool_pointer self, supervisor_actor supervisor,
                                    PoolSettings settings) {
  auto& st = self->state;
  st.supervisor = std::move(supervisor);
  st.settings = std::move(settings);
  st.ceiling = std::max<std::size_t>(1, st.settings.max_sessions);
  st.metrics.sessions_max = st.ceiling;
  st.metrics.queue_limit = st.settings.queue_limit;
  self->set_down_handler([self](caf::down_msg& down) {
    auto& state = self->state;
    auto it = state.sessions.find(down.source);
    if (it == state.sessions.end()) return;
    state.sessions.erase(it);
    if (!state.stopping) {
      state.metrics.session_restarts++;
      state.trace("session_lost", "", "down", 0, 0);
      pump(self);
    }
  });
  return {
      [self](run_atom, Job& job) -> caf::result<JobResult> {
        Waiting waiting;
        waiting.job = std::move(job);
        if (waiting.job.deadline_ns == 0) {
          waiting.job.deadline_ns = deadline_after(self->state.settings.default_deadline);
        }
        waiting.job_promise = self->make_response_promise<JobResult>();
        waiting.accepted = Clock::now();
        auto promise = waiting.job_promise;
        accept(self, std::move(waiting));
        return promise;
      },
      [self](open_atom, StreamSpec& spec) -> caf::result<PinnedSession> {
        Waiting waiting;
        waiting.is_stream = true;
        waiting.spec = std::move(spec);
        if (waiting.spec.deadline_ns == 0) {
          waiting.spec.deadline_ns = deadline_after(self->state.settings.default_deadline);
        }
        waiting.stream_promise = self->make_response_promise<PinnedSession>();
        waiting.accepted = Clock::now();
        auto promise = waiting.stream_promise;
        accept(self, std::move(waiting));
        return promise;
      },
      [self](unpin_atom, session_actor& session, bool tainted) {
        if (auto* pooled = self->state.find(session.address())) {
          pooled->pinned = false;
          if (tainted) self->state.trace("stream", "abort", "closed", 0, 0);
        }
        pump(self);
      },
      [self](stats_atom) -> PoolMetrics {
        auto& state = self->state;
        PoolMetrics metrics = state.metrics;
        metrics.sessions_open = state.sessions.size();
        metrics.sessions_busy = 0;
        for (auto& [address, session] : state.sessions) {
          metrics.sessions_busy += session.busy || session.pinned;
        }
        metrics.queue_depth = state.queue.size();
        metrics.sessions_max = state.ceiling;
        for (auto& [operation, histogram] : state.latency) {
          auto& op = metrics.operations[operation];
          op.p50_us = histogram.percentile(0.50);
          op.p99_us = histogram.percentile(0.99);
          op.max_us = histogram.max();
        }
        return metrics;
      },
      [self](stop_atom) -> bool {
        auto& state = self->state;
        state.stopping = true;
        while (!state.queue.empty()) {
          Waiting waiting = std::move(state.queue.front());
          state.queue.pop_front();
          fail_waiting(self, waiting,
                       shutting_down_error(waiting.is_stream ? "open_stream"
                                                             : to_string(waiting.job.op)));
        }
        // Requests in flight are answered by their sessions before the exit
        // message (mailboxes are FIFO), or with broken_promise.
        for (auto& [address, session] : state.sessions) {
          self->send_exit(session.handle, caf::exit_reason::user_shutdown);
        }
        return true;
      },
      [self](sweep_atom) {
        self->state.sweep_scheduled = false;
        expire_waiting(self);
        pump(self);
        schedule_sweep(self);
      },
      [self](grow_atom) { grow(self); },
  };
}

}  // namespace

pool_actor spawn_token_pool(caf::actor_system& system, supervisor_actor supervisor,
                            PoolSettings settings) {
  return system.spawn(pool_impl, std::move(supervisor), std::move(settings));
}

}  // namespace hsmactor
