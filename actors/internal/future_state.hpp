// The state one Promise<T> and one Future<T> share; see actors/future.hpp.
//
// Not part of the public API: include actors/future.hpp instead.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

#include "actors/executor.hpp"
#include "actors/internal/core_budget.hpp"
#include "actors/process.hpp"
#include "pkcs11/error.hpp"

namespace hsmactor::internal {

/// `T`, in a form template argument deduction ignores (C++20's type_identity).
///
/// `set_value(NoDeduce<U> value)` with `U = T` takes exactly a T, so a Promise<long>
/// accepts `set_value(1)`, and a Promise<void> has no such overload at all.
template <class T>
struct NoDeduceImpl {
  using type = T;
};
template <class T>
using NoDeduce = typename NoDeduceImpl<T>::type;

/// A move-only `void(Result<T>)` callable.
///
/// std::function would demand copyable callables, which rules out callbacks that
/// capture a Promise, a unique_ptr or any other move-only answer channel.
template <class T>
class Callback {
 public:
  Callback() = default;

  /// Wraps `function`, which must be invocable with a Result<T>.
  template <class F, class = std::enable_if_t<!std::is_same_v<std::decay_t<F>, Callback>>>
  explicit Callback(F&& function)
      : impl_(std::make_unique<Impl<std::decay_t<F>>>(std::forward<F>(function))) {}

  /// Returns whether a callable is held.
  explicit operator bool() const { return impl_ != nullptr; }

  /// Calls the held callable with `result`.
  void operator()(Result<T> result) { impl_->call(std::move(result)); }

 private:
  struct Base {
    virtual ~Base() = default;
    virtual void call(Result<T> result) = 0;
  };

  template <class F>
  struct Impl final : Base {
    explicit Impl(F f) : function(std::move(f)) {}
    void call(Result<T> result) override { std::invoke(function, std::move(result)); }
    F function;
  };

  std::unique_ptr<Base> impl_;
};

/// Before a waiting thread sleeps on its condition variable it spins a
/// little: most HSM answers come within tens of microseconds, and a futex
/// sleep and wake-up costs about as much again. Only a few threads spin at a
/// time (half the cores), so spinning never starves the threads doing work.
struct SpinBeforeSleep {
  static constexpr std::chrono::microseconds kBudget{100};

  /// Returns when `done()` holds or the budget (or `deadline`) is spent.
  template <class Done>
  static void wait(Done done, std::chrono::steady_clock::time_point deadline =
                                  std::chrono::steady_clock::time_point::max()) {
    if (done() || !CoreBudget::try_enter_spinning()) return;
    auto until = std::min(deadline, std::chrono::steady_clock::now() + kBudget);
    for (unsigned round = 1; !done(); ++round) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
      if ((round & 31) == 0 && std::chrono::steady_clock::now() >= until) break;
    }
    CoreBudget::leave();
  }
};

/// The rendezvous of one promise and one future: a mutex, a condition variable,
/// and either the result or the callback waiting for it.
///
/// States: pending (neither result nor callback), pending with a callback,
/// resolved holding the result, and consumed (the result went to get() or to the
/// callback). resolve() and set_callback() decide under the mutex which side
/// calls the callback, so it runs exactly once and never under the lock.
///
/// Where the callback runs: a callback waiting when the answer arrives is
/// posted to the executor (the resolving thread is usually a session actor's,
/// which must never run application code); one registered after the answer
/// runs at once on the registering thread.
///
/// Fork: a state that was still unresolved when the process forked answers
/// Condition::forked in the child (its producer does not exist there), without
/// touching the mutex, which a parent thread may have held at the fork.
/// Whether a request has started on a session or was withdrawn first; the
/// first to move it from `waiting` wins, so a request either runs or never
/// reaches the module.
class RequestStage {
 public:
  /// The session's side: true if the request may run (it was not withdrawn).
  bool try_start() {
    std::uint8_t expected = kWaiting;
    return stage_.compare_exchange_strong(expected, kStarted) || expected == kStarted;
  }
  /// The caller's side: true if the request had not started and now never will.
  bool try_withdraw() {
    std::uint8_t expected = kWaiting;
    return stage_.compare_exchange_strong(expected, kWithdrawn) || expected == kWithdrawn;
  }

 private:
  enum : std::uint8_t { kWaiting, kStarted, kWithdrawn };
  std::atomic<std::uint8_t> stage_{kWaiting};
};

