#include "pkcs11/session.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/pkcs11/catch_result.hpp"
#include "tests/pkcs11/shared_token.hpp"
#include "tests/support/openssl_check.hpp"

// Keys: generated with chosen attributes and read back, found by label, id
// and class, exported, and destroyed.

namespace hsmactor::pkcs11 {
namespace {

using testing::must;
namespace openssl = testing::openssl;

Session& session() { return testing::shared_token().session(); }
const testing::TestKeys& keys() { return testing::shared_token().keys(); }

bool contains(const std::vector<CK_OBJECT_HANDLE>& handles, CK_OBJECT_HANDLE handle) {
  return std::find(handles.begin(), handles.end(), handle) != handles.end();
}

AttributeList read(CK_OBJECT_HANDLE object, const std::vector<CK_ATTRIBUTE_TYPE>& types) {
  return must(session().get_attributes(object, types));
}

/// Session-object options: gone when the session closes, readable outside.
KeyOptions scratch(bool extractable = false) {
  KeyOptions options;
  options.persistent = false;
  options.extractable = extractable;
  options.sensitive = !extractable;
  return options;
}

// --- Generation with chosen attributes ----------------------------------------

TEST_CASE("an EC key pair is generated with the label, id and usage asked for") {
  KeyPairHandles pair = must(session().generate_key_pair(
      ec_key_pair_template(EcCurve::p256, "ec-chosen", bytes_of("id-ec-1"), scratch())));

  AttributeList priv = read(
      pair.private_key, {CKA_CLASS, CKA_KEY_TYPE, CKA_LABEL, CKA_ID, CKA_SIGN, CKA_TOKEN,
                         CKA_PRIVATE, CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_LOCAL, CKA_EC_PARAMS});
  CHECK(priv.get_ulong(CKA_CLASS) == CKO_PRIVATE_KEY);
  CHECK(priv.get_ulong(CKA_KEY_TYPE) == CKK_EC);
  CHECK(priv.get(CKA_LABEL) == bytes_of("ec-chosen"));
  CHECK(priv.get(CKA_ID) == bytes_of("id-ec-1"));
  CHECK(priv.get_bool(CKA_SIGN) == true);
  CHECK(priv.get_bool(CKA_TOKEN) == false);
  CHECK(priv.get_bool(CKA_PRIVATE) == true);
  CHECK(priv.get_bool(CKA_SENSITIVE) == true);
  CHECK(priv.get_bool(CKA_EXTRACTABLE) == false);
  CHECK(priv.get_bool(CKA_LOCAL) == true);  // made inside the token
  CHECK(priv.get(CKA_EC_PARAMS) == ec_params_der(EcCurve::p256));

  AttributeList pub = read(pair.public_key, {CKA_CLASS, CKA_LABEL, CKA_ID, CKA_VERIFY});
  CHECK(pub.get_ulong(CKA_CLASS) == CKO_PUBLIC_KEY);
  CHECK(pub.get(CKA_LABEL) == bytes_of("ec-chosen"));
  CHECK(pub.get(CKA_ID) == bytes_of("id-ec-1"));
  CHECK(pub.get_bool(CKA_VERIFY) == true);
}

TEST_CASE("an RSA key pair is generated with its size, exponent and usage") {
  KeyPairHandles pair = must(session().generate_key_pair(
      rsa_key_pair_template(1024, "rsa-chosen", bytes_of("id-rsa-1"), scratch())));

  AttributeList pub = read(pair.public_key, {CKA_KEY_TYPE, CKA_MODULUS_BITS, CKA_PUBLIC_EXPONENT,
                                             CKA_VERIFY, CKA_ENCRYPT, CKA_LABEL});
  CHECK(pub.get_ulong(CKA_KEY_TYPE) == CKK_RSA);
  CHECK(pub.get_ulong(CKA_MODULUS_BITS) == 1024);
  CHECK(pub.get(CKA_PUBLIC_EXPONENT) == Bytes{0x01, 0x00, 0x01});
  CHECK(pub.get_bool(CKA_VERIFY) == true);
  CHECK(pub.get_bool(CKA_ENCRYPT) == true);
  CHECK(pub.get(CKA_LABEL) == bytes_of("rsa-chosen"));

  AttributeList priv = read(pair.private_key, {CKA_SIGN, CKA_DECRYPT, CKA_ID});
  CHECK(priv.get_bool(CKA_SIGN) == true);
  CHECK(priv.get_bool(CKA_DECRYPT) == true);
  CHECK(priv.get(CKA_ID) == bytes_of("id-rsa-1"));
}

TEST_CASE("an extractable, non-sensitive AES key shows its value, and OpenSSL agrees with it") {
  CK_OBJECT_HANDLE key = must(session().generate_key(
      aes_key_template(32, "aes-open", bytes_of("id-aes-1"), scratch(true))));

  AttributeList attributes = read(key, {CKA_CLASS, CKA_KEY_TYPE, CKA_VALUE_LEN, CKA_ENCRYPT,
                                        CKA_DECRYPT, CKA_EXTRACTABLE, CKA_SENSITIVE, CKA_LABEL});
  CHECK(attributes.get_ulong(CKA_CLASS) == CKO_SECRET_KEY);
  CHECK(attributes.get_ulong(CKA_KEY_TYPE) == CKK_AES);
  CHECK(attributes.get_ulong(CKA_VALUE_LEN) == 32);
  CHECK(attributes.get_bool(CKA_ENCRYPT) == true);
  CHECK(attributes.get_bool(CKA_DECRYPT) == true);
  CHECK(attributes.get_bool(CKA_EXTRACTABLE) == true);
  CHECK(attributes.get_bool(CKA_SENSITIVE) == false);
  CHECK(attributes.get(CKA_LABEL) == bytes_of("aes-open"));

  Bytes value = must(session().get_attribute(key, CKA_VALUE));
  REQUIRE(value.size() == 32);
  Bytes iv(12, 5);
  Bytes sealed = must(session().encrypt(Mechanism::aes_gcm(iv), key, bytes_of("generated")));
  CHECK(openssl::aes_gcm_decrypt(value, iv, ByteView(), sealed) == bytes_of("generated"));
}

TEST_CASE("a sensitive AES key never shows its value: CKR_ATTRIBUTE_SENSITIVE") {
  CK_OBJECT_HANDLE key = must(
      session().generate_key(aes_key_template(16, "aes-closed", bytes_of("id-aes-2"), scratch())));
  CHECK(read(key, {CKA_VALUE_LEN}).get_ulong(CKA_VALUE_LEN) == 16);

  Error error = testing::error_of(session().get_attribute(key, CKA_VALUE));
  CHECK(error.rv() == CKR_ATTRIBUTE_SENSITIVE);
  CHECK(error.function() == "C_GetAttributeValue");
  CHECK(error.category() == Category::fix_input);
}

TEST_CASE("a generic secret key is generated for HMAC and signs with it") {
  CK_OBJECT_HANDLE key = must(session().generate_key(
      hmac_key_template(32, "hmac-generated", bytes_of("id-hmac-1"), scratch(true))));

  AttributeList attributes = read(key, {CKA_KEY_TYPE, CKA_SIGN, CKA_VERIFY, CKA_VALUE_LEN});
  CHECK(attributes.get_ulong(CKA_KEY_TYPE) == CKK_GENERIC_SECRET);
  CHECK(attributes.get_bool(CKA_SIGN) == true);
  CHECK(attributes.get_bool(CKA_VERIFY) == true);
  CHECK(attributes.get_ulong(CKA_VALUE_LEN) == 32);

  Bytes value = must(session().get_attribute(key, CKA_VALUE));
  Bytes mac = must(session().sign(Mechanism::hmac_sha256(), key, bytes_of("generated mac")));
  CHECK(mac == openssl::hmac_sha256(value, bytes_of("generated mac")));
}

TEST_CASE("a key imported with a known value reads back as that key") {
  AttributeList attributes = read(keys().hmac, {CKA_KEY_TYPE, CKA_LABEL, CKA_LOCAL, CKA_TOKEN});
  CHECK(attributes.get_ulong(CKA_KEY_TYPE) == CKK_GENERIC_SECRET);
  CHECK(attributes.get(CKA_LABEL) == bytes_of(testing::TestKeyLabels::hmac));
  CHECK(attributes.get_bool(CKA_LOCAL) == false);  // it came from outside
  CHECK(attributes.get_bool(CKA_TOKEN) == true);
}

TEST_CASE("reading an attribute the object does not have is CKR_ATTRIBUTE_TYPE_INVALID") {
  Error error = testing::error_of(session().get_attribute(keys().aes, CKA_MODULUS));
  CHECK(error.rv() == CKR_ATTRIBUTE_TYPE_INVALID);
  CHECK(error.category() == Category::fix_input);
}

TEST_CASE("a key made without label or id reads back an empty label and id") {
  KeyPairHandles pair = must(
      session().generate_key_pair(ec_key_pair_template(EcCurve::p256, "", Bytes(), scratch())));
  AttributeList attributes = read(pair.private_key, {CKA_LABEL, CKA_ID});
  CHECK(attributes.get(CKA_LABEL) == Bytes());
  CHECK(attributes.get(CKA_ID) == Bytes());
}

// --- Finding -------------------------------------------------------------------

TEST_CASE("objects are found by label: both halves of a pair share it") {
  auto found = must(
      session().find_objects(AttributeList().set_string(CKA_LABEL, testing::TestKeyLabels::ec256)));
  CHECK(found.size() == 2);
  CHECK(contains(found, keys().ec256.private_key));
  CHECK(contains(found, keys().ec256.public_key));
}

TEST_CASE("objects are found by id and class together") {
  auto found = must(session().find_objects(AttributeList()
                                               .set_bytes(CKA_ID, bytes_of("rsa2048"))
                                               .set_ulong(CKA_CLASS, CKO_PRIVATE_KEY)));
  REQUIRE(found.size() == 1);
  CHECK(found[0] == keys().rsa2048.private_key);
}

TEST_CASE("objects are found by class: every secret key, and no key pair half") {
  auto secrets = must(session().find_objects(AttributeList().set_ulong(CKA_CLASS, CKO_SECRET_KEY)));
  CHECK(contains(secrets, keys().hmac));
  CHECK(contains(secrets, keys().aes));
  CHECK_FALSE(contains(secrets, keys().ec256.private_key));
  CHECK_FALSE(contains(secrets, keys().rsa2048.public_key));
}

TEST_CASE("an empty query finds every object and a limit caps the answer") {
  auto all = must(session().find_objects(AttributeList()));
  CHECK(all.size() >= 8);  // three pairs and two secret keys
  for (CK_OBJECT_HANDLE key : {keys().ec256.private_key, keys().ec384.public_key, keys().hmac}) {
    CHECK(contains(all, key));
  }
  CHECK(must(session().find_objects(AttributeList(), 3)).size() == 3);
  CHECK(must(session().find_objects(AttributeList(), 1)).size() == 1);
}

TEST_CASE("a query nothing matches finds nothing, and is not an error") {
  CHECK(must(session().find_objects(AttributeList().set_string(CKA_LABEL, "no such key"))).empty());
}

TEST_CASE("more matches than one C_FindObjects batch are all found") {
  std::vector<CK_OBJECT_HANDLE> made;
  for (int i = 0; i < 70; ++i) {
    AttributeList data;
    data.set_ulong(CKA_CLASS, CKO_DATA)
        .set_bool(CKA_TOKEN, false)
        .set_string(CKA_LABEL, "many-data")
        .set_bytes(CKA_VALUE, Bytes{static_cast<std::uint8_t>(i)});
    made.push_back(must(session().create_object(data)));
  }
  auto found = must(session().find_objects(AttributeList().set_string(CKA_LABEL, "many-data")));
  CHECK(found.size() == 70);
  for (CK_OBJECT_HANDLE handle : made) CHECK(contains(found, handle));
  for (CK_OBJECT_HANDLE handle : made) REQUIRE(session().destroy_object(handle));
}

// --- Exporting public keys ---------------------------------------------------

TEST_CASE("an EC public key exports its curve and its point, wrapped and bare") {
  PublicKey p256 = must(session().export_public_key(keys().ec256.public_key));
  CHECK(p256.key_type == CKK_EC);
  CHECK(p256.ec_params == ec_params_der(EcCurve::p256));
  REQUIRE(p256.ec_point.size() == 65);
  CHECK(p256.ec_point[0] == 0x04);  // uncompressed
  // The DER OCTET STRING around it: tag 0x04, length 0x41 (65).
  REQUIRE(p256.ec_point_der.size() == 67);
  CHECK(p256.ec_point_der[0] == 0x04);
  CHECK(p256.ec_point_der[1] == 0x41);
  CHECK(Bytes(p256.ec_point_der.begin() + 2, p256.ec_point_der.end()) == p256.ec_point);
  CHECK(p256.modulus.empty());

  PublicKey p384 = must(session().export_public_key(keys().ec384.public_key));
  CHECK(p384.ec_params == ec_params_der(EcCurve::p384));
  CHECK(p384.ec_point.size() == 97);
}

TEST_CASE("an RSA public key exports its modulus and exponent") {
  PublicKey key = must(session().export_public_key(keys().rsa2048.public_key));
  CHECK(key.key_type == CKK_RSA);
  CHECK(key.modulus.size() == 256);
  CHECK((key.modulus[0] & 0x80) != 0);  // a full 2048-bit modulus
  CHECK(key.public_exponent == Bytes{0x01, 0x00, 0x01});
  CHECK(key.ec_point.empty());
}

TEST_CASE("a secret key has no public key to export") {
  Error error = testing::error_of(session().export_public_key(keys().aes));
  CHECK(error.condition() == Condition::invalid_argument);
  CHECK(error.operation() == "export_public_key");
}

// --- Destroying ------------------------------------------------------------------

TEST_CASE("a destroyed key is found no more, and using it is an invalid handle") {
  KeyPairHandles pair = must(session().generate_key_pair(
      ec_key_pair_template(EcCurve::p256, "doomed", bytes_of("doomed"), scratch())));
  REQUIRE(must(session().find_objects(AttributeList().set_string(CKA_LABEL, "doomed"))).size() ==
          2);

  REQUIRE(session().destroy_object(pair.private_key));
  auto left = must(session().find_objects(AttributeList().set_string(CKA_LABEL, "doomed")));
  CHECK(left == std::vector<CK_OBJECT_HANDLE>{pair.public_key});
  REQUIRE(session().destroy_object(pair.public_key));
  CHECK(must(session().find_objects(AttributeList().set_string(CKA_LABEL, "doomed"))).empty());

  // SoftHSM2 says CKR_OBJECT_HANDLE_INVALID where the standard also allows
  // CKR_KEY_HANDLE_INVALID.
  Error sign_error =
      testing::error_of(session().sign(Mechanism::ecdsa(), pair.private_key, Bytes(32, 1)));
  CHECK(
      (sign_error.rv() == CKR_OBJECT_HANDLE_INVALID || sign_error.rv() == CKR_KEY_HANDLE_INVALID));
  CHECK(sign_error.function() == "C_SignInit");
  CHECK(sign_error.category() == Category::fix_input);

  CHECK(testing::error_of(session().get_attribute(pair.public_key, CKA_LABEL)).rv() ==
        CKR_OBJECT_HANDLE_INVALID);
  CHECK(testing::error_of(session().destroy_object(pair.private_key)).rv() ==
        CKR_OBJECT_HANDLE_INVALID);
}

TEST_CASE("a destroyed persistent key is gone for other sessions too") {
  CK_OBJECT_HANDLE key = must(session().generate_key(
      aes_key_template(16, "doomed-on-token", bytes_of("doomed-2"), KeyOptions{})));
  CHECK(read(key, {CKA_TOKEN}).get_bool(CKA_TOKEN) == true);
  Session other =
      must(testing::shared_token().module().open_session(testing::shared_token().slot()));
  REQUIRE(
      must(other.find_objects(AttributeList().set_string(CKA_LABEL, "doomed-on-token"))).size() ==
      1);

  REQUIRE(session().destroy_object(key));
  CHECK(must(other.find_objects(AttributeList().set_string(CKA_LABEL, "doomed-on-token"))).empty());
}

}  // namespace
}  // namespace hsmactor::pkcs11
