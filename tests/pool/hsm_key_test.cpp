// Key references through the public API: a Key caches its object handle, keeps
// working when the token is pulled and put back, and never signs with a
// handle that now names nothing (or something else).
#include "hsmactor.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <thread>
#include <vector>

#include "pool/internal/key_access.hpp"
#include "pool/testing_hooks.hpp"
#include "tests/pool/pool_fixture.hpp"
#include "tests/support/openssl_check.hpp"

namespace hsmactor {
namespace {

using namespace std::chrono_literals;
using testing::faults;
using testing::pool_test_token;

Bytes digest_of(const std::string& text) { return testing::openssl::sha256(bytes_of(text)); }

bool is_retryable(const Error& error) {
  return error.category() == Category::retry || error.category() == Category::reauthenticate;
}

// Signs with `key` until it works or `limit` passes; collects the errors seen.
Result<Bytes> sign_until_it_works(const Token& token, const Key& key, const Bytes& digest,
                                  std::vector<Error>& errors_seen,
                                  std::chrono::milliseconds limit = 10s) {
  auto give_up = std::chrono::steady_clock::now() + limit;
  for (;;) {
    auto signature = token.sign(key, Mechanism::ecdsa(), digest).get(30s);
    if (signature.ok() || std::chrono::steady_clock::now() > give_up) return signature;
    errors_seen.push_back(signature.error());
    std::this_thread::sleep_for(50ms);
  }
}

TEST_CASE("a key reference keeps working after the token is pulled and put back") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(test_token));
  Key key = token.private_key(testing::TestKeyLabels::ec256);

  Bytes before_digest = digest_of("before the reset");
  auto before = token.sign(key, Mechanism::ecdsa(), before_digest).get(30s);
  REQUIRE(before.ok());
  const KeyRef cached = internal::KeyAccess::ref(key);
  REQUIRE(cached.handle != 0);

  // Sessions are lost and so is the login.
  faults().remove_token();
  faults().insert_token();

  Bytes after_digest = digest_of("after the reset");
  std::vector<Error> errors_seen;
  auto after = sign_until_it_works(token, key, after_digest, errors_seen);
  INFO("last error: " << (errors_seen.empty() ? "none" : errors_seen.back().message()));
  REQUIRE(after.ok());
  CHECK(testing::openssl::verify_ecdsa(test_token.ec256_public, after_digest, *after));
  for (const auto& error : errors_seen) CHECK(is_retryable(error));
  // The key was found again in the token's new generation.
  CHECK(internal::KeyAccess::ref(key).generation > cached.generation);
  testing::check_no_session_shared();
}

TEST_CASE("a request sent while the token is out fails retryably and the key works once it is back") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(test_token));
  Key key = token.private_key(testing::TestKeyLabels::ec256);
  REQUIRE(token.sign(key, Mechanism::ecdsa(), digest_of("before")).get(30s).ok());

  faults().remove_token();
  auto while_out = token.sign(key, Mechanism::ecdsa(), digest_of("while out")).get(30s);
  REQUIRE_FALSE(while_out.ok());
  INFO("while out: " << while_out.error().message());
  CHECK(is_retryable(while_out.error()));
  faults().insert_token();

  Bytes back_digest = digest_of("back again");
  std::vector<Error> errors_seen;
  auto back = sign_until_it_works(token, key, back_digest, errors_seen);
  INFO("last error: " << (errors_seen.empty() ? "none" : errors_seen.back().message()));
  REQUIRE(back.ok());
  CHECK(testing::openssl::verify_ecdsa(test_token.ec256_public, back_digest, *back));
  for (const auto& error : errors_seen) CHECK(is_retryable(error));
  testing::check_no_session_shared();
}

TEST_CASE("a key destroyed and re-created under the same label is found again, never used stale") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  Token token = testing::open_or_throw(hsm, testing::options_for(test_token));
  const std::string label = "rotating";
  auto first_pair = token.generate_key_pair(
                             pkcs11::ec_key_pair_template(pkcs11::EcCurve::p256, label,
                                                          bytes_of("rotating-1")))
                        .get(30s);
  REQUIRE(first_pair.ok());

  Key key = token.private_key(label);
  Bytes first_digest = digest_of("signed by the first key");
  auto first_signature = token.sign(key, Mechanism::ecdsa(), first_digest).get(30s);
  REQUIRE(first_signature.ok());
  REQUIRE(internal::KeyAccess::ref(key).handle == first_pair->private_key);
  auto first_public = token.export_public_key(Key::public_key(label)).get(30s);
  REQUIRE(first_public.ok());
  REQUIRE(testing::openssl::verify_ecdsa(*first_public, first_digest, *first_signature));

  REQUIRE(token.destroy(Key::private_key(label)).get(30s).ok());
  REQUIRE(token.destroy(Key::public_key(label)).get(30s).ok());
  auto second_pair = token.generate_key_pair(
                              pkcs11::ec_key_pair_template(pkcs11::EcCurve::p256, label,
                                                           bytes_of("rotating-2")))
                         .get(30s);
  REQUIRE(second_pair.ok());
  REQUIRE(second_pair->private_key != first_pair->private_key);

  // The old reference still caches the destroyed key's handle.
  Bytes second_digest = digest_of("signed by the second key");
  auto second_signature = token.sign(key, Mechanism::ecdsa(), second_digest).get(30s);
  INFO("sign: " << (second_signature.ok() ? "ok" : second_signature.error().message()));
  REQUIRE(second_signature.ok());
  auto second_public = token.export_public_key(Key::public_key(label)).get(30s);
  REQUIRE(second_public.ok());
  CHECK(testing::openssl::verify_ecdsa(*second_public, second_digest, *second_signature));
  CHECK_FALSE(testing::openssl::verify_ecdsa(*first_public, second_digest, *second_signature));
  CHECK(internal::KeyAccess::ref(key).handle == second_pair->private_key);
  testing::check_no_session_shared();
}

}  // namespace
}  // namespace hsmactor
