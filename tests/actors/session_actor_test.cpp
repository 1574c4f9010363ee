#include "actors/session_actor.hpp"

#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "tests/actors/actor_rig.hpp"
#include "tests/support/openssl_check.hpp"

using namespace hsmactor;
using testing::ActorRig;

namespace {

ActorRig& rig() {
  static ActorRig* instance = [] {
    auto* created = new ActorRig("sessions");
    created->start();
    return created;
  }();
  return *instance;
}

const pkcs11::PublicKey& ec256_public_key(ActorRig& r) { return r.ec256_public; }

}  // namespace

TEST_CASE("a session actor signs, and the signature verifies outside the HSM") {
  auto& r = rig();
  auto session = r.spawn_session();
  auto result = r.run(session, r.ecdsa_job());
  REQUIRE(result.ok());
  CHECK(result->attempts == 1);
  CHECK(testing::openssl::verify_ecdsa(ec256_public_key(r), Bytes(32, 0x5a), result->bytes));
}

TEST_CASE("sign retries once after CKR_SESSION_HANDLE_INVALID and opens one new session") {
  auto& r = rig();
  auto session = r.spawn_session();
  REQUIRE(r.run(session, r.ecdsa_job()).ok());  // the session is open now
  auto opened_before = r.faults.call_count("C_OpenSession");
  r.faults.add_rule("C_Sign", CKR_SESSION_HANDLE_INVALID, 0, 1);
  auto result = r.run(session, r.ecdsa_job());
  REQUIRE(result.ok());
  CHECK(result->attempts == 2);
  CHECK(r.faults.call_count("C_OpenSession") - opened_before == 1);
  CHECK(testing::openssl::verify_ecdsa(ec256_public_key(r), Bytes(32, 0x5a), result->bytes));
}

TEST_CASE("two stale codes in a row end in a typed error naming the failed retry") {
  auto& r = rig();
  auto session = r.spawn_session();
  r.faults.add_rule("C_Sign", CKR_SESSION_HANDLE_INVALID, 0, 2);
  auto result = r.run(session, r.ecdsa_job());
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().condition() == Condition::stale_session_retry_failed);
  CHECK(result.error().rv() == CKR_SESSION_HANDLE_INVALID);
  CHECK(result.error().function() == "C_Sign");
  CHECK(result.error().category() == Category::retry);
  // The session actor is still usable afterwards.
  CHECK(r.run(session, r.ecdsa_job()).ok());
}

TEST_CASE("every session invalidated at once (login lost too) heals with one new login") {
  auto& r = rig();
  auto session = r.spawn_session();
  REQUIRE(r.run(session, r.ecdsa_job()).ok());
  auto logins_before = r.faults.call_count("C_Login");
  r.faults.invalidate_all_sessions();
  auto result = r.run(session, r.ecdsa_job());
  REQUIRE(result.ok());
  CHECK(result->attempts == 2);
  CHECK(r.faults.call_count("C_Login") - logins_before == 1);
}

