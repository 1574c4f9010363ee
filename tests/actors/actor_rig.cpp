#include "tests/actors/actor_rig.hpp"

#include <stdexcept>

namespace hsmactor::testing {

ActorRig::ActorRig(const std::string& label)
    : fault_path(fault::fault_module_path()),
      token(create_test_token(label, fault_path)),
      faults(fault_path) {
  LoggedInSession setup(token);
  keys = create_test_keys(setup.session());
  auto exported = setup.session().export_public_key(keys.ec256.public_key);
  if (!exported) throw std::runtime_error(exported.error().message());
  ec256_public = *exported;
}

ActorRig::~ActorRig() {
  faults.reset();
  lease.reset();
  runtime.reset();
}

void ActorRig::start() {
  runtime = Runtime::create();
  auto acquired = acquire_library(runtime, fault_path);
  if (!acquired) throw std::runtime_error(acquired.error().message());
  lease = *acquired;
  auto found = lease->module()->find_token(pkcs11::TokenSelector::by_label(token.label));
  if (!found) throw std::runtime_error(found.error().message());
  slot = *found;
  PinBox box{std::make_shared<const Pin>(token.user_pin)};
  auto logged_in = runtime
                       ->ask<std::uint64_t>(lease->supervisor(), kAnswerBound, login_atom::value,
                                            std::uint64_t{slot}, box)
                       .get();
  if (!logged_in) throw std::runtime_error(logged_in.error().message());
}

session_actor ActorRig::spawn_session() {
  auto spawned = runtime
                     ->ask<session_actor>(lease->supervisor(), kAnswerBound, spawn_atom::value,
                                          std::uint64_t{slot})
                     .get();
  if (!spawned) throw std::runtime_error(spawned.error().message());
  return *spawned;
}

std::shared_ptr<JobQueue> ActorRig::queue_for(const session_actor& session) {
  auto& queue = queues_[session.address()];
  if (!queue) {
    queue = std::make_shared<JobQueue>(1024, 1);
    auto slot = queue->attach(session);
    if (!slot) throw std::runtime_error("the rig's queue has no slot for the session");
    caf::anon_send(session, serve_atom::value, JobSource{queue, *slot, nullptr});
  }
  return queue;
}

Future<JobResult> ActorRig::submit(const session_actor& session, Job job) {
  if (job.deadline_ns == 0) job.deadline_ns = deadline_after(kAnswerBound);
  auto [promise, future] = make_promise<JobResult>();
  auto queue = queue_for(session);
  queue->admit(queue->make_job(
      std::move(job), QueuedJob::Completion([promise = std::move(promise)](
                                                Result<JobResult> result) mutable {
        promise.set_result(std::move(result));
      })));
  return std::move(future);
}

Result<JobResult> ActorRig::run(const session_actor& session, Job job) {
  return submit(session, std::move(job)).get(kAnswerBound);
}

void ActorRig::close_queue(const session_actor& session) {
  auto queue = queue_for(session);
  queue->close();
  for (auto& job : queue->take_all()) {
    job->complete(Error::make(Condition::shutting_down, "the rig closed the queue"));
  }
}

Job ActorRig::ecdsa_job() const {
  Job job;
  job.op = Op::sign;
  job.mechanism = pkcs11::Mechanism::ecdsa();
  job.key.query.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY).set_string(CKA_LABEL, TestKeyLabels::ec256);
  job.data = Bytes(32, 0x5a);
  return job;
}

SupervisorStats ActorRig::stats() {
  auto stats = runtime->ask<SupervisorStats>(lease->supervisor(), kAnswerBound, stats_atom::value)
                   .get();
  if (!stats) throw std::runtime_error(stats.error().message());
  return *stats;
}

}  // namespace hsmactor::testing
