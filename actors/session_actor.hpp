// SessionActor: one detached actor per PKCS#11 session, the only code that
// ever calls PKCS#11 with that session's handle.
//
// States and transitions:
//   closed   --first request--------------------> idle (C_OpenSession)
//   idle     --Job pulled from the pool's queue-> idle (one call sequence)
//   idle     --stale CKR_* on a single-shot job-> healing: asks the supervisor to
//            heal (re-initialise, re-login), opens a new session and retries
//            once; other messages wait (await) until this is done
//   idle     --s_begin--------------------------> streaming (pinned)
//   streaming --s_update / s_finish-------------> streaming / idle
//   streaming --error, s_abort------------------> tainted: the session is closed
//            and never reused; the next request opens a new one
//   any      --exit message---------------------> the session is closed on the
//            actor's own thread; queued requests get request_receiver_down
//
// Blocking PKCS#11 calls run on the actor's own thread (spawn<detached>), so
// they never stall CAF's scheduler.
#pragma once

#include <memory>

#include "actors/protocol.hpp"
#include "pkcs11/module.hpp"

namespace hsmactor {

/// Spawns a session actor for `slot` of `module`, healing through `supervisor`;
/// `generation` is the token generation it starts in; `login_expected` says
/// the token is logged in by the supervisor, so a new session must see that.
session_actor spawn_session_actor(caf::local_actor* parent,
                                  std::shared_ptr<pkcs11::Module> module,
                                  supervisor_actor supervisor, CK_SLOT_ID slot,
                                  std::uint64_t generation, bool login_expected);

}  // namespace hsmactor
