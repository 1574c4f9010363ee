#include "actors/runtime.hpp"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "actors/process.hpp"

namespace hsmactor {

std::shared_ptr<Runtime> Runtime::create(const RuntimeOptions& options) {
  std::shared_ptr<Runtime> runtime(new Runtime());
  runtime->config_ = std::make_unique<caf::actor_system_config>();
  if (options.scheduler_threads > 0) {
    runtime->config_->set("scheduler.max-threads", options.scheduler_threads);
  }
  // Requests do not pass through CAF's scheduler (see JobQueue); what does
  // (control messages, actor callers' responses) wakes a sleeping worker
  // through a condition variable under `sharing` in a few microseconds, where
  // `stealing` workers poll with 50 µs sleeps (measured: an actor caller's
  // round trip 117 µs with stealing, 23 µs with sharing).
  const std::string policy =
      options.scheduler_policy.empty() ? std::string("sharing") : options.scheduler_policy;
  runtime->config_->set("scheduler.policy", caf::atom_from_string(policy));
  runtime->shutdown_timeout_ = std::max(options.shutdown_timeout, std::chrono::milliseconds(1));
  runtime->owned_system_ = std::make_unique<caf::actor_system>(*runtime->config_);
  runtime->system_ = runtime->owned_system_.get();
  runtime->start_bridge();
  return runtime;
}

std::shared_ptr<Runtime> Runtime::borrow(caf::actor_system& system) {
  std::shared_ptr<Runtime> runtime(new Runtime());
  runtime->system_ = &system;
  runtime->start_bridge();
  return runtime;
}

void Runtime::start_bridge() {
  pid_ = ::getpid();
  forks_at_start_ = fork_generation();
  // The unused argument matters: CAF 0.17 dereferences a null argument tuple
  // when an actor is spawned without arguments (UBSan reports it).
  bridge_ = system_->spawn(
      [](caf::event_based_actor* self, int) -> caf::behavior {
        return {[self](BridgeJob& job) { job.run(self); }};
      },
      0);
}

bool Runtime::forked() const {
  return fork_generation() != forks_at_start_;
}

void Runtime::post(std::function<void(caf::event_based_actor*)> job) {
  caf::anon_send(bridge_, BridgeJob{std::move(job)});
}

Runtime::~Runtime() {
  if (forked()) {
    // The parent's scheduler threads do not exist here; destroying the system
    // would wait for them forever.
    static_cast<void>(new caf::actor(std::move(bridge_)));
    (void)owned_system_.release();
    (void)config_.release();
    return;
  }
  caf::anon_send_exit(bridge_, caf::exit_reason::user_shutdown);
  bridge_ = caf::actor();
  if (!owned_system_) return;
  // The system's destructor waits for every actor without a bound: wait here
  // with one, polling (CAF 0.17 offers no timed wait for the running count).
  auto deadline = std::chrono::steady_clock::now() + shutdown_timeout_;
  auto pause = std::chrono::microseconds(100);
  while (owned_system_->registry().running() > 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      // Some actor is stuck (a PKCS#11 call that never returns): destroying
      // the system would block forever, so it is left running.
      (void)owned_system_.release();
      (void)config_.release();
      return;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(20000));
  }
  owned_system_.reset();
}

}  // namespace hsmactor
