// hsmactor strategies: the same token through hsmactor's pool, reached six
// ways: caller threads blocking on futures, caller threads with a bounded
// window of callbacks, CAF actors sending Jobs to the pool's handle, Asio
// handlers on io_context threads (async_sign with a LoopExecutor), loop
// threads draining a CompletionQueue, and caller threads sending batches
// (sign_many, digest_many, random_many).
//
// One Hsm and one Token serve all of them, opened once for the whole run and
// sharing the module (and its login) with the raw strategies: the module was
// initialised by BenchToken, so hsmactor finds it initialised and never
// finalises it.
//
// Usage:
//   auto hsm = HsmactorBench::open(token, settings);
//   auto futures = (*hsm)->make_strategy(StrategyKind::hsm_future);
//   MemoryMeasurement memory = (*hsm)->measure_session_actors(64);
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "pkcs11/error.hpp"
#include "tools/bench/memory.hpp"
#include "tools/bench/strategy.hpp"
#include "tools/bench/token_setup.hpp"

namespace hsmactor::bench {

/// How hsmactor is set up for the run.
struct HsmactorSettings {
  /// Pool sessions (already resolved; never 0).
  std::size_t max_sessions = 4;
  /// Requests in flight per callback caller and per actor caller.
  std::size_t callback_window = 4;
  std::size_t actor_window = 1;
  /// Loop threads of hsm-asio and hsm-cq; items per hsm-batch request.
  std::size_t asio_threads = 1;
  std::size_t cq_threads = 1;
  std::size_t batch_size = 32;
  /// CAF scheduler: worker threads (0: CAF's default) and policy ("" default).
  std::size_t scheduler_threads = 0;
  std::string scheduler_policy;
  /// Record the pool's own latency per cell through the token's trace sink.
  bool breakdown = false;
};

/// hsmactor opened on the benchmark token.
class HsmactorBench {
 public:
  /// Opens an Hsm and its Token on `token` (which must outlive this object),
  /// warms the pool to `settings.max_sessions` and resolves the keys.
  static Result<std::unique_ptr<HsmactorBench>> open(const BenchToken& token,
                                                     const HsmactorSettings& settings);
  /// Closes the token, then the actor system.
  ~HsmactorBench();
  HsmactorBench(const HsmactorBench&) = delete;
  HsmactorBench& operator=(const HsmactorBench&) = delete;

  /// Returns the strategy `kind` if it goes through hsmactor (is_hsmactor), or
  /// nullptr for another kind.
  std::unique_ptr<Strategy> make_strategy(StrategyKind kind);

  /// Opens a second pool of `count` session actors (without a login, so that
  /// closing it cannot log the token out), samples RSS once the actors run and
  /// again once each holds an open PKCS#11 session, then closes the pool.
  /// Returns the second measurement; `actors_only` receives the first.
  MemoryMeasurement measure_session_actors(std::size_t count, MemoryMeasurement* actors_only);

  const HsmactorSettings& settings() const { return settings_; }

  /// The pool's sessions as its metrics say: open now, and the ceiling (the
  /// pool's size after the token's cap, lowered while CKR_SESSION_COUNT comes).
  struct PoolSessions {
    std::uint64_t open = 0;
    std::uint64_t ceiling = 0;
    /// Empty when read; otherwise why not.
    std::string error;
  };
  PoolSessions pool_sessions() const;

  struct State;

 private:
  HsmactorBench() = default;
  std::unique_ptr<State> state_;
  HsmactorSettings settings_;
};

}  // namespace hsmactor::bench
