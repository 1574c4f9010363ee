// The message protocol of hsmactor's actors: every atom, payload and typed
// actor interface in one place.
//
// Requests that do one thing on a session travel as a Job (an operation and
// its inputs) and come back as a JobResult; multi-part streams have their own
// messages. Failures travel as caf::error values made by to_caf_error(), which
// carry the whole hsmactor::Error (the CK_RV never goes into caf::error's
// 8-bit code, where it would be truncated).
//
// Usage from an actor:
//   Job job;
//   job.op = Op::sign;
//   job.key = signing_key;       // a KeyRef: CKA_CLASS + CKA_LABEL / CKA_ID
//   job.mechanism = pkcs11::Mechanism::ecdsa();
//   job.data = digest;
//   self->request(pool, 5s, run_atom::value, std::move(job))
//       .then([](JobResult& r) { use(r.bytes); },
//             [](caf::error& e) { Error error = from_caf_error(e); });
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/job.hpp"
#include "actors/operations.hpp"
#include "pkcs11/attributes.hpp"
#include "pkcs11/bytes.hpp"
#include "pkcs11/error.hpp"
#include "pkcs11/mechanism.hpp"
#include "pkcs11/pin.hpp"
#include "pkcs11/session.hpp"

namespace hsmactor {

// ---- atoms (at most 10 characters of [A-Za-z0-9_]) ----
using run_atom = caf::atom_constant<caf::atom("run")>;
using s_begin_atom = caf::atom_constant<caf::atom("s_begin")>;
using s_update_atom = caf::atom_constant<caf::atom("s_update")>;
using s_finish_atom = caf::atom_constant<caf::atom("s_finish")>;
using s_abort_atom = caf::atom_constant<caf::atom("s_abort")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using start_atom = caf::atom_constant<caf::atom("start")>;
using login_atom = caf::atom_constant<caf::atom("login")>;
using logout_atom = caf::atom_constant<caf::atom("logout")>;
using heal_atom = caf::atom_constant<caf::atom("heal")>;
using spawn_atom = caf::atom_constant<caf::atom("spawn")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using open_atom = caf::atom_constant<caf::atom("open")>;
using unpin_atom = caf::atom_constant<caf::atom("unpin")>;
using sweep_atom = caf::atom_constant<caf::atom("sweep")>;
using grow_atom = caf::atom_constant<caf::atom("grow")>;
using serve_atom = caf::atom_constant<caf::atom("serve")>;
using pull_atom = caf::atom_constant<caf::atom("pull")>;
using kill_atom = caf::atom_constant<caf::atom("kill")>;

class JobQueue;

/// The queue a pooled session actor pulls jobs from, and its slot there.
/// Process-local (no inspect()): it carries a pointer.
struct JobSource {
  std::shared_ptr<JobQueue> queue;
  std::size_t slot = 0;
  /// Told of every PKCS#11 call the session actor makes (the pool's trace).
  std::shared_ptr<pkcs11::CallObserver> calls;
};

/// What a session actor reports about itself.
struct SessionStatus {
  bool session_open = false;
  bool streaming = false;
  std::uint64_t generation = 0;
  std::uint64_t session_handle = 0;
  std::uint64_t restarts = 0;
};

/// A counted snapshot of one supervisor.
struct SupervisorStats {
  std::uint64_t generation = 0;
  std::uint64_t heals = 0;
  std::uint64_t heal_failures = 0;
  std::uint64_t reinitializations = 0;
  std::uint64_t logins = 0;
  std::uint64_t sessions_spawned = 0;
  std::uint64_t sessions_alive = 0;
  bool owns_module = false;
};

/// A PIN handed between actors of this process by reference; it has no
/// inspect() on purpose, so it can never be serialised or printed.
struct PinBox {
  std::shared_ptr<const Pin> pin;
};

/// The error payload inside a caf::error (see to_caf_error).
struct WireError {
  std::uint8_t condition = 0;
  std::uint64_t rv = 0;
  std::string function;
  std::string operation;
  std::string detail;
  std::uint8_t category = 0;
};

/// Returns a caf::error that carries `error` whole.
caf::error to_caf_error(const Error& error);

/// Returns the hsmactor::Error inside `error`; CAF's own errors map to
/// deadline_exceeded (request_timeout), broken_promise (the receiver died) or
/// shutting_down, and anything else to internal_error.
Error from_caf_error(const caf::error& error);

/// Returns the steady_clock deadline `timeout` from now, as stored in a Job.
std::int64_t deadline_after(std::chrono::nanoseconds timeout);
/// Returns the time left until `deadline_ns` (zero when passed; a day when unset).
std::chrono::nanoseconds time_left(std::int64_t deadline_ns);

// ---- typed actor interfaces ----

/// One per PKCS#11 session; the only code that touches its handle.
/// Single-shot jobs reach it only through its pool's JobQueue (serve_atom),
/// so there is one way a job runs and heals (session_actor.cpp run_pulled).
using session_actor = caf::typed_actor<
    caf::replies_to<s_begin_atom, StreamSpec>::with<std::uint64_t>,
    caf::replies_to<s_update_atom, std::uint64_t, Bytes>::with<std::uint64_t>,
    caf::replies_to<s_finish_atom, std::uint64_t, Bytes>::with<JobResult>,
    caf::replies_to<s_abort_atom, std::uint64_t>::with<bool>,
    caf::replies_to<status_atom>::with<SessionStatus>,
    caf::reacts_to<serve_atom, JobSource>,
    caf::reacts_to<pull_atom>>;

/// One per module real path: initialise/finalise, login per token, healing.
using supervisor_actor = caf::typed_actor<
    caf::replies_to<start_atom>::with<bool>,
    caf::replies_to<login_atom, std::uint64_t, PinBox>::with<std::uint64_t>,
    caf::replies_to<logout_atom, std::uint64_t>::with<bool>,
    caf::replies_to<heal_atom, std::uint64_t, std::uint64_t, std::uint64_t>::with<std::uint64_t>,
    caf::replies_to<spawn_atom, std::uint64_t>::with<session_actor>,
    caf::replies_to<stop_atom>::with<bool>,
    caf::replies_to<stats_atom>::with<SupervisorStats>>;

// ---- inspection (what CAF needs to put these in messages) ----

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, KeyRef& x) {
  return f(caf::meta::type_name("KeyRef"), x.query, x.handle, x.generation);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Job& x) {
  return f(caf::meta::type_name("Job"), x.op, x.mechanism, x.key, x.data, x.signature, x.length,
           x.attributes, x.private_attributes, x.attribute_types, x.object, x.items,
           x.item_signatures, x.count, x.deadline_ns);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, JobResult& x) {
  return f(caf::meta::type_name("JobResult"), x.bytes, x.verified, x.handles, x.attributes,
           x.public_key, x.key_handle, x.key_generation, x.attempts, x.item_outputs,
           x.item_verified, x.item_rvs);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, StreamSpec& x) {
  return f(caf::meta::type_name("StreamSpec"), x.kind, x.mechanism, x.key, x.deadline_ns,
           x.stream_id);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SessionStatus& x) {
  return f(caf::meta::type_name("SessionStatus"), x.session_open, x.streaming, x.generation,
           x.session_handle, x.restarts);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, SupervisorStats& x) {
  return f(caf::meta::type_name("SupervisorStats"), x.generation, x.heals, x.heal_failures,
           x.reinitializations, x.logins, x.sessions_spawned, x.sessions_alive, x.owns_module);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, WireError& x) {
  return f(caf::meta::type_name("WireError"), x.condition, x.rv, x.function, x.operation,
           x.detail, x.category);
}

}  // namespace hsmactor

namespace hsmactor::pkcs11 {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Mechanism& x) {
  return f(caf::meta::type_name("Mechanism"), x.type, x.param_kind, x.raw, x.aad, x.tag_bits,
           x.hash, x.mgf, x.salt_length);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Attribute& x) {
  return f(caf::meta::type_name("Attribute"), x.type, x.value);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, AttributeList& x) {
  return f(caf::meta::type_name("AttributeList"), x.items());
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, PublicKey& x) {
  return f(caf::meta::type_name("PublicKey"), x.key_type, x.ec_params, x.ec_point_der,
           x.ec_point, x.modulus, x.public_exponent);
}

}  // namespace hsmactor::pkcs11

// PinBox deliberately has no inspect(): it stays inside the process and
// renders as <unprintable>.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hsmactor::PinBox)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(hsmactor::JobSource)
