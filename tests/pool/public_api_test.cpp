// The public API's promises to an outside user (issue 11's friction list):
// releasing a Token, a local wait against a request deadline, importing a
// key, stream steps after close, and no CAF in the public headers.
#include "hsmactor.hpp"

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <thread>

#include "tests/pool/pool_fixture.hpp"
#include "tests/support/openssl_check.hpp"

// The umbrella header must not bring in CAF (caf/config.hpp defines it).
#ifdef CAF_VERSION
#error "hsmactor.hpp includes CAF headers"
#endif

namespace hsmactor {
namespace {

using namespace std::chrono_literals;
using testing::faults;
using testing::pool_test_token;

TEST_CASE("take() moves the Token out so the Result keeps no copy") {
  faults().reset();
  Hsm hsm;
  auto opened = hsm.open_token(testing::options_for(pool_test_token()));
  REQUIRE(opened.ok());
  Token token = opened.take();
  CHECK_FALSE(opened.ok());
  REQUIRE(token.random(16).get(10s).ok());
  const auto closes_before = faults().call_count("C_CloseSession");
  token = Token();  // the last copy: the pool closes (on the completion pool)
  CHECK(testing::eventually([&] { return faults().call_count("C_CloseSession") > closes_before; }));
  auto empty = token.random(16).get(10s);
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.error().condition() == Condition::invalid_argument);
}

TEST_CASE("a local wait that expires is wait_timeout and a request deadline is deadline_exceeded") {
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(pool_test_token()));
  Bytes digest = testing::openssl::sha256(bytes_of("waits"));
  Key key = token.private_key(testing::TestKeyLabels::ec256);
  faults().set_latency("C_Sign", 200ms);
  auto slow = token.sign(key, Mechanism::ecdsa(), digest);
  auto early = slow.get(1ms);
  REQUIRE_FALSE(early.ok());
  CHECK(early.error().condition() == Condition::wait_timeout);
  CHECK(slow.get(30s).ok());  // the request went on
  auto passed = token.with_deadline(-1ms).sign(key, Mechanism::ecdsa(), digest).get(30s);
  REQUIRE_FALSE(passed.ok());
  CHECK(passed.error().condition() == Condition::deadline_exceeded);
  faults().set_latency("C_Sign", 0us);
}

TEST_CASE("create_object imports an HMAC key that secret_key() then finds and uses") {
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(pool_test_token()));
  Bytes secret = bytes_of("an imported hmac key, 32 bytes!!");
  pkcs11::AttributeList attributes;
  attributes.set_ulong(CKA_CLASS, CKO_SECRET_KEY)
      .set_ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET)
      .set_string(CKA_LABEL, "imported-hmac")
      .set_bool(CKA_TOKEN, false)
      .set_bool(CKA_SIGN, true)
      .set_bool(CKA_VERIFY, true)
      .set_bytes(CKA_VALUE, secret);
  auto handle = token.create_object(attributes).get(30s);
  INFO((handle.ok() ? std::string("ok") : handle.error().message()));
  REQUIRE(handle.ok());
  Bytes data = bytes_of("message");
  auto mac = token.sign(token.secret_key("imported-hmac"), Mechanism::hmac_sha256(), data).get(30s);
  REQUIRE(mac.ok());
  CHECK(*mac == testing::openssl::hmac_sha256(secret, data));
  auto found = token.find_objects(Key::secret_key("imported-hmac").query()).get(30s);
  REQUIRE(found.ok());
  CHECK(found->size() == 1);
}

TEST_CASE("a stream step after close answers shutting_down") {
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(pool_test_token()));
  auto stream = token.open_stream(StreamKind::digest, Mechanism::sha256()).get(30s);
  REQUIRE(stream.ok());
  REQUIRE(stream->update(bytes_of("part")).get(30s).ok());
  token.close();
  auto after = stream->update(bytes_of("more")).get(30s);
  REQUIRE_FALSE(after.ok());
  CHECK(after.error().condition() == Condition::shutting_down);  // before: broken_promise
  auto finished = stream->finish().get(30s);
  REQUIRE_FALSE(finished.ok());
  CHECK(finished.error().condition() == Condition::shutting_down);
}

