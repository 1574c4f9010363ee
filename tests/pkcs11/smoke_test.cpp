#include <catch2/catch.hpp>
#include "tests/support/softhsm_token.hpp"
using namespace hsmactor;
TEST_CASE("smoke") {
  auto token = testing::create_test_token("smoke");
  testing::LoggedInSession s(token);
  auto keys = testing::create_test_keys(s.session());
  Bytes digest(32, 7);
  auto sig = s.session().sign(pkcs11::Mechanism::ecdsa(), keys.ec256.private_key, digest);
  REQUIRE(sig.ok());
  CHECK(sig->size() == 64);
  auto ok = s.session().verify(pkcs11::Mechanism::ecdsa(), keys.ec256.public_key, digest, *sig);
  REQUIRE(ok.ok()); CHECK(*ok);
  auto rsa = s.session().sign(pkcs11::Mechanism::rsa_pkcs_sha256(), keys.rsa2048.private_key, bytes_of("hello"));
  REQUIRE(rsa.ok()); CHECK(rsa->size() == 256);
  auto info = s.module().token_info(s.slot());
  REQUIRE(info.ok());
  WARN("max sessions " << (info->max_sessions ? *info->max_sessions : 0) << " label " << info->label << " serial " << info->serial);
}