TEST_CASE("a removed token fails fast with a typed error and recovers after reinsertion") {
  auto& r = rig();
  auto session = r.spawn_session();
  REQUIRE(r.run(session, r.ecdsa_job()).ok());
  auto initializations = r.faults.call_count("C_Initialize");
  r.faults.remove_token();
  for (int i = 0; i < 5; ++i) {
    auto result = r.run(session, r.ecdsa_job());
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().condition() != Condition::deadline_exceeded);
    CHECK(result.error().category() == Category::retry);
    bool token_absent = result.error().rv() == CKR_DEVICE_REMOVED ||
                        result.error().rv() == CKR_TOKEN_NOT_PRESENT;
    CHECK(token_absent);
  }
  r.faults.insert_token();
  bool recovered = false;
  std::string last_error;
  for (int attempt = 0; attempt < 100 && !recovered; ++attempt) {
    auto result = r.run(session, r.ecdsa_job());
    recovered = result.ok();
    if (!recovered) {
      last_error = result.error().message();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  INFO(last_error);
  CHECK(recovered);
  CHECK(r.faults.call_count("C_Initialize") == initializations);  // nothing was restarted
  CHECK(r.stats().heals > 0);
}

TEST_CASE("a stream interrupted by a stale session fails and its session is never reused") {
  auto& r = rig();
  auto session = r.spawn_session();
  StreamSpec spec;
  spec.kind = StreamKind::sign;
  spec.mechanism = pkcs11::Mechanism::rsa_pkcs_sha256();
  spec.key.query.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY)
      .set_string(CKA_LABEL, testing::TestKeyLabels::rsa2048);
  spec.stream_id = 41;
  auto begun = r.runtime->ask<std::uint64_t>(session, testing::kAnswerBound, s_begin_atom::value,
                                             spec)
                   .get();
  REQUIRE(begun.ok());
  CK_SESSION_HANDLE streaming_handle = *begun;
  REQUIRE(r.runtime
              ->ask<std::uint64_t>(session, testing::kAnswerBound, s_update_atom::value,
                                   std::uint64_t{41}, bytes_of("part one"))
              .get()
              .ok());
  // Single-shot work waits while the stream pins the session: it never
  // runs between the stream's steps.
  auto waiting = r.submit(session, r.ecdsa_job());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_FALSE(waiting.ready());

  r.faults.invalidate_session(streaming_handle);
  auto interrupted = r.runtime
                         ->ask<std::uint64_t>(session, testing::kAnswerBound,
                                              s_update_atom::value, std::uint64_t{41},
                                              bytes_of("part two"))
                         .get();
  REQUIRE_FALSE(interrupted.ok());
  CHECK(interrupted.error().condition() == Condition::stream_interrupted);
  CHECK(interrupted.error().rv() == CKR_SESSION_HANDLE_INVALID);

  // The stream is over: the waiting job runs, on a new session.
  REQUIRE(waiting.get(testing::kAnswerBound).ok());
  auto status = r.runtime->ask<SessionStatus>(session, testing::kAnswerBound, status_atom::value)
                    .get();
  REQUIRE(status.ok());
  CHECK_FALSE(status->streaming);
  CHECK(status->session_handle != streaming_handle);
}

TEST_CASE("an aborted stream closes its session instead of sharing it") {
  auto& r = rig();
  auto session = r.spawn_session();
  StreamSpec spec;
  spec.kind = StreamKind::digest;
  spec.mechanism = pkcs11::Mechanism::sha256();
  spec.stream_id = 42;
  auto begun = r.runtime->ask<std::uint64_t>(session, testing::kAnswerBound, s_begin_atom::value,
                                             spec)
                   .get();
  REQUIRE(begun.ok());
  auto closes_before = r.faults.call_count("C_CloseSession");
  REQUIRE(r.runtime->ask<bool>(session, testing::kAnswerBound, s_abort_atom::value,
                               std::uint64_t{42})
              .get()
              .ok());
  CHECK(r.faults.call_count("C_CloseSession") - closes_before == 1);
  CHECK(r.run(session, r.ecdsa_job()).ok());
}

TEST_CASE("steps and aborts of another stream never touch the stream a session serves") {
  auto& r = rig();
  auto session = r.spawn_session();
  StreamSpec spec;
  spec.kind = StreamKind::digest;
  spec.mechanism = pkcs11::Mechanism::sha256();
  spec.stream_id = 43;
  REQUIRE(r.runtime->ask<std::uint64_t>(session, testing::kAnswerBound, s_begin_atom::value, spec)
              .get()
              .ok());
  // A late step of an abandoned stream (id 40) is refused ...
  auto stray = r.runtime
                   ->ask<std::uint64_t>(session, testing::kAnswerBound, s_update_atom::value,
                                        std::uint64_t{40}, bytes_of("stray"))
                   .get();
  REQUIRE_FALSE(stray.ok());
  CHECK(stray.error().condition() == Condition::invalid_argument);
  // ... and so is its abort, which leaves stream 43 running.
  auto closes_before = r.faults.call_count("C_CloseSession");
  REQUIRE(r.runtime->ask<bool>(session, testing::kAnswerBound, s_abort_atom::value,
                               std::uint64_t{40})
              .get()
              .ok());
  CHECK(r.faults.call_count("C_CloseSession") == closes_before);
  auto status = r.runtime->ask<SessionStatus>(session, testing::kAnswerBound, status_atom::value)
                    .get();
  REQUIRE(status.ok());
  CHECK(status->streaming);
  REQUIRE(r.runtime
              ->ask<std::uint64_t>(session, testing::kAnswerBound, s_update_atom::value,
                                   std::uint64_t{43}, bytes_of("data"))
              .get()
              .ok());
  auto digest = r.runtime
                    ->ask<JobResult>(session, testing::kAnswerBound, s_finish_atom::value,
                                     std::uint64_t{43}, Bytes())
                    .get();
  REQUIRE(digest.ok());
  CHECK(digest->bytes.size() == 32);
}

