#include "tools/bench/strategy_hsmactor.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>

#include "hsmactor_caf.hpp"
#include "tools/bench/strategy_hsmactor_state.hpp"

namespace hsmactor::bench {
namespace {

// Generous (the longest queue a run builds drains in well under a second),
// yet short enough that a request the pool loses costs a run seconds, not
// minutes, before its deadline answers it.
constexpr auto kRequestTimeout = std::chrono::seconds(10);
constexpr auto kSetupTimeout = std::chrono::seconds(30);

/// Returns the Job that performs `workload` with `key`.
Job make_job(const Workload& workload, const Key& key) {
  Job job;
  job.mechanism = workload.mechanism;
  job.data = workload.data;
  switch (workload.operation) {
    case Operation::ecdsa:
    case Operation::rsa:
    case Operation::hmac:
      job.op = Op::sign;
      job.key = key_ref(key);
      break;
    case Operation::random:
      job.op = Op::random;
      job.length = workload.random_length;
      break;
    case Operation::digest:
      job.op = Op::digest;
      break;
  }
  return job;
}

/// Counts finished callers down to zero.
class Latch {
 public:
  explicit Latch(int count) : count_(count) {}
  void count_down() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--count_ == 0) zero_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    zero_.wait(lock, [this] { return count_ == 0; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable zero_;
  int count_;
};

/// One actor caller's loop: owned by its actor, read by the driver only after
/// the latch says the actor is done.
struct ActorCaller {
  Token token;
  /// Through the pool actor's typed handle (the older path) instead of
  /// hsmactor::request(); empty unless HSMACTOR_BENCH_ACTOR_PATH=pool.
  token_actor pool;
  Job prototype;
  MeasureWindow window;
  std::size_t window_size = 1;
  std::size_t in_flight = 0;
  CallerTally tally;
  std::shared_ptr<Latch> latch;
};

/// Sends the next request, or ends the actor once the window closed and the
/// last answer is in. Runs only inside the caller's actor.
void issue(caf::event_based_actor* self, const std::shared_ptr<ActorCaller>& caller) {
  Clock::time_point started = Clock::now();
  if (!caller->window.open(started)) {
    if (caller->in_flight == 0) {
      caller->latch->count_down();
      self->quit();
    }
    return;
  }
  ++caller->in_flight;
  Job job = caller->prototype;
  job.deadline_ns = deadline_after(kRequestTimeout);
  auto on_result = [self, caller, started](JobResult&) {
    caller->tally.complete(caller->window, started, Clock::now(), nullptr);
    --caller->in_flight;
    issue(self, caller);
  };
  auto on_error = [self, caller, started](caf::error& failure) {
    std::string error = from_caf_error(failure).message();
    caller->tally.complete(caller->window, started, Clock::now(), &error);
    --caller->in_flight;
    issue(self, caller);
  };
  // No request timeout: every job is answered, a queued one by its deadline
  // (README, "Actors"); a CAF timeout would add a timer per request.
  if (caller->pool) {
    self->request(caller->pool, caf::infinite, run_atom::value, std::move(job))
        .then(on_result, on_error);
  } else {
    request(self, caller->token, std::move(job)).then(on_result, on_error);
  }
}

/// True when HSMACTOR_BENCH_ACTOR_PATH=pool asks hsm-actor to measure the
/// pool actor's typed handle instead of hsmactor::request().
bool actors_via_pool() {
  const char* path = std::getenv("HSMACTOR_BENCH_ACTOR_PATH");
  return path != nullptr && std::string(path) == "pool";
}

/// Caller threads, each blocking on one Future at a time.
class HsmFutures final : public Strategy {
 public:
  explicit HsmFutures(HsmactorBench::State& state) : state_(state) {}

  StrategyKind kind() const override { return StrategyKind::hsm_future; }

  CellResult run(const Workload& workload, int concurrency, const Timing& timing) override {
    Key key = state_.key_for(workload);
    const Token& token = state_.token;
    HsmactorBench::State::PoolProbe probe(token, state_.breakdown, timing);
    HsmactorBench::State::StallWatch watch(token, timing);
    CellResult cell = run_closed_loop(kind(), workload.operation, concurrency, timing,
                                      [&](int, std::string&) -> RequestFn {
                                        return [&](std::string& error) {
                                          Result<Bytes> output = call(token, workload, key).get();
                                          if (!output) error = output.error().message();
                                          return output.ok();
                                        };
                                      });
    probe.finish(cell);
    watch.finish(cell);
    return cell;
  }

 private:
  static Future<Bytes> call(const Token& token, const Workload& workload, const Key& key) {
    switch (workload.operation) {
      case Operation::random: return token.random(workload.random_length);
      case Operation::digest: return token.digest(workload.mechanism, workload.data);
      default: return token.sign(key, workload.mechanism, workload.data);
    }
  }

  HsmactorBench::State& state_;
};

/// Caller threads, each keeping a bounded window of callback requests.
class HsmCallbacks final : public Strategy {
 public:
  HsmCallbacks(HsmactorBench::State& state, std::size_t window)
      : state_(state), window_(window) {}

  StrategyKind kind() const override { return StrategyKind::hsm_callback; }

  CellResult run(const Workload& workload, int concurrency, const Timing& timing) override {
    Key key = state_.key_for(workload);
    const Token& token = state_.token;
    Job job = make_job(workload, key);
    bool is_sign = job.op == Op::sign;
    HsmactorBench::State::PoolProbe probe(token, state_.breakdown, timing);
    HsmactorBench::State::StallWatch watch(token, timing);
    CellResult cell = run_windowed(kind(), workload.operation, concurrency, window_, timing,
                        [&](int, Completion done) {
                          auto reply = [done](Result<Bytes> output) { complete(done, output); };
                          if (is_sign) {
                            token.sign(key, workload.mechanism, workload.data, reply);
                          } else if (job.op == Op::random) {
                            token.random(workload.random_length).then(reply);
                          } else {
                            token.digest(workload.mechanism, workload.data).then(reply);
                          }
                        });
    probe.finish(cell);
    watch.finish(cell);
    return cell;
  }

 private:
  HsmactorBench::State& state_;
  std::size_t window_;
};

/// One event-based CAF actor per caller, queueing Jobs with hsmactor::request()
/// (or, with HSMACTOR_BENCH_ACTOR_PATH=pool, sending them to the pool's handle).
class HsmActors final : public Strategy {
 public:
  HsmActors(HsmactorBench::State& state, std::size_t window)
      : state_(state), window_(window), via_pool_(actors_via_pool()) {}

  StrategyKind kind() const override { return StrategyKind::hsm_actor; }

  CellResult run(const Workload& workload, int concurrency, const Timing& timing) override {
    Key key = state_.key_for(workload);
    token_actor pool = via_pool_ ? actor_handle(state_.token) : token_actor();
    HsmactorBench::State::PoolProbe probe(state_.token, state_.breakdown, timing);
    HsmactorBench::State::StallWatch watch(state_.token, timing);
    auto latch = std::make_shared<Latch>(concurrency);
    // Spawning takes well under the warm-up, so one window for all is fair.
    MeasureWindow window = MeasureWindow::starting_now(timing);
    std::vector<std::shared_ptr<ActorCaller>> callers;
    callers.reserve(concurrency);
    auto& system = actor_system(*state_.hsm);
    for (int index = 0; index < concurrency; ++index) {
      auto caller = std::make_shared<ActorCaller>();
      caller->token = state_.token;
      caller->pool = pool;
      caller->prototype = make_job(workload, key);
      caller->window = window;
      caller->window_size = window_;
      caller->latch = latch;
      caller->tally.latency.reserve(kReservedSamples);
      callers.push_back(caller);
      // The unused int matters (as in actors/runtime.cpp): CAF 0.17
      // dereferences a null argument tuple when an actor is spawned without
      // arguments, which UBSan reports (and --config=asan halts on).
      system.spawn(
          [caller](caf::event_based_actor* self, int) -> caf::behavior {
            for (std::size_t i = 0; i < caller->window_size; ++i) issue(self, caller);
            // Requests carry their own handlers; the behaviour only keeps the
            // actor alive until issue() quits it.
            return {[](const std::string&) {}};
          },
          0);
    }
    auto cpu = process_cpu_during(window);
    latch->wait();
    std::vector<CallerTally> tallies;
    tallies.reserve(concurrency);
    for (auto& caller : callers) tallies.push_back(std::move(caller->tally));
    CellResult cell = fold_cell(kind(), workload.operation, concurrency, window, tallies);
    set_cpu_per_op(cell, cpu);
    if (via_pool_) cell.caveat = "via the pool actor";
    probe.finish(cell);
    watch.finish(cell);
    return cell;
  }

 private:
  HsmactorBench::State& state_;
  std::size_t window_;
  bool via_pool_;
};

}  // namespace

Result<std::unique_ptr<HsmactorBench>> HsmactorBench::open(const BenchToken& token,
                                                           const HsmactorSettings& settings) {
  std::unique_ptr<HsmactorBench> bench(new HsmactorBench());
  bench->settings_ = settings;
  bench->state_ = std::make_unique<State>();
  State& state = *bench->state_;
  state.bench = &token;
  state.breakdown = settings.breakdown;
  RuntimeOptions runtime;
  runtime.scheduler_threads = settings.scheduler_threads;
  runtime.scheduler_policy = settings.scheduler_policy;
  state.hsm = std::make_unique<Hsm>(runtime);

  TokenOptions options;
  options.module_path = token.module_ptr()->path();
  options.label = token.label();
  options.pin = token.pin();
  options.min_sessions = settings.max_sessions;
  options.max_sessions = settings.max_sessions;
  // Every caller's window fits: the benchmark measures throughput, not refusals.
  options.queue_limit = 1 << 20;
  options.default_deadline = std::chrono::duration_cast<std::chrono::milliseconds>(kRequestTimeout);
  auto opened = state.hsm->open_token(options);
  if (!opened) return opened.error();
  state.token = *opened;

  state.keys[KeyLabels::ec256] = Key::private_key(KeyLabels::ec256);
  state.keys[KeyLabels::rsa2048] = Key::private_key(KeyLabels::rsa2048);
  state.keys[KeyLabels::hmac] = Key::secret_key(KeyLabels::hmac);
  for (auto& [label, key] : state.keys) {
    auto found = state.token.find_key(key).get(kSetupTimeout);
    if (!found) return found.error();
  }
  return bench;
}

HsmactorBench::~HsmactorBench() = default;

HsmactorBench::PoolSessions HsmactorBench::pool_sessions() const {
  PoolSessions sessions;
  auto metrics = state_->token.metrics();
  if (!metrics) {
    sessions.error = metrics.error().message();
    return sessions;
  }
  sessions.open = metrics->sessions_open;
  sessions.ceiling = metrics->sessions_max;
  return sessions;
}

std::unique_ptr<Strategy> HsmactorBench::make_strategy(StrategyKind kind) {
  switch (kind) {
    case StrategyKind::hsm_future: return std::make_unique<HsmFutures>(*state_);
    case StrategyKind::hsm_callback:
      return std::make_unique<HsmCallbacks>(*state_, settings_.callback_window);
    case StrategyKind::hsm_actor:
      return std::make_unique<HsmActors>(*state_, settings_.actor_window);
    case StrategyKind::hsm_asio: return make_asio_strategy(*state_, settings_.asio_threads);
    case StrategyKind::hsm_cq:
      return make_completion_queue_strategy(*state_, settings_.cq_threads);
    case StrategyKind::hsm_batch: return make_batch_strategy(*state_, settings_.batch_size);
    default: return nullptr;
  }
}

MemoryMeasurement HsmactorBench::measure_session_actors(std::size_t count,
                                                        MemoryMeasurement* actors_only) {
  MemoryMeasurement measurement;
  MemoryMeasurement spawned;
  TokenOptions options;
  options.module_path = state_->bench->module_ptr()->path();
  options.label = state_->bench->label();
  options.min_sessions = count;
  options.max_sessions = count;
  options.queue_limit = count * 2 + 16;
  // The token is logged in already (by BenchToken); this pool must neither
  // need a PIN nor log anyone out when it closes.
  options.login = Login::none;
  measurement.rss_before = spawned.rss_before = resident_bytes();
  auto opened = state_->hsm->open_token(options);
  if (!opened) {
    measurement.note = "open_token failed: " + opened.error().message();
    if (actors_only) *actors_only = measurement;
    return measurement;
  }
  Token token = *opened;

  // The pool spawns its session actors asynchronously; wait until all run.
  auto give_up = Clock::now() + kSetupTimeout;
  for (;;) {
    auto metrics = token.metrics();
    if (metrics && metrics->sessions_open >= count) break;
    if (Clock::now() > give_up) {
      spawned.note = "the pool did not reach " + std::to_string(count) + " session actors";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (spawned.note.empty()) {
    spawned.rss_after = resident_bytes();
    spawned.sessions = count;
  }
  if (actors_only) *actors_only = spawned;

  // Session actors open their PKCS#11 session on first use: pin each with a
  // digest stream so that every one holds an open session.
  std::vector<Future<Stream>> pending;
  pending.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    pending.push_back(token.open_stream(StreamKind::digest, pkcs11::Mechanism::sha256()));
  }
  std::vector<Stream> streams;
  streams.reserve(count);
  for (auto& future : pending) {
    auto stream = future.get(kSetupTimeout);
    if (!stream) {
      if (measurement.note.empty()) measurement.note = stream.error().message();
      continue;
    }
    streams.push_back(std::move(*stream));
  }
  if (measurement.note.empty()) {
    measurement.rss_after = resident_bytes();
    measurement.sessions = count;
  }
  for (Stream& stream : streams) stream.abort();
  token.close();
  return measurement;
}

}  // namespace hsmactor::bench
