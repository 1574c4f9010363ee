#include "pkcs11/attributes.hpp"

#include <cstring>

#include <catch2/catch.hpp>

namespace hsmactor::pkcs11 {
namespace {

TEST_CASE("attributes keep their order and setting a type again replaces its value") {
  AttributeList list;
  list.set_string(CKA_LABEL, "first")
      .set_ulong(CKA_CLASS, CKO_SECRET_KEY)
      .set_string(CKA_LABEL, "second");
  REQUIRE(list.size() == 2);
  CHECK(list.items()[0].type == CKA_LABEL);
  CHECK(list.get(CKA_LABEL) == bytes_of("second"));
  CHECK(list.items()[1].type == CKA_CLASS);
}

TEST_CASE("values read back in the type they were written as") {
  AttributeList list;
  list.set_ulong(CKA_VALUE_LEN, 32).set_bool(CKA_SIGN, true).set_bool(CKA_DECRYPT, false);
  CHECK(list.get_ulong(CKA_VALUE_LEN) == 32);
  CHECK(list.get_bool(CKA_SIGN) == true);
  CHECK(list.get_bool(CKA_DECRYPT) == false);
  CHECK(list.get(CKA_SIGN) == Bytes{CK_TRUE});
}

TEST_CASE("a value of the wrong size or a missing type reads as nothing") {
  AttributeList list;
  list.set_bytes(CKA_VALUE_LEN, Bytes{1, 2}).set_bytes(CKA_SIGN, Bytes{1, 1});
  CHECK_FALSE(list.get_ulong(CKA_VALUE_LEN));
  CHECK_FALSE(list.get_bool(CKA_SIGN));
  CHECK_FALSE(list.get(CKA_ID));
  CHECK_FALSE(list.get_ulong(CKA_ID));
}

TEST_CASE("a CK_ATTRIBUTE template points into the list, and empty values at nothing") {
  AttributeList list;
  list.set_string(CKA_LABEL, "key").set_bytes(CKA_ID, Bytes()).set_ulong(CKA_CLASS, CKO_DATA);
  CkTemplate ck(list);
  REQUIRE(ck.size() == 3);
  CHECK(ck.data()[0].type == CKA_LABEL);
  CHECK(ck.data()[0].pValue == list.items()[0].value.data());
  CHECK(ck.data()[0].ulValueLen == 3);
  CHECK(ck.data()[1].pValue == nullptr);
  CHECK(ck.data()[1].ulValueLen == 0);
  CK_ULONG object_class = 0;
  std::memcpy(&object_class, ck.data()[2].pValue, sizeof object_class);
  CHECK(object_class == CKO_DATA);

  CHECK(CkTemplate(AttributeList()).data() == nullptr);
}

TEST_CASE("curve parameters are the DER OIDs of P-256 and P-384") {
  CHECK(ec_params_der(EcCurve::p256) ==
        Bytes{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07});
  CHECK(ec_params_der(EcCurve::p384) == Bytes{0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22});
  CHECK(ec_digest_size(EcCurve::p256) == 32);
  CHECK(ec_digest_size(EcCurve::p384) == 48);
}

TEST_CASE("an EC template makes a signing key that stays on the token by default") {
  KeyPairTemplate spec = ec_key_pair_template(EcCurve::p384, "signer", bytes_of("01"));
  CHECK(spec.mechanism.type == CKM_EC_KEY_PAIR_GEN);
  CHECK(spec.public_key.get(CKA_EC_PARAMS) == ec_params_der(EcCurve::p384));
  CHECK(spec.public_key.get_bool(CKA_VERIFY) == true);
  CHECK(spec.public_key.get(CKA_LABEL) == bytes_of("signer"));
  CHECK(spec.private_key.get_bool(CKA_SIGN) == true);
  CHECK(spec.private_key.get_bool(CKA_TOKEN) == true);
  CHECK(spec.private_key.get_bool(CKA_SENSITIVE) == true);
  CHECK(spec.private_key.get_bool(CKA_EXTRACTABLE) == false);
  CHECK(spec.private_key.get(CKA_ID) == bytes_of("01"));
}

TEST_CASE("key options choose session objects and extractable, readable secrets") {
  KeyOptions options;
  options.persistent = false;
  options.extractable = true;
  options.sensitive = false;
  KeyTemplate spec = aes_key_template(24, "k", bytes_of("k"), options);
  CHECK(spec.mechanism.type == CKM_AES_KEY_GEN);
  CHECK(spec.key.get_ulong(CKA_VALUE_LEN) == 24);
  CHECK(spec.key.get_bool(CKA_TOKEN) == false);
  CHECK(spec.key.get_bool(CKA_EXTRACTABLE) == true);
  CHECK(spec.key.get_bool(CKA_SENSITIVE) == false);
  CHECK(spec.key.get_bool(CKA_ENCRYPT) == true);
}

TEST_CASE("an RSA template asks for the modulus size and the exponent 65537") {
  KeyPairTemplate spec = rsa_key_pair_template(3072, "rsa", bytes_of("r"));
  CHECK(spec.public_key.get_ulong(CKA_MODULUS_BITS) == 3072);
  CHECK(spec.public_key.get(CKA_PUBLIC_EXPONENT) == Bytes{0x01, 0x00, 0x01});
  CHECK(spec.private_key.get_bool(CKA_DECRYPT) == true);
}

TEST_CASE("an HMAC key signs and verifies, and an import carries its value") {
  KeyTemplate hmac = hmac_key_template(32, "mac", bytes_of("m"));
  CHECK(hmac.mechanism.type == CKM_GENERIC_SECRET_KEY_GEN);
  CHECK(hmac.key.get_ulong(CKA_KEY_TYPE) == CKK_GENERIC_SECRET);
  CHECK(hmac.key.get_bool(CKA_SIGN) == true);
  CHECK_FALSE(hmac.key.get(CKA_ENCRYPT));

  AttributeList imported = secret_key_import_template(CKK_AES, Bytes(16, 7), "aes", bytes_of("a"));
  CHECK(imported.get(CKA_VALUE) == Bytes(16, 7));
  CHECK(imported.get_ulong(CKA_CLASS) == CKO_SECRET_KEY);
  CHECK(imported.get_bool(CKA_DECRYPT) == true);
}

TEST_CASE("an empty label or id is left out of a template rather than set empty") {
  KeyPairTemplate spec = ec_key_pair_template(EcCurve::p256, "", Bytes());
  CHECK_FALSE(spec.private_key.get(CKA_LABEL));
  CHECK_FALSE(spec.private_key.get(CKA_ID));
}

}  // namespace
}  // namespace hsmactor::pkcs11
