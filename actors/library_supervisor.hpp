// LibrarySupervisor: one detached actor per PKCS#11 module (by real path).
//
// States and transitions:
//   new      --start----> running (C_Initialize with CKF_OS_LOCKING_OK once;
//                         CKR_CRYPTOKI_ALREADY_INITIALIZED: someone else in the
//                         process owns the module, we never finalise it)
//   running  --login----> the token's one login (a dedicated login session;
//                         pooled sessions never log in or out)
//   running  --heal-----> a session saw a stale CKR_*: re-initialise when the
//                         module was finalised behind our back, check the token
//                         is present, log in again when the login was lost,
//                         then bump the token's generation. Failures are cached
//                         for a short back-off so a removed token is not polled
//                         in a tight loop.
//   running  --stop-----> stopping: every session actor is told to exit and
//                         closes its own session; when the last is down, log
//                         out, close login sessions, C_Finalize if ours
//
// Generations: each token has a counter that grows with every heal; object
// handles and session actors remember the generation they belong to.
#pragma once

#include <chrono>
#include <memory>

#include "actors/protocol.hpp"
#include "pkcs11/module.hpp"

namespace hsmactor {

/// How a supervisor behaves.
struct SupervisorOptions {
  /// After a failed heal, further heals of that token fail fast for this long.
  std::chrono::milliseconds heal_backoff{100};
  /// The process forked after this module was initialised by us in the parent:
  /// a CKR_CRYPTOKI_ALREADY_INITIALIZED at start is the parent's state, so
  /// finalise it and initialise afresh.
  bool reinitialize_after_fork = false;
};

/// Spawns the supervisor of `module` (detached: its calls block).
supervisor_actor spawn_library_supervisor(caf::actor_system& system,
                                          std::shared_ptr<pkcs11::Module> module,
                                          SupervisorOptions options = {});

}  // namespace hsmactor
