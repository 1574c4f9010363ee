#include "pool/caf_api.hpp"

#include <memory>

#include "actors/operations.hpp"
#include "actors/runtime.hpp"
#include "pool/internal/key_access.hpp"
#include "pool/internal/reply_route.hpp"
#include "pool/internal/token_access.hpp"
#include "pool/internal/token_core.hpp"

namespace hsmactor {

namespace internal {
struct HsmAccess {
  static Runtime& runtime(Hsm& hsm) { return *hsm.runtime_; }
};
}  // namespace internal

namespace {

// Enqueues the response (CAF delivers it to the handler registered for its
// id; the actor is scheduled only if it was idle, and a dead one drops it).
void answer(internal::ReplyRoute& route, Result<JobResult> result) {
  if (result) {
    route.send(caf::make_message(std::move(*result)));
  } else {
    route.send(caf::make_message(to_caf_error(result.error())));
  }
}

}  // namespace

job_response_handle request(caf::scheduled_actor* self, const Token& token, const Key& key,
                            Job job, caf::duration timeout) {
  if (key.valid()) job.key = internal::KeyAccess::ref(key);
  caf::message_id id = self->new_request_id(caf::message_priority::normal);
  internal::ReplyRoute route{caf::strong_actor_ptr(self->ctrl()), {}, id};
  const auto& core = internal::TokenAccess::core(token);
  if (!core) {
    answer(route, Error::make(Condition::invalid_argument,
                              "an empty Token (default-constructed or moved from)",
                              to_string(job.op)));
  } else {
    // TokenCore::admit is the one admission: closed, forked and overloaded
    // are answered at once (enqueued, so the handler still runs later),
    // deadlines default as for every other request. No promise and no
    // executor: the answering thread (a session's, the deadline sweep, a
    // closing thread) only enqueues the response in the requester's mailbox.
    core->admit(std::move(job), internal::TokenAccess::deadline(token), key,
                [route = std::move(route)](Result<JobResult> result) mutable {
                  answer(route, std::move(result));
                });
  }
  if (timeout.valid()) self->request_response_timeout(timeout, id);
  return {id.response_id(), self};
}

job_response_handle request(caf::scheduled_actor* self, const Token& token, Job job,
                            caf::duration timeout) {
  return request(self, token, Key(), std::move(job), timeout);
}

token_actor actor_handle(const Token& token) {
  const auto& core = internal::TokenAccess::core(token);
  if (!core) return token_actor();
  // pool_actor's interface contains token_actor's: the cast is checked.
  return token_actor(core->pool_if_open());
}

KeyRef key_ref(const Key& key) { return internal::KeyAccess::ref(key); }

caf::actor_system& actor_system(Hsm& hsm) { return internal::HsmAccess::runtime(hsm).system(); }

}  // namespace hsmactor
