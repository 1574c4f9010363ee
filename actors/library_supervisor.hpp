// LibrarySupervisor: one detached actor per PKCS#11 module (by real path).
//
// States and transitions:
//   new      --start----> running (C_Initialize with CKF_OS_LOCKING_OK once;
//                         CKR_CRYPTOKI_ALREADY_INITIALIZED: someone else in the
//                         process owns the module, we never finalise it,
//                         unless the options say the initialisation is ours)
//   running  --login----> the token's one login (a dedicated login session;
//                         pooled sessions never log in or out)
//   running  --heal-----> a session saw a stale CKR_*: check the actual state
//                         first (module initialised, token present, login
//                         session alive and logged in); if it is sound and the
//                         token got a new generation since the session's, that
//                         heal covers this one. Otherwise re-initialise when
//                         the module was finalised behind our back, log in
//                         again when the login was lost, and give the token a
//                         new generation. Failures are cached for a short
//                         back-off so a removed token is not polled in a loop.
//   running  --stop----->  stopping: every session actor is told to exit and
//                         closes its own session; when the last is down, log
//                         out (only a login we made), close login sessions,
//                         C_Finalize if ours and the options allow it
//
// Generations: each token's generation is a process-unique epoch
// (next_epoch()), replaced by a new one with every heal; object handles and
// session actors remember the generation they belong to. Being unique, a
// generation never comes back after a close and reopen, so a handle cached
// under an earlier initialisation can never be taken for a current one.
//
// Login ownership: a C_Login that meets CKR_USER_ALREADY_LOGGED_IN found
// another consumer's login; we use it and never log it out.
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
  /// CKR_CRYPTOKI_ALREADY_INITIALIZED at start is our own initialisation:
  /// one left in place by an earlier supervisor (FinalizePolicy::never), or
  /// the parent's, copied into this child by fork(). The module then counts
  /// as ours (owns_module), not another consumer's.
  bool already_initialized_is_ours = false;
  /// The last stop calls C_Finalize when the module is ours. Off by default:
  /// another user of the same module (through a wrapper module, say) may
  /// still be inside it, and a child must never finalise its parent's state.
  bool finalize_on_stop = false;
};

/// Spawns the supervisor of `module` (detached: its calls block).
supervisor_actor spawn_library_supervisor(caf::actor_system& system,
                                          std::shared_ptr<pkcs11::Module> module,
                                          SupervisorOptions options = {});

}  // namespace hsmactor
