#include "pkcs11/session.hpp"

#include <string>

#include <catch2/catch.hpp>

#include "tests/pkcs11/catch_result.hpp"
#include "tests/pkcs11/shared_token.hpp"

// Bad input comes back as a typed error: the real CKR_* code SoftHSM2 2.6
// returns, the C_* function that returned it, and a category. Where SoftHSM2
// answers differently from what the standard suggests, the test says so and
// asserts what it really does.

namespace hsmactor::pkcs11 {
namespace {

using Catch::Matchers::Contains;
using testing::error_of;
using testing::must;

Session& session() { return testing::shared_token().session(); }
const testing::TestKeys& keys() { return testing::shared_token().keys(); }

/// Returns a new session on the shared token, for tests that leave it unusable.
Session fresh_session() {
  return must(testing::shared_token().module().open_session(testing::shared_token().slot()));
}

/// A second token of this binary that starts logged out, for the login stories.
const testing::TestToken& login_token() {
  testing::shared_token();  // keeps SoftHSM2 initialised for the whole binary
  static const testing::TestToken token = testing::create_test_token("login stories");
  return token;
}

CK_SLOT_ID login_slot() {
  return must(
      testing::shared_token().module().find_token(TokenSelector::by_label(login_token().label)));
}

TEST_CASE("a wrong PIN is CKR_PIN_INCORRECT, asks for a new login, and the right PIN works") {
  Session session = must(testing::shared_token().module().open_session(login_slot()));
  REQUIRE(session.logout());  // the token starts logged out; make sure of it

  Error error = error_of(session.login(CKU_USER, Pin("9999-secret-77")));
  CHECK(error.rv() == CKR_PIN_INCORRECT);
  CHECK(error.function() == "C_Login");
  CHECK(error.operation() == "login");
  CHECK(error.category() == Category::reauthenticate);
  CHECK_FALSE(must(session.info()).logged_in());

  REQUIRE(session.login(CKU_USER, login_token().user_pin));
  CHECK(must(session.info()).logged_in());
  REQUIRE(session.logout());
}

TEST_CASE("a login on a token already logged in succeeds without checking the PIN") {
  // Login belongs to the token: SoftHSM2 answers CKR_USER_ALREADY_LOGGED_IN
  // before it looks at the PIN, and Session::login counts that as success.
  // Only the token's login owner may rely on a login having checked its PIN.
  Session session = fresh_session();
  CHECK(session.login(CKU_USER, Pin("9999-secret-77")));
  CHECK(must(session.info()).logged_in());
}

TEST_CASE("an SO login while the user is logged in is CKR_USER_ANOTHER_ALREADY_LOGGED_IN") {
  Session session = fresh_session();
  Error error = error_of(session.login(CKU_SO, testing::shared_token().token().so_pin));
  CHECK(error.rv() == CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
  CHECK(error.category() == Category::reauthenticate);
}

TEST_CASE("an unknown (vendor-defined) mechanism is CKR_MECHANISM_INVALID at init") {
  Mechanism unknown = Mechanism::of(CKM_VENDOR_DEFINED | 0x4242);

  Error sign = error_of(session().sign(unknown, keys().ec256.private_key, Bytes(32, 1)));
  CHECK(sign.rv() == CKR_MECHANISM_INVALID);
  CHECK(sign.function() == "C_SignInit");
  CHECK(sign.category() == Category::fix_input);

  CHECK(error_of(session().digest(unknown, bytes_of("x"))).rv() == CKR_MECHANISM_INVALID);
  CHECK(error_of(session().encrypt(unknown, keys().aes, bytes_of("x"))).rv() ==
        CKR_MECHANISM_INVALID);
}

TEST_CASE("HMAC with an EC key is CKR_KEY_TYPE_INCONSISTENT, and the message says it all") {
  Error error =
      error_of(session().sign(Mechanism::hmac_sha256(), keys().ec256.private_key, bytes_of("x")));
  CHECK(error.rv() == CKR_KEY_TYPE_INCONSISTENT);
  CHECK(error.function() == "C_SignInit");
  CHECK(error.category() == Category::fix_input);
  CHECK(error.message() == "C_SignInit returned CKR_KEY_TYPE_INCONSISTENT (0x63) in sign");
}

TEST_CASE("HMAC with an AES key is CKR_KEY_TYPE_INCONSISTENT") {
  Error error = error_of(session().sign(Mechanism::hmac_sha256(), keys().aes, bytes_of("x")));
  CHECK(error.rv() == CKR_KEY_TYPE_INCONSISTENT);
  CHECK(error.category() == Category::fix_input);
}

TEST_CASE("ECDSA with an RSA key passes C_SignInit in SoftHSM2 and fails in C_Sign") {
  // SoftHSM2 2.6 does not check the key type against CKM_ECDSA at init; the
  // signature then fails with CKR_GENERAL_ERROR, which by the rule is give_up.
  Error error =
      error_of(session().sign(Mechanism::ecdsa(), keys().rsa2048.private_key, Bytes(32, 1)));
  CHECK(error.rv() == CKR_GENERAL_ERROR);
  CHECK(error.function() == "C_Sign");
  CHECK(error.category() == Category::give_up);
  // The failed C_Sign ended the operation: the session signs again.
  CHECK(session().sign(Mechanism::ecdsa(), keys().ec256.private_key, Bytes(32, 1)));
}

TEST_CASE("signing with a public key is CKR_KEY_FUNCTION_NOT_PERMITTED") {
  Error error = error_of(session().sign(Mechanism::ecdsa(), keys().ec256.public_key, Bytes(32, 1)));
  CHECK(error.rv() == CKR_KEY_FUNCTION_NOT_PERMITTED);
  CHECK(error.function() == "C_SignInit");
  CHECK(error.category() == Category::fix_input);
}

TEST_CASE("AES-CBC without padding over a partial block is CKR_DATA_LEN_RANGE") {
  Mechanism cbc = Mechanism::with_raw_parameter(CKM_AES_CBC, Bytes(16, 0));
  Error error = error_of(session().encrypt(cbc, keys().aes, Bytes(15, 1)));
  CHECK(error.rv() == CKR_DATA_LEN_RANGE);
  CHECK(error.function() == "C_Encrypt");
  CHECK(error.category() == Category::fix_input);
  CHECK(session().encrypt(cbc, keys().aes, Bytes(16, 1)));
}

TEST_CASE("raw RSA PKCS#1 over more than modulus-11 bytes fails in C_Sign") {
  // The standard's answer is CKR_DATA_LEN_RANGE; SoftHSM2 2.6 says
  // CKR_GENERAL_ERROR. (CKM_RSA_X_509 over more than the modulus would be
  // worse: SoftHSM2 2.6 calls exit() for it, so no test tries that.)
  Mechanism raw = Mechanism::of(CKM_RSA_PKCS);
  REQUIRE(session().sign(raw, keys().rsa2048.private_key, Bytes(245, 1)));

  Error error = error_of(session().sign(raw, keys().rsa2048.private_key, Bytes(246, 1)));
  CHECK(error.rv() == CKR_GENERAL_ERROR);
  CHECK(error.function() == "C_Sign");
  CHECK(error.category() == Category::give_up);
}

TEST_CASE("an AES-GCM tag that does not authenticate fails in C_Decrypt") {
  // The standard's answer is CKR_ENCRYPTED_DATA_INVALID; SoftHSM2 2.6 says
  // CKR_GENERAL_ERROR.
  Bytes iv(12, 3);
  Bytes sealed = must(
      session().encrypt(Mechanism::aes_gcm(iv, bytes_of("aad")), keys().aes, bytes_of("genuine")));
  sealed.back() ^= 0x01;

  Error error =
      error_of(session().decrypt(Mechanism::aes_gcm(iv, bytes_of("aad")), keys().aes, sealed));
  CHECK(error.rv() == CKR_GENERAL_ERROR);
  CHECK(error.function() == "C_Decrypt");
  // The same ciphertext under other AAD fails the same way.
  sealed.back() ^= 0x01;
  CHECK(error_of(session().decrypt(Mechanism::aes_gcm(iv, bytes_of("AAD")), keys().aes, sealed))
            .rv() == CKR_GENERAL_ERROR);
}

TEST_CASE("an update without an init is CKR_OPERATION_NOT_INITIALIZED") {
  Error error = error_of(session().sign_update(bytes_of("x")));
  CHECK(error.rv() == CKR_OPERATION_NOT_INITIALIZED);
  CHECK(error.function() == "C_SignUpdate");
  CHECK(error.operation() == "sign_update");
  CHECK(error_of(session().digest_final()).rv() == CKR_OPERATION_NOT_INITIALIZED);
}

TEST_CASE("a second operation on a busy session is CKR_OPERATION_ACTIVE, a retry") {
  REQUIRE(session().sign_init(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.private_key));

  Error again =
      error_of(session().sign_init(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.private_key));
  CHECK(again.rv() == CKR_OPERATION_ACTIVE);
  CHECK(again.category() == Category::retry);
  CHECK(error_of(session().sign(Mechanism::ecdsa(), keys().ec256.private_key, Bytes(32, 1))).rv() ==
        CKR_OPERATION_ACTIVE);

  // Finishing the first operation frees the session.
  REQUIRE(session().sign_update(bytes_of("x")));
  CHECK(session().sign_final());
  CHECK(session().sign(Mechanism::ecdsa(), keys().ec256.private_key, Bytes(32, 1)));
}

TEST_CASE("a refused final step can leave the operation active: that session is tainted") {
  // CKM_ECDSA is single-part in SoftHSM2. sign_final after sign_init is
  // refused as CKR_OPERATION_NOT_INITIALIZED, yet the operation stays active
  // and the session refuses every new operation. This is why a session whose
  // stream failed is closed, never returned to a pool.
  Session session = fresh_session();
  REQUIRE(session.sign_init(Mechanism::ecdsa(), keys().ec256.private_key));
  CHECK(error_of(session.sign_final()).rv() == CKR_OPERATION_NOT_INITIALIZED);

  Error busy = error_of(session.sign(Mechanism::ecdsa(), keys().ec256.private_key, Bytes(32, 1)));
  CHECK(busy.rv() == CKR_OPERATION_ACTIVE);
  CHECK(busy.function() == "C_SignInit");
  CHECK(error_of(session.digest(Mechanism::sha256(), bytes_of("x"))).rv() == CKR_OPERATION_ACTIVE);
}

TEST_CASE("a refused update of a single-part mechanism ends the operation in SoftHSM2") {
  Session session = fresh_session();
  REQUIRE(session.sign_init(Mechanism::ecdsa(), keys().ec256.private_key));
  CHECK(error_of(session.sign_update(Bytes(32, 1))).rv() == CKR_OPERATION_NOT_INITIALIZED);
  CHECK(session.sign(Mechanism::ecdsa(), keys().ec256.private_key, Bytes(32, 1)));
}

TEST_CASE("a closed session answers CKR_SESSION_HANDLE_INVALID, a stale-session code") {
  Session session = fresh_session();
  REQUIRE(session.close());
  CHECK_FALSE(session.is_open());

  Error error = error_of(session.random(4));
  CHECK(error.rv() == CKR_SESSION_HANDLE_INVALID);
  CHECK(error.category() == Category::retry);
  CHECK_THAT(error.message(), Contains("C_GenerateRandom") && Contains("in random"));
  CHECK(session.close());  // closing an empty session does nothing
}

TEST_CASE("a read-only session cannot create token objects: CKR_SESSION_READ_ONLY") {
  Session read_only = must(testing::shared_token().module().open_session(
      testing::shared_token().slot(), SessionMode::read_only));
  Error error = error_of(
      read_only.generate_key(aes_key_template(16, "never", bytes_of("never"), KeyOptions{})));
  CHECK(error.rv() == CKR_SESSION_READ_ONLY);
  CHECK(error.category() == Category::fix_input);
}

TEST_CASE("a 17-byte AES key is refused at generation as CKR_ATTRIBUTE_VALUE_INVALID") {
  KeyTemplate wrong = aes_key_template(16, "odd", bytes_of("odd"), KeyOptions{false});
  wrong.key.set_ulong(CKA_VALUE_LEN, 17);
  Error error = error_of(session().generate_key(wrong));
  CHECK(error.rv() == CKR_ATTRIBUTE_VALUE_INVALID);
  CHECK(error.function() == "C_GenerateKey");
  CHECK(error.category() == Category::fix_input);
}

}  // namespace
}  // namespace hsmactor::pkcs11
