// For callers that are actors themselves: requests queued straight on a
// token with the answer in the actor's own mailbox, the pool's typed handle,
// and the actor system an Hsm runs on. Opt-in (//:hsmactor_caf): it brings in
// CAF.
#pragma once

#include <caf/all.hpp>

#include "actors/protocol.hpp"
#include "pool/hsm.hpp"
#include "pool/key.hpp"
#include "pool/token.hpp"

namespace hsmactor {

/// What an actor may send a token's pool: a Job (see actors/job.hpp and the
/// operation table in actors/operations.hpp), answered with its JobResult or
/// an error to turn into an Error with from_caf_error(). The session that runs
/// the job answers the requester directly.
using token_actor = caf::typed_actor<caf::replies_to<run_atom, Job>::with<JobResult>>;

/// What request() returns: install the response handlers with
/// `.then(on_result, on_error)` (or `.await(...)`), exactly as on
/// `self->request(pool, ..., run_atom::value, job)`; `on_result` takes a
/// JobResult&, `on_error` a caf::error& (from_caf_error() makes it an Error).
using job_response_handle =
    caf::response_handle<caf::scheduled_actor, caf::detail::type_list<JobResult>, false>;

/// Queues `job` on `token` from inside `self` (an event-based or typed
/// actor, on its own thread: in a handler or its behaviour factory) without
/// a message to the pool actor; the session that runs it enqueues the answer
/// in `self`'s mailbox, where the handlers installed on the returned handle
/// receive it. Answered exactly once, never inside this call: a JobResult,
/// or an error for overloaded, deadline_exceeded (the job's `deadline_ns`,
/// else the handle's with_deadline(), else the token's default), a module
/// failure, shutting_down (closed, or closing with the job still queued),
/// forked or invalid_argument (an empty token). An answer to an actor that
/// has quit is dropped. `timeout` (as in CAF's request) also answers
/// request_timeout (from_caf_error: deadline_exceeded) if nothing came by
/// then, at the price of a timer on CAF's clock thread; the job's deadline
/// alone answers every job not yet running.
job_response_handle request(caf::scheduled_actor* self, const Token& token, Job job,
                            caf::duration timeout = caf::infinite);

/// As above with `job.key` set to `key`; the handle the session resolved
/// goes back into `key`'s cache, as for Token's own requests (a Job made
/// with key_ref() carries a copy of the handle that nothing refreshes).
job_response_handle request(caf::scheduled_actor* self, const Token& token, const Key& key,
                            Job job, caf::duration timeout = caf::infinite);

/// Returns `token`'s typed handle (invalid once the token is closed: requests
/// to it then fail with an error from_caf_error() maps to shutting_down).
/// Each request through it is a message to the pool actor, which then queues
/// the job; request() above skips that hop.
token_actor actor_handle(const Token& token);

/// Returns what a Job names `key` by (its query and cached handle).
KeyRef key_ref(const Key& key);

/// Returns the actor system `hsm` runs on (its own, or the one it borrowed).
caf::actor_system& actor_system(Hsm& hsm);

}  // namespace hsmactor