TEST_CASE("a stream whose deadline passed before it started never pins its session") {
  auto& r = rig();
  auto session = r.spawn_session();
  StreamSpec spec;
  spec.kind = StreamKind::digest;
  spec.mechanism = pkcs11::Mechanism::sha256();
  spec.stream_id = 44;
  spec.deadline_ns = deadline_after(std::chrono::nanoseconds(1));
  auto begun = r.runtime->ask<std::uint64_t>(session, testing::kAnswerBound, s_begin_atom::value,
                                             spec)
                   .get();
  REQUIRE_FALSE(begun.ok());
  CHECK(begun.error().condition() == Condition::deadline_exceeded);
  auto status = r.runtime->ask<SessionStatus>(session, testing::kAnswerBound, status_atom::value)
                    .get();
  REQUIRE(status.ok());
  CHECK_FALSE(status->streaming);
}

TEST_CASE("a session actor killed with requests queued answers each once, with an error") {
  auto& r = rig();
  auto session = r.spawn_session();
  REQUIRE(r.run(session, r.ecdsa_job()).ok());
  r.faults.set_latency("C_Sign", std::chrono::milliseconds(30));
  // The jobs it had taken are answered by it or, when it dies holding one,
  // with broken_promise; the ones still queued when its queue closes get
  // shutting_down (in a pool, a replacement session serves them instead).
  std::vector<Future<JobResult>> answers;
  for (int i = 0; i < 3; ++i) answers.push_back(r.submit(session, r.ecdsa_job()));
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  caf::anon_send_exit(session, caf::exit_reason::kill);
  for (int i = 0; i < 7; ++i) answers.push_back(r.submit(session, r.ecdsa_job()));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  r.close_queue(session);
  int errors = 0;
  int values = 0;
  for (auto& answer : answers) {
    auto result = answer.get(testing::kAnswerBound);
    if (result.ok()) {
      values++;
    } else {
      CHECK((result.error().condition() == Condition::broken_promise ||
             result.error().condition() == Condition::shutting_down));
      errors++;
    }
  }
  CHECK(values + errors == 10);
  CHECK(errors >= 7);
  r.faults.set_latency("C_Sign", std::chrono::microseconds(0));
  auto replacement = r.spawn_session();
  CHECK(r.run(replacement, r.ecdsa_job()).ok());
}

TEST_CASE("a finalised module is re-initialised and the request succeeds") {
  auto& r = rig();
  auto session = r.spawn_session();
  REQUIRE(r.run(session, r.ecdsa_job()).ok());
  auto reinit_before = r.stats().reinitializations;
  // Someone else in the process finalises the module behind our back.
  auto other = pkcs11::Module::load(r.fault_path);
  REQUIRE(other.ok());
  REQUIRE((*other)->finalize().ok());
  auto result = r.run(session, r.ecdsa_job());
  REQUIRE(result.ok());
  CHECK(result->attempts == 2);
  CHECK(r.stats().reinitializations == reinit_before + 1);
}

TEST_CASE("no session was ever entered by two threads at once") {
  auto& r = rig();
  INFO(r.faults.last_violation());
  CHECK(r.faults.violations() == 0);
}
