// For callers that are actors themselves: the pool's typed handle and the
// actor system an Hsm runs on. Opt-in (//:hsmactor_caf): it brings in CAF.
#pragma once

#include <caf/all.hpp>

#include "actors/protocol.hpp"
#include "pool/hsm.hpp"
#include "pool/token.hpp"

namespace hsmactor {

/// What an actor may send a token's pool: a Job (see actors/job.hpp and the
/// operation table in actors/operations.hpp), answered with its JobResult or
/// an error to turn into an Error with from_caf_error(). The session that runs
/// the job answers the requester directly.
using token_actor = caf::typed_actor<caf::replies_to<run_atom, Job>::with<JobResult>>;

/// Returns `token`'s typed handle (invalid once the token is closed: requests
/// to it then fail with an error from_caf_error() maps to shutting_down).
token_actor actor_handle(const Token& token);

/// Returns what a Job names `key` by (its query and cached handle).
KeyRef key_ref(const Key& key);

/// Returns the actor system `hsm` runs on (its own, or the one it borrowed).
caf::actor_system& actor_system(Hsm& hsm);

}  // namespace hsmactor
