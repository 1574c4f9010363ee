// A test rig for the actor core: a token on the fault module, a runtime, the
// module's lease and helpers to talk to session actors from a plain thread.
#pragma once

#include <map>

#include "actors/job_queue.hpp"

#include <chrono>
#include <memory>
#include <string>

#include "actors/library_registry.hpp"
#include "actors/protocol.hpp"
#include "actors/runtime.hpp"
#include "testing/fault_control.hpp"
#include "tests/support/softhsm_token.hpp"

namespace hsmactor::testing {

constexpr auto kAnswerBound = std::chrono::seconds(30);

/// A token behind the fault module with the standard test keys, and a runtime.
struct ActorRig {
  explicit ActorRig(const std::string& label);
  ~ActorRig();

  /// Acquires the module, logs the token in through the supervisor.
  void start();
  /// Returns a new session actor for the token.
  session_actor spawn_session();
  /// Runs `job` on `session` and waits for the answer.
  Result<JobResult> run(const session_actor& session, Job job);
  /// Queues `job` for `session` the way a pool does (the session serves a
  /// queue of its own, made on first use) and returns the answer's future.
  Future<JobResult> submit(const session_actor& session, Job job);
  /// Closes `session`'s queue: what still waits there answers shutting_down.
  void close_queue(const session_actor& session);
  /// Returns an ECDSA P-256 sign job over a fixed digest.
  Job ecdsa_job() const;
  /// Returns the supervisor's counters.
  SupervisorStats stats();

  std::string fault_path;
  TestToken token;
  TestKeys keys;
  /// The P-256 public key, read while the keys were made.
  pkcs11::PublicKey ec256_public;
  fault::FaultControl faults;
  std::shared_ptr<Runtime> runtime;
  std::shared_ptr<LibraryLease> lease;
  CK_SLOT_ID slot = 0;

 private:
  std::shared_ptr<JobQueue> queue_for(const session_actor& session);
  std::map<caf::actor_addr, std::shared_ptr<JobQueue>> queues_;
};

}  // namespace hsmactor::testing
