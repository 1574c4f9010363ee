// Bad input through the public API: each gets a typed error (and, where the
// module returned one, the CKR_* name), never a crash, a hang or an absurd
// allocation; the token keeps working afterwards.
#include "hsmactor.hpp"

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <string>

#include "tests/pool/pool_fixture.hpp"
#include "tests/support/openssl_check.hpp"

namespace hsmactor {
namespace {

using namespace std::chrono_literals;
using testing::faults;
using testing::pool_test_token;

std::string condition_of(const Error& error) { return to_string(error.condition()); }

/// Opens the shared test token once per test case.
struct Opened {
  Hsm hsm;
  Token token;
  Opened() {
    faults().reset();
    token = testing::open_or_throw(hsm, testing::options_for(pool_test_token()));
  }
  ~Opened() {
    // Whatever came before, the token still serves.
    CHECK(token.random(8).get(10s).ok());
    testing::check_no_session_shared();
  }
};

Bytes digest_of(const char* text) { return testing::openssl::sha256(bytes_of(text)); }

TEST_CASE("an empty key label is object_not_found") {
  Opened t;
  auto signature = t.token.sign(Key::private_key(""), Mechanism::ecdsa(), digest_of("x")).get(10s);
  REQUIRE_FALSE(signature.ok());
  CHECK(condition_of(signature.error()) == "object_not_found");
  CHECK(signature.error().category() == Category::fix_input);
}

TEST_CASE("a missing key is object_not_found and names the label") {
  Opened t;
  auto signature =
      t.token.sign(Key::private_key("no-such-key"), Mechanism::ecdsa(), digest_of("x")).get(10s);
  REQUIRE_FALSE(signature.ok());
  CHECK(condition_of(signature.error()) == "object_not_found");
  CHECK(testing::contains(signature.error().message(), "no-such-key"));
  auto found = t.token.find_key(Key::private_key("no-such-key")).get(10s);
  REQUIRE_FALSE(found.ok());
  CHECK(condition_of(found.error()) == "object_not_found");
}

TEST_CASE("a mechanism of another key type names the CKR_* code") {
  Opened t;
  // RSA PKCS#1 with an EC key.
  auto rsa_on_ec = t.token.sign(Key::private_key(testing::TestKeyLabels::ec256),
                                Mechanism::rsa_pkcs_sha256(), bytes_of("message"))
                       .get(10s);
  REQUIRE_FALSE(rsa_on_ec.ok());
  CHECK(rsa_on_ec.error().rv() != CKR_OK);
  CHECK(rsa_on_ec.error().rv_name().rfind("CKR_", 0) == 0);
  CHECK(rsa_on_ec.error().function().rfind("C_Sign", 0) == 0);
  INFO(rsa_on_ec.error().message());
  // HMAC with an EC key.
  auto hmac_on_ec = t.token.sign(Key::private_key(testing::TestKeyLabels::ec256),
                                 Mechanism::hmac_sha256(), bytes_of("message"))
                        .get(10s);
  REQUIRE_FALSE(hmac_on_ec.ok());
  CHECK(hmac_on_ec.error().rv() != CKR_OK);
  CHECK(hmac_on_ec.error().category() == Category::fix_input);
}

TEST_CASE("an RSA input too large for the key is a pkcs11_error naming the module's code") {
  Opened t;
  Bytes plaintext(4096, 0x41);  // RSA-2048 OAEP takes at most 214 bytes
  // SoftHSM2 does OAEP with SHA-1 only.
  auto encrypted = t.token.encrypt(Key::public_key(testing::TestKeyLabels::rsa2048),
                                   Mechanism::rsa_oaep_sha1(), plaintext)
                       .get(10s);
  REQUIRE_FALSE(encrypted.ok());
  INFO(encrypted.error().message());
  // SoftHSM2 answers CKR_GENERAL_ERROR here (others CKR_DATA_LEN_RANGE): the
  // error passes the module's code on, it does not guess.
  CHECK(condition_of(encrypted.error()) == "pkcs11_error");
  CHECK(encrypted.error().rv() != CKR_OK);
  CHECK(encrypted.error().function() == "C_Encrypt");
  // Raw PKCS#1 v1.5 signing of more than the modulus allows.
  auto signed_raw = t.token.sign(Key::private_key(testing::TestKeyLabels::rsa2048),
                                 Mechanism::of(CKM_RSA_PKCS), plaintext)
                        .get(10s);
  REQUIRE_FALSE(signed_raw.ok());
  INFO(signed_raw.error().message());
  CHECK(signed_raw.error().rv() != CKR_OK);
}

TEST_CASE("random outside 1 byte to 1 MiB is invalid_argument, without allocating it") {
  Opened t;
  auto none = t.token.random(0).get(10s);
  REQUIRE_FALSE(none.ok());
  CHECK(condition_of(none.error()) == "invalid_argument");
  auto huge = t.token.random(std::size_t{1} << 30).get(10s);
  REQUIRE_FALSE(huge.ok());
  CHECK(condition_of(huge.error()) == "invalid_argument");
  auto most = t.token.random(std::size_t{1} << 20).get(30s);
  REQUIRE(most.ok());
  CHECK(most->size() == (std::size_t{1} << 20));
}

TEST_CASE("a malformed pkcs11 URI is invalid_argument") {
  Hsm hsm;
  TokenOptions options;
  options.uri = "pkcs11:token=%zz;;;object";
  auto token = hsm.open_token(options);
  REQUIRE_FALSE(token.ok());
  CHECK(condition_of(token.error()) == "invalid_argument");
  options.uri = "https://example.invalid/not-pkcs11";
  token = hsm.open_token(options);
  REQUIRE_FALSE(token.ok());
  CHECK(condition_of(token.error()) == "invalid_argument");
}

TEST_CASE("a module path to a text file, a directory or a non-PKCS#11 library is refused") {
  Hsm hsm;
  auto refused = [&](const std::string& path) {
    TokenOptions options = testing::options_for(pool_test_token());
    options.module_path = path;
    auto token = hsm.open_token(options);
    INFO(path << ": " << (token.ok() ? std::string("opened") : token.error().message()));
    CHECK_FALSE(token.ok());
    return token.ok() ? std::string() : condition_of(token.error());
  };
  const std::string text = std::string(std::getenv("TEST_TMPDIR")) + "/not-a-module.txt";
  std::ofstream(text) << "this is not a shared library\n";
  CHECK(refused(text) == "module_load_failed");
  CHECK(refused(std::getenv("TEST_TMPDIR")) != "");
  CHECK(refused("/no/such/module.so") != "");
  // A real shared library without C_GetFunctionList (glibc's libm).
  std::string not_pkcs11 = "/lib/x86_64-linux-gnu/libm.so.6";
  if (std::ifstream(not_pkcs11).good()) CHECK(refused(not_pkcs11) == "module_load_failed");
}

TEST_CASE("an empty PIN is refused unless no login was chosen explicitly") {
  Hsm hsm;
  TokenOptions options = testing::options_for(pool_test_token());
  options.pin = Pin();  // e.g. Pin::from_env of a variable that is not set
  auto refused = hsm.open_token(options);
  REQUIRE_FALSE(refused.ok());
  CHECK(condition_of(refused.error()) == "invalid_argument");
  CHECK(testing::contains(refused.error().message(), "Login::none"));

  options.login = Login::none;
  auto token = hsm.open_token(options);
  REQUIRE(token.ok());
  auto signature = token->sign(Key::private_key(testing::TestKeyLabels::ec256), Mechanism::ecdsa(),
                               digest_of("x"))
                       .get(10s);
  REQUIRE_FALSE(signature.ok());
  INFO(signature.error().message());
  CHECK((condition_of(signature.error()) == "object_not_found" ||
         signature.error().rv() == CKR_USER_NOT_LOGGED_IN));

  TokenOptions both = testing::options_for(pool_test_token());
  both.login = Login::none;
  auto contradictory = hsm.open_token(both);
  REQUIRE_FALSE(contradictory.ok());
  CHECK(condition_of(contradictory.error()) == "invalid_argument");
}

TEST_CASE("a 1 MiB PIN is refused with a CKR_* code and never echoed") {
  Hsm hsm;
  TokenOptions options = testing::options_for(pool_test_token());
  std::string huge(std::size_t{1} << 20, '7');
  options.pin = Pin(huge);
  auto token = hsm.open_token(options);
  REQUIRE_FALSE(token.ok());
  INFO(token.error().rv_name());
  CHECK(token.error().rv() != CKR_OK);
  CHECK_FALSE(testing::contains(token.error().message(), "7777777777"));
}

}  // namespace
}  // namespace hsmactor
