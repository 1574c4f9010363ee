// TokenCore: what every copy of a Token shares: the way in to the pool's
// sessions (admission), and the token's lifecycle (open, close, release).
// Internal: reached from the public classes through TokenAccess.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "actors/executor.hpp"
#include "actors/future.hpp"
#include "actors/job_queue.hpp"
#include "actors/library_registry.hpp"
#include "actors/process.hpp"
#include "actors/runtime.hpp"
#include "pool/internal/key_access.hpp"
#include "pool/pool_recorder.hpp"
#include "pool/key.hpp"
#include "pool/token_pool.hpp"

namespace hsmactor::internal {

class TokenCore;

/// The tokens one Hsm opened, so that ~Hsm closes them and waits for closes
/// in flight (also those running on the completion pool) before the actor
/// system goes.
class TokenRegistry {
 public:
  void add(const std::shared_ptr<TokenCore>& core);
  void close_started();
  void close_finished();
  /// Closes every token still open, each on the completion pool, and waits
  /// until no close is in flight; false if `bound` passed first.
  bool close_all(std::chrono::milliseconds bound);

 private:
  std::mutex mutex_;
  std::condition_variable idle_;
  std::vector<std::weak_ptr<TokenCore>> cores_;
  std::size_t closing_ = 0;
};

class TokenCore {
 public:
  struct Parts {
    std::shared_ptr<Runtime> runtime;
    std::shared_ptr<LibraryLease> lease;
    pool_actor pool;
    PoolChannel channel;
    std::shared_ptr<TraceHub> trace;
    std::shared_ptr<Executor> executor;
    std::shared_ptr<TokenRegistry> registry;
    CK_SLOT_ID slot = 0;
    std::string label;
    std::string module_path;
    bool logged_in = false;
    std::chrono::milliseconds default_deadline{30000};
  };

  explicit TokenCore(Parts parts);
  /// The last Token copy went: the closing runs on the completion pool.
  ~TokenCore();
  TokenCore(const TokenCore&) = delete;
  TokenCore& operator=(const TokenCore&) = delete;

  bool is_closed() const { return closed_.load(std::memory_order_acquire); }
  /// True in a child process forked after the token was opened.
  bool forked() const { return fork_generation() != forks_at_open_; }

  /// Closes once (blocking); a concurrent close waits for the first.
  void close();
  /// Claims the close for the caller; false if another close claimed it.
  bool claim_close();
  /// Does a claimed close: stops the pool, logs out, releases the module.
  void finish_close();

  /// The runtime while the token is open; null once it is closing.
  std::shared_ptr<Runtime> runtime_if_open() const;
  /// The pool actor while the token is open; empty once it is closing.
  pool_actor pool_if_open() const;

  /// The one way a single-shot request goes in: `job` is queued, or `done`
  /// is called at once on this thread (shutting_down, forked, overloaded).
  /// On success `key`'s handle cache is updated before `done` runs. `done`
  /// runs on whatever thread answers (a session actor's): it must only hand
  /// the result over, never run application code. `stage` (from a promise)
  /// lets the caller withdraw the job before it starts.
  template <class Done>
  void admit(Job job, std::chrono::nanoseconds deadline, const Key& key, Done done,
             internal::RequestStage* stage = nullptr) {
    const char* operation = to_string(job.op);
    if (is_closed()) return done(Result<JobResult>(closed_error(operation)));
    // The session actors are the parent's; nothing here would ever answer.
    if (forked()) return done(Result<JobResult>(forked_error(operation)));
    // `deadline` counts from now; a Job may carry an absolute one already.
    if (job.deadline_ns == 0) {
      job.deadline_ns = deadline_after(deadline.count() == 0 ? default_deadline_ : deadline);
    }
    auto& queue = *channel_.queue;
    queue.admit(queue.make_job(
        std::move(job),
        QueuedJob::Completion([key, done = std::move(done)](Result<JobResult> result) mutable {
          if (result) KeyAccess::remember(key, result->key_handle, result->key_generation);
          done(std::move(result));
        }),
        stage));
  }

  /// admit() for a caller that waits on a Future: the session thread only
  /// resolves the promise; what the application attached runs on the
  /// executor (`executor` overrides the token's for this request; null: the
  /// token's).
  template <class R, class Convert>
  Future<R> call(Job job, std::chrono::nanoseconds deadline,
                 const std::shared_ptr<Executor>& executor, const Key& key, Convert convert) {
    const char* operation = to_string(job.op);
    // Answered at once without a promise: the common refusals cost nothing.
    if (is_closed()) return make_ready_future<R>(closed_error(operation));
    if (forked()) return make_ready_future<R>(forked_error(operation));
    auto [promise, future] = make_promise<R>(executor ? executor : executor_);
    internal::RequestStage* stage = promise.request_stage();
    admit(std::move(job), deadline, key,
          [promise = std::move(promise), convert](Result<JobResult> result) mutable {
            if (!result) {
              promise.set_error(result.error());
              return;
            }
            promise.set_result(convert(*result));
          },
          stage);
    return std::move(future);
  }

  static Error closed_error(const char* operation);
  static Error forked_error(const char* operation);

  const std::shared_ptr<Executor>& executor() const { return executor_; }
  const std::shared_ptr<TraceHub>& trace() const { return trace_; }
  std::chrono::milliseconds default_deadline() const { return default_deadline_; }
  const std::string& label() const { return label_; }
  const std::string& module_path() const { return module_path_; }

 private:
  /// What closing needs, moved out so a TokenCore can go first.
  struct Closing {
    std::shared_ptr<Runtime> runtime;
    std::shared_ptr<LibraryLease> lease;
    pool_actor pool;
    CK_SLOT_ID slot = 0;
    bool logged_in = false;
  };
  Closing take_closing();
  static void shut_down(Closing closing);

  const PoolChannel channel_;
  const std::shared_ptr<TraceHub> trace_;
  const std::shared_ptr<Executor> executor_;
  const std::shared_ptr<TokenRegistry> registry_;
  const std::chrono::milliseconds default_deadline_;
  const std::string label_;
  const std::string module_path_;
  const std::uint64_t forks_at_open_;
  const CK_SLOT_ID slot_;
  const bool logged_in_;

  /// Guards the parts closing takes (runtime, lease, pool).
  mutable std::mutex parts_mutex_;
  std::shared_ptr<Runtime> runtime_;
  std::shared_ptr<LibraryLease> lease_;
  pool_actor pool_;

  std::atomic<bool> closed_{false};
  std::mutex close_mutex_;
  std::condition_variable close_done_;
  bool close_finished_ = false;
};

}  // namespace hsmactor::internal