template <class T>
class FutureState : public RequestStage {
 public:
  /// A state whose callback is posted to `executor` (the default one if null).
  explicit FutureState(std::shared_ptr<Executor> executor = nullptr)
      : executor_(std::move(executor)), born_(fork_generation()) {}

  /// Stores `result`, or hands it to a waiting callback; returns false if the
  /// state was already resolved (the first answer wins).
  bool resolve(Result<T> result) {
    Callback<T> callback;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (resolved_.load(std::memory_order_relaxed)) return false;
      resolved_.store(true, std::memory_order_release);
      if (callback_) {
        callback = std::move(callback_);
      } else {
        result_.emplace(std::move(result));
      }
    }
    if (!callback) {
      // Published and notified after unlocking: a spinning or woken waiter
      // that finds the mutex still held would sleep on it and need a second
      // wake-up (two system calls more per request). The caller of resolve()
      // keeps this state alive until it returns.
      stored_.store(true, std::memory_order_release);
      ready_.notify_all();
      return true;
    }
    // Never here: this thread may be a session actor's. Posted without the
    // lock, so a callback that resolves other promises cannot deadlock on it.
    post_to(executor_, Task([callback = std::move(callback),
                                   result = std::move(result)]() mutable {
      callback(std::move(result));
    }));
    return true;
  }

  /// Runs `callback` now (on this thread) if the result is here, otherwise keeps
  /// it for the thread that resolves.
  void set_callback(Callback<T> callback) {
    if (forked_while_pending()) {
      callback(Result<T>(forked_error()));
      return;
    }
    std::optional<Result<T>> result;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!resolved_.load(std::memory_order_relaxed)) {
        callback_ = std::move(callback);
        return;
      }
      result.swap(result_);
    }
    if (!result) {
      // The result was taken already; Future makes that unreachable, but an
      // answer is still owed.
      result.emplace(consumed_error());
    }
    callback(std::move(*result));
  }

  /// Returns whether the state was resolved: a hint that lets a dropped
  /// promise skip building a broken_promise error it would not deliver.
  bool resolved() const { return resolved_.load(std::memory_order_acquire); }

  /// Returns whether a result is stored (the Future has not taken it yet).
  bool ready() const { return stored_.load(std::memory_order_acquire); }

  /// Blocks until resolved, then moves the result out.
  Result<T> take() {
    if (forked_while_pending()) return forked_error();
    SpinBeforeSleep::wait([this] { return stored_.load(std::memory_order_acquire); });
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [this] { return resolved_.load(std::memory_order_relaxed); });
    return take_locked();
  }

  /// Waits until `deadline` at most; moves the result out if resolved in time,
  /// otherwise returns nullopt and leaves the state as it was.
  std::optional<Result<T>> take_until(std::chrono::steady_clock::time_point deadline) {
    if (forked_while_pending()) return Result<T>(forked_error());
    SpinBeforeSleep::wait([this] { return stored_.load(std::memory_order_acquire); }, deadline);
    std::unique_lock<std::mutex> lock(mutex_);
    if (!ready_.wait_until(lock, deadline,
                           [this] { return resolved_.load(std::memory_order_relaxed); })) {
      return std::nullopt;
    }
    return take_locked();
  }

  /// Returns true the first time it is called, false afterwards.
  bool claim_future() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (future_claimed_) return false;
    future_claimed_ = true;
    return true;
  }

 private:
  /// True in a child process when the answer had not arrived by the fork.
  bool forked_while_pending() const {
    return born_ != fork_generation() && !stored_.load(std::memory_order_acquire);
  }
  static Error forked_error() {
    return Error::make(Condition::forked,
                       "the process forked before the answer arrived; it never will here");
  }

  static Error consumed_error() {
    return Error::make(Condition::internal_error, "the future's result was already taken");
  }

  Result<T> take_locked() {
    if (!result_) return consumed_error();
    Result<T> result = std::move(*result_);
    result_.reset();
    return result;
  }

  mutable std::mutex mutex_;
  std::condition_variable ready_;
  /// Written under the mutex; read without it only as a hint (resolved()).
  std::atomic<bool> resolved_{false};
  /// A result is stored and the mutex released: spinning waiters watch this.
  std::atomic<bool> stored_{false};
  bool future_claimed_ = false;
  std::optional<Result<T>> result_;
  Callback<T> callback_;
  const std::shared_ptr<Executor> executor_;
  const std::uint64_t born_;
};

}  // namespace hsmactor::internal
