#include "pool/stream.hpp"

#include "pool/internal/key_access.hpp"
#include "pool/internal/stream_state.hpp"
#include "pool/internal/token_core.hpp"

namespace hsmactor {
namespace internal {

void StreamState::end(bool tainted) {
  if (done.exchange(true)) return;
  release(*core, stream_id, tainted);
}

void StreamState::release(TokenCore& core, std::uint64_t stream_id, bool tainted) {
  if (core.forked()) return;
  // Once the token is closing, its pool stops every session anyway.
  if (auto pool = core.pool_if_open()) caf::anon_send(pool, unpin_atom::value, stream_id, tainted);
}

Error StreamState::finished_error(const char* operation) const {
  if (core->is_closed()) return TokenCore::closed_error(operation);
  return Error::make(Condition::invalid_argument, "the stream is finished", operation);
}

std::optional<Error> StreamState::refuse(const StreamState* state, const char* operation) {
  if (state == nullptr) {
    return Error::make(Condition::invalid_argument, "an empty stream", operation);
  }
  if (state->core->forked()) return TokenCore::forked_error(operation);
  if (state->core->is_closed()) return TokenCore::closed_error(operation);
  if (state->done.load()) return state->finished_error(operation);
  return std::nullopt;
}

Error StreamState::step_error(const Error& error, const char* operation) const {
  // A step that met the closing token (its session stopped under it) answers
  // as every request on a closed token does.
  if (core->is_closed()) return TokenCore::closed_error(operation);
  return error;
}

// Sends one step to the stream's session; the answer resolves a promise
// whose continuation runs on the token's executor.
template <class R, class... Ts>
Future<R> ask_session(const std::shared_ptr<StreamState>& state, const char* operation,
                      Ts... args) {
  auto runtime = state->core->runtime_if_open();
  auto session = caf::actor_cast<session_actor>(state->session);
  if (!runtime) return make_ready_future<R>(TokenCore::closed_error(operation));
  if (!session) {
    state->end(/*tainted=*/true);
    return make_ready_future<R>(Error::make(
        Condition::stream_interrupted, "the stream's session is gone", operation));
  }
  return runtime->ask<R>(session, state->deadline, std::move(args)...);
}

}  // namespace internal

using internal::StreamState;

Stream::~Stream() { abort(); }
Stream::Stream(Stream&&) noexcept = default;
Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    abort();
    state_ = std::move(other.state_);
  }
  return *this;
}

Future<std::uint64_t> Stream::update(ByteView chunk) {
  if (auto refused = StreamState::refuse(state_.get(), "stream_update")) {
    return make_ready_future<std::uint64_t>(std::move(*refused));
  }
  auto state = state_;
  auto [promise, future] = make_promise<std::uint64_t>(state->executor);
  internal::ask_session<std::uint64_t>(state, "stream_update", s_update_atom::value,
                                       state->stream_id, chunk.to_bytes())
      .then([promise = std::move(promise), state](Result<std::uint64_t> result) mutable {
        if (!result) {
          // Whatever failed (the module, or the wait for it), the operation
          // may still be active: the session must be closed, not shared.
          state->end(/*tainted=*/true);
          promise.set_error(state->step_error(result.error(), "stream_update"));
          return;
        }
        promise.set_result(std::move(result));
      });
  return std::move(future);
}

namespace {

// Ends `state`'s stream with s_finish (carrying `signature` for verify
// streams) and converts the JobResult with `convert`.
template <class R, class Convert>
Future<R> finish_stream(const std::shared_ptr<StreamState>& state, Bytes signature,
                        Convert convert) {
  if (auto refused = StreamState::refuse(state.get(), "stream_finish")) {
    return make_ready_future<R>(std::move(*refused));
  }
  auto [promise, future] = make_promise<R>(state->executor);
  internal::ask_session<JobResult>(state, "stream_finish", s_finish_atom::value,
                                   state->stream_id, std::move(signature))
      .then([promise = std::move(promise), state, convert](Result<JobResult> result) mutable {
        state->end(/*tainted=*/!result);
        if (!result) {
          promise.set_error(state->step_error(result.error(), "stream_finish"));
        } else {
          promise.set_value(convert(*result));
        }
      });
  return std::move(future);
}

}  // namespace

Future<Bytes> Stream::finish() {
  return finish_stream<Bytes>(state_, Bytes(), [](JobResult& r) { return std::move(r.bytes); });
}

Future<bool> Stream::finish_verify(ByteView signature) {
  return finish_stream<bool>(state_, signature.to_bytes(), [](JobResult& r) { return r.verified; });
}

void Stream::abort() {
  if (state_) state_->end(true);
}

// ---- open_stream ----

namespace {

// A stream's begin waits for a session (the pool answers by the deadline,
// deadline_exceeded while every session is pinned); this bound is only a
// backstop behind the pool's own (deadline + the 60 s a session may take to
// get to the request).
constexpr auto kStreamBackstop = std::chrono::seconds(90);

}  // namespace

Future<Stream> internal::open_stream(const std::shared_ptr<TokenCore>& core, StreamKind kind,
                                     const pkcs11::Mechanism& mechanism, const Key& key,
                                     std::chrono::nanoseconds deadline_override,
                                     std::shared_ptr<Executor> executor) {
  // Checked first: in a child the parts' mutex may be copied held.
  if (core->forked()) {
    return make_ready_future<Stream>(internal::TokenCore::forked_error("open_stream"));
  }
  auto runtime = core->runtime_if_open();
  auto pool = core->pool_if_open();
  if (!runtime || !pool || core->is_closed()) {
    return make_ready_future<Stream>(internal::TokenCore::closed_error("open_stream"));
  }
  StreamSpec spec;
  spec.kind = kind;
  spec.mechanism = mechanism;
  spec.key = internal::KeyAccess::ref(key);
  auto deadline = deadline_override.count() == 0
                      ? std::chrono::nanoseconds(core->default_deadline())
                      : deadline_override;
  spec.deadline_ns = deadline_after(deadline);
  spec.stream_id = next_epoch();
  auto stream_id = spec.stream_id;
  auto step_deadline = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::max(deadline, std::chrono::nanoseconds(1)));
  if (!executor) executor = core->executor();
  auto [promise, future] = make_promise<Stream>(executor);
  runtime
      ->ask<PinnedSession>(pool, time_left(spec.deadline_ns) + kStreamBackstop, open_atom::value,
                           std::move(spec))
      .then([promise = std::move(promise), core, stream_id, step_deadline,
             executor](Result<PinnedSession> pinned) mutable {
        if (!pinned) {
          // Reconcile a give-up with the pool: if a session was pinned after
          // all, it is aborted and given back.
          StreamState::release(*core, stream_id, /*tainted=*/true);
          promise.set_error(core->is_closed()
                                ? internal::TokenCore::closed_error("open_stream")
                                : pinned.error());
          return;
        }
        auto state = std::make_shared<StreamState>();
        state->core = core;
        state->session = pinned->session.address();
        state->stream_id = stream_id;
        state->deadline = step_deadline;
        state->executor = executor;
        // A future nobody waits for any more drops the Stream, which gives
        // its session back.
        promise.set_value(internal::StreamAccess::make(std::move(state)));
      });
  return std::move(future);
}

}  // namespace hsmactor
