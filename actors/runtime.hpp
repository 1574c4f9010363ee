// Runtime: the actor system hsmactor runs on, and the bridge that turns
// control requests from plain threads (open a token, login, stream steps,
// metrics) into Futures. Single-shot jobs do not use it: they go through a
// pool's JobQueue (see actors/job_queue.hpp).
//
// A Runtime either owns its actor system or borrows the application's. The
// bridge is one long-lived event-based actor: a plain thread hands it a job,
// the bridge sends the request with a timeout and resolves a promise with the
// answer or the error, so every Future resolves exactly once (a value, an
// error, deadline_exceeded, or broken_promise if the bridge itself is gone).
//
// Usage:
//   auto runtime = Runtime::create();
//   Future<SessionStatus> f = runtime->ask<SessionStatus>(session, 5s, status_atom::value);
//   Result<SessionStatus> status = f.get();
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>

#include <caf/all.hpp>

#include "actors/future.hpp"
#include "actors/options.hpp"
#include "actors/protocol.hpp"

namespace hsmactor {

/// A job the bridge runs on its own actor.
struct BridgeJob {
  std::function<void(caf::event_based_actor*)> run;
};

class Runtime {
 public:
  /// Returns a runtime with an actor system of its own.
  static std::shared_ptr<Runtime> create(const RuntimeOptions& options = {});
  /// Returns a runtime on the application's actor system, which must outlive it.
  static std::shared_ptr<Runtime> borrow(caf::actor_system& system);

  /// Stops the bridge and, when owned, shuts the actor system down once its
  /// actors have stopped, waiting at most RuntimeOptions::shutdown_timeout:
  /// an actor stuck in a PKCS#11 call that never returns would block the
  /// system's destructor forever, so then the system is left running (leaked).
  /// In a child process after fork() it touches nothing (the threads are the
  /// parent's) and leaks the system on purpose.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  caf::actor_system& system() { return *system_; }
  /// Returns true in a child process forked after this runtime was made.
  bool forked() const;

  /// Runs `job` on the bridge actor (from any non-actor thread).
  void post(std::function<void(caf::event_based_actor*)> job);

  /// Sends a request to `target` and returns a future of its answer; resolves
  /// with deadline_exceeded after `timeout`. Never blocks. The bridge only
  /// resolves the promise: a continuation on the future runs on `executor`
  /// (the completion pool when null), never on the bridge's thread.
  template <class R, class Handle, class... Ts>
  Future<R> ask(const Handle& target, std::chrono::nanoseconds timeout, Ts... args) {
    return ask_on<R>(nullptr, target, timeout, std::move(args)...);
  }

  /// ask() whose continuations run on `executor`.
  template <class R, class Handle, class... Ts>
  Future<R> ask_on(std::shared_ptr<Executor> executor, const Handle& target,
                   std::chrono::nanoseconds timeout, Ts... args) {
    if (forked()) {
      return make_ready_future<R>(
          Error::make(Condition::forked, "this runtime belongs to the parent process"));
    }
    auto [promise, future] = make_promise<R>(std::move(executor));
    // Shared: CAF copies handlers. If the bridge never runs the job (it is
    // shutting down), the last copy's destructor answers broken_promise.
    SharedPromise<R> shared(std::move(promise));
    post([target, timeout, shared, args...](caf::event_based_actor* self) {
      self->request(target, timeout, args...)
          .then([shared](R& value) { shared.set_value(std::move(value)); },
                [shared](caf::error& error) { shared.set_error(from_caf_error(error)); });
    });
    return std::move(future);
  }

 private:
  Runtime() = default;
  void start_bridge();

  std::unique_ptr<caf::actor_system_config> config_;
  std::unique_ptr<caf::actor_system> owned_system_;
  caf::actor_system* system_ = nullptr;
  caf::actor bridge_;
  std::chrono::milliseconds shutdown_timeout_{30000};
  pid_t pid_ = 0;
  std::uint64_t forks_at_start_ = 0;
};

}  // namespace hsmactor

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hsmactor::BridgeJob)
