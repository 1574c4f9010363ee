// hsmactor for callers that are CAF actors: Hsm(caf::actor_system&), the
// token's typed actor handle (send run_atom + Job, get JobResult) and the
// actor system an Hsm runs on. Opt-in: depend on //:hsmactor_caf.
//
// Usage:
//   hsmactor::Hsm hsm(system);
//   hsmactor::token_actor pool = hsmactor::actor_handle(token);
//   self->request(pool, 5s, hsmactor::run_atom::value, job).then(...);
#pragma once

#include "hsmactor.hpp"
#include "pool/caf_api.hpp"
