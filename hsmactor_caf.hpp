// hsmactor for callers that are CAF actors: Hsm(caf::actor_system&),
// hsmactor::request() (a Job queued straight on the token, its answer in the
// actor's own mailbox), the token's typed actor handle and the actor system
// an Hsm runs on. Opt-in: depend on //:hsmactor_caf.
//
// Usage, inside an event-based or typed actor:
//   hsmactor::request(self, token, key, std::move(job))
//       .then([=](hsmactor::JobResult& result) { use(result.bytes); },
//             [=](caf::error& failure) { auto e = hsmactor::from_caf_error(failure); });
//   // or through the pool actor (one more message per request):
//   self->request(hsmactor::actor_handle(token), 5s, hsmactor::run_atom::value, job).then(...);
#pragma once

#include "hsmactor.hpp"
#include "pool/caf_api.hpp"
