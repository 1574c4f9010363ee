#include "actors/session_actor.hpp"

#include "actors/session_core.hpp"
#include "pkcs11/rv.hpp"

namespace hsmactor {
namespace {

struct SessionState {
  std::shared_ptr<pkcs11::Module> module;
  supervisor_actor supervisor;
  CK_SLOT_ID slot = 0;
  std::uint64_t generation = 0;
  pkcs11::Session session;
  KeyCache keys;
  bool streaming = false;
  StreamKind stream_kind = StreamKind::digest;
  std::uint64_t streamed_bytes = 0;
  std::uint64_t restarts = 0;
  /// The token is supposed to be logged in (the supervisor holds its login).
  bool login_expected = false;
  const char* name = "hsmactor.session";

  /// Opens the session if there is none. A new session on a token that should
  /// be logged in but is not (it was reset) reports CKR_USER_NOT_LOGGED_IN, so
  /// the caller heals instead of finding no private keys.
  Result<void> ensure_open() {
    if (session.is_open()) return success();
    auto opened = module->open_session(slot);
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
    streamed_bytes = 0;
  }
};

using session_pointer = session_actor::stateful_pointer<SessionState>;

Error stale_retry_failed(const Error& last) {
  return last.as(Condition::stale_session_retry_failed,
                 "the session went stale, was replaced, and the retry failed too");
}

// Runs `job` after a stale code: heals through the supervisor, then retries
// once on a new session. Later messages wait until this finishes.
caf::result<JobResult> heal_and_retry(session_pointer self, Job job, Error first) {
  auto& st = self->state;
  st.discard_session();
  if (!may_retry_after_stale_session(job.op)) return to_caf_error(first);
  auto promise = self->make_response_promise<JobResult>();
  auto timeout = time_left(job.deadline_ns);
  if (timeout.count() == 0) {
    return to_caf_error(Error::make(Condition::deadline_exceeded,
                                    "the deadline passed during a session restart",
                                    to_string(job.op)));
  }
  self->request(st.supervisor, timeout, heal_atom::value, std::uint64_t{st.slot},
                std::uint64_t{first.rv()}, st.generation)
      .await(
          [self, job, promise](std::uint64_t generation) mutable {
            auto& state = self->state;
            state.generation = generation;
            state.restarts++;
            auto opened = state.ensure_open();
            if (!opened) {
              promise.deliver(to_caf_error(stale_retry_failed(opened.error())));
              return;
            }
            auto retried = execute_job(state.session, job, state.generation, state.keys);
            if (retried) {
              retried->attempts = 2;
              promise.deliver(std::move(*retried));
              return;
            }
            if (pkcs11::is_stale_session_rv(retried.error().rv())) {
              state.discard_session();
              promise.deliver(to_caf_error(stale_retry_failed(retried.error())));
              return;
            }
            promise.deliver(to_caf_error(retried.error()));
          },
          [self, promise, job](caf::error& failure) mutable {
            // The heal itself failed (token absent, login refused, timeout).
            Error error = from_caf_error(failure).in_operation(to_string(job.op));
            promise.deliver(to_caf_error(error));
          });
  return promise;
}

Error pinned_error(const char* operation) {
  return Error::make(Condition::invalid_argument,
                     "the session is pinned by an unfinished multi-part stream", operation);
}

// Ends a stream after a failure: the operation may still be active inside the
// module, so the session is closed rather than reused.
caf::error fail_stream(session_pointer self, const Error& error) {
  self->state.discard_session();
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
      [self](run_atom, Job& job) -> caf::result<JobResult> {
        auto& st = self->state;
        const char* operation = to_string(job.op);
        if (st.streaming) return to_caf_error(pinned_error(operation));
        if (time_left(job.deadline_ns).count() == 0) {
          return to_caf_error(Error::make(Condition::deadline_exceeded,
                                          "the deadline passed before the request started",
                                          operation));
        }
        auto opened = st.ensure_open();
        if (!opened) {
          Error error = opened.error().in_operation(operation);
          if (pkcs11::is_stale_session_rv(error.rv())) return heal_and_retry(self, job, error);
          return to_caf_error(error);
        }
        auto result = execute_job(st.session, job, st.generation, st.keys);
        if (result) return std::move(*result);
        if (pkcs11::is_stale_session_rv(result.error().rv())) {
          return heal_and_retry(self, std::move(job), result.error());
        }
        return to_caf_error(result.error());
      },
      [self](s_begin_atom, StreamSpec& spec) -> caf::result<std::uint64_t> {
        auto& st = self->state;
        if (st.streaming) return to_caf_error(pinned_error("stream_begin"));
        auto opened = st.ensure_open();
        if (!opened) return fail_stream(self, opened.error().in_operation("stream_begin"));
        Result<void> started = success();
        if (spec.kind == StreamKind::digest) {
          started = st.session.digest_init(spec.mechanism);
        } else {
          auto key = resolve_key(st.session, spec.key, st.generation, st.keys);
          if (!key) return fail_stream(self, key.error().in_operation("stream_begin"));
          started = spec.kind == StreamKind::sign ? st.session.sign_init(spec.mechanism, *key)
                                                  : st.session.verify_init(spec.mechanism, *key);
        }
        if (!started) return fail_stream(self, started.error());
        st.streaming = true;
        st.stream_kind = spec.kind;
        st.streamed_bytes = 0;
        return std::uint64_t{st.session.handle()};
      },
      [self](s_update_atom, Bytes& data) -> caf::result<std::uint64_t> {
        auto& st = self->state;
        if (!st.streaming) {
          return to_caf_error(
              Error::make(Condition::invalid_argument, "no stream is open", "stream_update"));
        }
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
      [self](s_finish_atom, Bytes& signature) -> caf::result<JobResult> {
        auto& st = self->state;
        if (!st.streaming) {
          return to_caf_error(
              Error::make(Condition::invalid_argument, "no stream is open", "stream_finish"));
        }
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
        st.streaming = false;
        st.streamed_bytes = 0;
        return result;
      },
      [self](s_abort_atom) -> bool {
        // PKCS#11 2.40 cannot cancel an operation: closing is the only way to
        // make sure nothing half-done is ever shared.
        if (self->state.streaming) self->state.discard_session();
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
