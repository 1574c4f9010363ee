// Future<T> and Promise<T>: one answer, delivered exactly once, across threads.
//
// A Promise is the producing end (an actor's reply handler), a Future the
// consuming end (the caller's thread). The answer is a Result<T>: a value or an
// Error, never an exception. A promise that is dropped without an answer
// resolves its future with Condition::broken_promise, so a request whose actor
// died still gets its one answer instead of hanging.
//
// Usage:
//   auto [promise, future] = make_promise<Bytes>();
//   send_to_actor(SharedPromise<Bytes>(std::move(promise)));  // the actor answers
//   Result<Bytes> signature = future.get(std::chrono::seconds(5));
//   if (!signature) log(signature.error().message());   // deadline_exceeded, broken_promise, ...
//
// Rules:
// - Resolution is exactly-once: the first set_value / set_error / set_result
//   (or the broken-promise resolution on destruction) wins; later calls return
//   false and change nothing.
// - A Future is consumed by get() returning its answer, or by then(): afterwards
//   it is invalid (valid() is false) and a further get() returns an Error with
//   Condition::internal_error. A get(timeout) that times out consumes nothing.
// - Promise is move-only. SharedPromise is its copyable form for CAF 0.17, which
//   copies message payloads and handler captures: all copies share one answer,
//   and the future is broken when the last copy is destroyed unanswered.
// - One thread may produce while another consumes, and a then() callback races
//   safely with resolution (it runs exactly once). A single Future object is for
//   one thread at a time; set_* on a Promise or on any SharedPromise copies may
//   race from several threads (the first wins), but destroying or moving a
//   Promise must not race with its other uses.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "actors/internal/future_state.hpp"
#include "pkcs11/error.hpp"

namespace hsmactor {

template <class T>
class Promise;

/// Lets a caller give up a request before a session starts it (an Asio
/// cancellation, a client that went away). Copyable; an empty one (from a
/// ready or invalid future) withdraws nothing.
class Withdrawal {
 public:
  Withdrawal() = default;

  /// Asks that the request never start. Returns true if no session had
  /// started it: it will not reach the module, and its future resolves, once,
  /// with Condition::withdrawn, or with what answered it first without a
  /// session (a passed deadline, overload, shutdown; then true says only that
  /// it never ran). Returns false if a session started it (or this request
  /// cannot be withdrawn): its answer comes as usual.
  bool withdraw() const { return stage_ != nullptr && stage_->try_withdraw(); }

 private:
  template <class T>
  friend class Future;
  explicit Withdrawal(std::shared_ptr<internal::RequestStage> stage) : stage_(std::move(stage)) {}
  std::shared_ptr<internal::RequestStage> stage_;
};

/// The consuming end of a one-shot answer of type Result<T>.
///
/// Default-constructed, moved-from and consumed futures are invalid; get() on
/// them returns an internal_error at once and then() calls back with it.
template <class T>
class Future {
 public:
  /// Constructs an invalid future.
  Future() = default;
  Future(Future&&) noexcept = default;
  Future& operator=(Future&&) noexcept = default;
  Future(const Future&) = delete;
  Future& operator=(const Future&) = delete;

  /// Returns whether the future still has an answer coming or waiting.
  bool valid() const { return state_ != nullptr; }

  /// Returns whether the answer is here, so get() returns without blocking
  /// (false for an invalid future).
  bool ready() const { return state_ != nullptr && state_->ready(); }

  /// Returns the answer, blocking until it arrives; the future becomes invalid.
  Result<T> get() {
    if (!state_) return invalid_error();
    auto state = std::move(state_);
    return state->take();
  }

  /// Returns the answer if it arrives within `timeout` (the future becomes
  /// invalid), or else an Error with Condition::wait_timeout (the future
  /// stays valid and may be waited on again; the request's own deadline
  /// answers deadline_exceeded instead).
  template <class Rep, class Period>
  Result<T> get(std::chrono::duration<Rep, Period> timeout) {
    if (!state_) return invalid_error();
    // Beyond a century, "now + timeout" could overflow the clock: wait forever.
    // Compared in floating-point seconds so that no duration type overflows.
    using Seconds = std::chrono::duration<double>;
    if (Seconds(timeout) > Seconds(std::chrono::hours(24 * 365 * 100))) return get();
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::ceil<std::chrono::steady_clock::duration>(timeout);
    std::optional<Result<T>> result = state_->take_until(deadline);
    if (!result) {
      return Error::make(Condition::wait_timeout, "the future was not resolved in time");
    }
    state_.reset();
    return std::move(*result);
  }

  /// Returns what withdraws this request before it starts; take it before
  /// then() or get() consume the future. Only requests a Token queues can be
  /// withdrawn; others (ready futures, plain promises) ignore it.
  Withdrawal withdrawal() const {
    if (!state_ || state_->ready()) return Withdrawal();
    return Withdrawal(state_);
  }

  /// Hands the answer to `callback`, a `void(Result<T>)` callable (move-only is
  /// fine); the future becomes invalid.
  ///
  /// If the answer is already here (or the future is invalid), the callback runs
  /// now on the calling thread; otherwise it runs later on the promise's
  /// executor (hsmactor's completion pool unless the token was given one),
  /// never on the thread that resolves the promise. The callback may block and
  /// may call hsmactor again; it holds only its executor thread meanwhile.
  template <class F>
  void then(F&& callback) {
    static_assert(std::is_invocable_v<std::decay_t<F>&, Result<T>>,
                  "then() needs a callable taking Result<T>");
    if (!state_) {
      std::decay_t<F> function(std::forward<F>(callback));
      std::invoke(function, Result<T>(invalid_error()));
      return;
    }
    auto state = std::move(state_);
    state->set_callback(internal::Callback<T>(std::forward<F>(callback)));
  }

