// ReplyRoute: answering an actor's request from another thread than the one
// that handled it. The pool hands an actor caller's run_atom job to a session
// actor, whose thread answers it directly, without a hop back through the pool;
// hsmactor::request() (pool/caf_api.cpp) makes one for a job it queues itself.
#pragma once

#include <caf/all.hpp>

namespace hsmactor::internal {

// Where the answer to an actor's run_atom request goes. A response is a plain
// message with the request's response id, so the session thread that ran the
// job can enqueue it directly (what a response promise does, minus the hop
// back through the pool; enqueueing with no execution unit is thread-safe).
struct ReplyRoute {
  caf::strong_actor_ptr source;
  caf::mailbox_element::forwarding_stack stages;
  caf::message_id id;

  void send(caf::message content) {
    if (!id.is_request()) return;  // sent without expecting an answer
    if (!stages.empty()) {
      auto next = stages.back();
      stages.pop_back();
      next->enqueue(caf::make_mailbox_element(std::move(source), id, std::move(stages),
                                              std::move(content)),
                    nullptr);
    } else if (source) {
      source->enqueue(
          caf::make_mailbox_element(nullptr, id.response_id(), {}, std::move(content)), nullptr);
    }
  }
};

// Takes over answering the message being handled, as a response promise would.
inline ReplyRoute take_reply_route(caf::scheduled_actor* self) {
  ReplyRoute route;
  auto* element = self->current_mailbox_element();
  if (element == nullptr || element->mid.is_answered()) return route;
  route.source = std::move(element->sender);
  route.stages = std::move(element->stages);
  route.id = element->mid;
  element->mid.mark_as_answered();
  return route;
}

}  // namespace hsmactor::internal