TEST_CASE("closing while a call runs waits for it before logging out") {
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(pool_test_token()));
  Key key = token.private_key(testing::TestKeyLabels::ec256);
  Bytes digest = testing::openssl::sha256(bytes_of("close during a call"));
  REQUIRE(token.find_key(key).get(30s).ok());
  // Held in C_SignInit, before the real module starts the operation: a
  // logout now would leave the call without its key (SoftHSM2 finishes an
  // operation that had started before a logout, so a delay in C_Sign would
  // not show the bug).
  faults().set_latency("C_SignInit", 300ms);
  auto running = token.sign(key, Mechanism::ecdsa(), digest);
  REQUIRE(testing::eventually([] { return faults().threads_inside() > 0; }));
  token.close();
  faults().set_latency("C_SignInit", 0us);
  // Logged out under the call, it would meet CKR_USER_NOT_LOGGED_IN and fail
  // its retry (the session could no longer log in): it must sign instead.
  auto signature = running.get(30s);
  INFO((signature.ok() ? std::string("ok") : signature.error().message()));
  REQUIRE(signature.ok());
  CHECK(testing::openssl::verify_ecdsa(pool_test_token().ec256_public, digest, *signature));
}

TEST_CASE("~Hsm is bounded by shutdown_timeout when a module call does not return") {
  faults().reset();
  Future<Bytes> stuck;
  std::chrono::steady_clock::duration destroying{};
  {
    RuntimeOptions runtime;
    runtime.shutdown_timeout = 300ms;
    std::optional<Hsm> hsm;
    hsm.emplace(runtime);
    Token token = testing::open_or_throw(*hsm, testing::options_for(pool_test_token()));
    Key key = token.private_key(testing::TestKeyLabels::ec256);
    REQUIRE(token.find_key(key).get(30s).ok());
    // Far longer than the bound: to ~Hsm this call never returns.
    faults().set_latency("C_Sign", 8s);
    stuck = token.sign(key, Mechanism::ecdsa(), testing::openssl::sha256(bytes_of("stuck")));
    REQUIRE(testing::eventually([] { return faults().threads_inside() > 0; }));
    token = Token();
    const auto started = std::chrono::steady_clock::now();
    hsm.reset();
    destroying = std::chrono::steady_clock::now() - started;
  }
  faults().set_latency("C_Sign", 0us);
  // Returned long before the call did (it waits the bound, not the call).
  CHECK(destroying < 6s);
  // The call's request still gets its one answer once the module returns.
  auto answer = stuck.get(30s);
  CHECK((answer.ok() || answer.error().condition() != Condition::wait_timeout));
}

TEST_CASE("a request withdrawn before it starts never reaches the module and answers withdrawn") {
  faults().reset();
  Hsm hsm;
  auto options = testing::options_for(pool_test_token());
  options.max_sessions = 1;
  Token token = testing::open_or_throw(hsm, options);
  Key key = token.private_key(testing::TestKeyLabels::ec256);
  Bytes digest = testing::openssl::sha256(bytes_of("withdraw"));
  REQUIRE(token.find_key(key).get(30s).ok());
  faults().reset_counts();
  faults().set_latency("C_Sign", 300ms);
  auto running = token.sign(key, Mechanism::ecdsa(), digest);
  REQUIRE(testing::eventually([] { return faults().threads_inside() > 0; }));
  auto queued = token.sign(key, Mechanism::ecdsa(), digest);
  auto batch = token.sign_many(key, Mechanism::ecdsa(), {digest, digest});
  Withdrawal give_up_running = running.withdrawal();
  Withdrawal give_up_queued = queued.withdrawal();
  CHECK_FALSE(give_up_running.withdraw());  // it started: it finishes
  CHECK(give_up_queued.withdraw());
  CHECK(give_up_queued.withdraw());  // asking again changes nothing
  CHECK(batch.withdrawal().withdraw());
  faults().set_latency("C_Sign", 0us);
  auto signature = running.get(30s);
  REQUIRE(signature.ok());
  CHECK(testing::openssl::verify_ecdsa(pool_test_token().ec256_public, digest, *signature));
  auto withdrawn = queued.get(30s);
  REQUIRE_FALSE(withdrawn.ok());
  CHECK(withdrawn.error().condition() == Condition::withdrawn);
  CHECK(withdrawn.error().category() == Category::retry);
  auto withdrawn_batch = batch.get(30s);
  REQUIRE_FALSE(withdrawn_batch.ok());
  CHECK(withdrawn_batch.error().condition() == Condition::withdrawn);
  CHECK(faults().call_count("C_Sign") == 1);
  // A ready future has nothing to withdraw.
  CHECK_FALSE(token.random(0).withdrawal().withdraw());
  // The session is free for the next request.
  CHECK(token.sign(key, Mechanism::ecdsa(), digest).get(30s).ok());
}

}  // namespace
}  // namespace hsmactor