 private:
  friend class Promise<T>;

  explicit Future(std::shared_ptr<internal::FutureState<T>> state) : state_(std::move(state)) {}

  static Error invalid_error() {
    return Error::make(Condition::internal_error,
                       "invalid future (default-constructed, moved from, or already consumed)");
  }

  std::shared_ptr<internal::FutureState<T>> state_;
};

/// The producing end of a one-shot answer of type Result<T>; move-only.
///
/// Destroying (or move-assigning over) a promise that has not answered resolves
/// its future with Condition::broken_promise.
template <class T>
class Promise {
 public:
  /// Constructs a promise with a fresh, unresolved state; a callback waiting on
  /// its future runs on `executor` (hsmactor's completion pool when null).
  explicit Promise(std::shared_ptr<Executor> executor = nullptr)
      : state_(std::make_shared<internal::FutureState<T>>(std::move(executor))) {}
  Promise(Promise&&) noexcept = default;
  Promise(const Promise&) = delete;
  Promise& operator=(const Promise&) = delete;

  Promise& operator=(Promise&& other) noexcept {
    if (this != &other) {
      break_if_unanswered();
      state_ = std::move(other.state_);
    }
    return *this;
  }

  ~Promise() { break_if_unanswered(); }

  /// Returns the future of this promise; the second and later calls (and calls on
  /// a moved-from promise) return a future already holding an internal_error.
  Future<T> get_future() {
    if (!state_) return broken_future("get_future() on a moved-from promise");
    if (!state_->claim_future()) return broken_future("get_future() called twice");
    return Future<T>(state_);
  }

  /// Resolves the future with `value`; returns false if already resolved.
  template <class U = T, std::enable_if_t<!std::is_void_v<U>, int> = 0>
  bool set_value(internal::NoDeduce<U> value) {
    return set_result(Result<T>(std::move(value)));
  }

  /// Resolves a Future<void> with success; returns false if already resolved.
  template <class U = T, std::enable_if_t<std::is_void_v<U>, int> = 0>
  bool set_value() {
    return set_result(success());
  }

  /// Resolves the future with `error`; returns false if already resolved.
  bool set_error(Error error) { return set_result(Result<T>(std::move(error))); }

  /// Resolves the future with `result`; returns false if already resolved (or if
  /// this promise was moved from).
  bool set_result(Result<T> result) {
    if (!state_) return false;
    return state_->resolve(std::move(result));
  }

  /// Returns whether this promise still owns a state (false once moved from).
  bool valid() const { return state_ != nullptr; }

  /// The request's start-or-withdraw flag, for the queue that serves it
  /// (internal; valid while this promise's state lives).
  internal::RequestStage* request_stage() const { return state_.get(); }

 private:
  static Future<T> broken_future(const char* detail) {
    Promise<T> promise;
    Future<T> future = promise.get_future();
    promise.set_error(Error::make(Condition::internal_error, detail));
    return future;
  }

  void break_if_unanswered() {
    if (state_ && !state_->resolved()) {
      state_->resolve(Error::make(Condition::broken_promise,
                                  "the promise was dropped without an answer"));
    }
  }

  std::shared_ptr<internal::FutureState<T>> state_;
};

/// A copyable Promise: all copies answer the same future, the first answer wins,
/// and the future is broken when the last copy is destroyed unanswered.
///
/// Use it where CAF 0.17 demands copy-constructible values: message payloads and
/// the captures of message handlers.
template <class T>
class SharedPromise {
 public:
  /// Constructs an empty shared promise that answers nothing (valid() is false).
  SharedPromise() = default;

  /// Takes over `promise`; get its future before handing it over.
  explicit SharedPromise(Promise<T> promise)
      : promise_(std::make_shared<Promise<T>>(std::move(promise))) {}

  /// Resolves the future with `value`; returns false if already resolved.
  template <class U = T, std::enable_if_t<!std::is_void_v<U>, int> = 0>
  bool set_value(internal::NoDeduce<U> value) const {
    return promise_ != nullptr && promise_->set_value(std::move(value));
  }

  /// Resolves a Future<void> with success; returns false if already resolved.
  template <class U = T, std::enable_if_t<std::is_void_v<U>, int> = 0>
  bool set_value() const {
    return promise_ != nullptr && promise_->set_value();
  }

  /// Resolves the future with `error`; returns false if already resolved.
  bool set_error(Error error) const {
    return promise_ != nullptr && promise_->set_error(std::move(error));
  }

  /// Resolves the future with `result`; returns false if already resolved.
  bool set_result(Result<T> result) const {
    return promise_ != nullptr && promise_->set_result(std::move(result));
  }

  /// Returns whether this copy is attached to a promise.
  bool valid() const { return promise_ != nullptr && promise_->valid(); }

 private:
  // Promise's own methods are safe to call from several threads at once (they
  // only read state_), so copies need no extra lock; the Promise destructor, run
  // by whichever copy goes last, breaks an unanswered future.
  std::shared_ptr<Promise<T>> promise_;
};

/// Returns a connected promise and future, ready for `auto [promise, future] = ...`;
/// a callback on the future runs on `executor` (the completion pool when null).
template <class T>
std::pair<Promise<T>, Future<T>> make_promise(std::shared_ptr<Executor> executor = nullptr) {
  Promise<T> promise(std::move(executor));
  Future<T> future = promise.get_future();
  return {std::move(promise), std::move(future)};
}

/// Returns a future that already holds `result`.
template <class T>
Future<T> make_ready_future(Result<T> result) {
  Promise<T> promise;
  Future<T> future = promise.get_future();
  promise.set_result(std::move(result));
  return future;
}

}  // namespace hsmactor
