// The public API's promises to an outside user (issue 11's friction list):
// releasing a Token, a local wait against a request deadline, importing a
// key, stream steps after close, and no CAF in the public headers.
#include "hsmactor.hpp"

#include <catch2/catch.hpp>

#include <string>

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

}  // namespace
}  // namespace hsmactor
