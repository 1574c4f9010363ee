#include "pkcs11/mechanism.hpp"

#include <catch2/catch.hpp>

namespace hsmactor::pkcs11 {
namespace {

TEST_CASE("a mechanism without parameter passes no parameter") {
  Mechanism mechanism = Mechanism::ecdsa();
  CkMechanism ck(mechanism);
  CHECK(ck.get()->mechanism == CKM_ECDSA);
  CHECK(ck.get()->pParameter == nullptr);
  CHECK(ck.get()->ulParameterLen == 0);
}

TEST_CASE("a raw parameter is passed as its bytes") {
  Mechanism mechanism = Mechanism::with_raw_parameter(CKM_AES_CBC, Bytes(16, 9));
  CkMechanism ck(mechanism);
  CHECK(ck.get()->mechanism == CKM_AES_CBC);
  CHECK(ck.get()->pParameter == mechanism.raw.data());
  CHECK(ck.get()->ulParameterLen == 16);
}

TEST_CASE("AES-GCM passes its IV, AAD and tag length in CK_GCM_PARAMS") {
  Mechanism mechanism = Mechanism::aes_gcm(Bytes(12, 1), bytes_of("aad"), 96);
  CkMechanism ck(mechanism);
  REQUIRE(ck.get()->ulParameterLen == sizeof(CK_GCM_PARAMS));
  const auto* params = static_cast<const CK_GCM_PARAMS*>(ck.get()->pParameter);
  CHECK(params->pIv == mechanism.raw.data());
  CHECK(params->ulIvLen == 12);
  CHECK(params->ulIvBits == 96);
  CHECK(params->pAAD == mechanism.aad.data());
  CHECK(params->ulAADLen == 3);
  CHECK(params->ulTagBits == 96);
}

TEST_CASE("AES-GCM without AAD passes no AAD pointer and a 128-bit tag") {
  Mechanism mechanism = Mechanism::aes_gcm(Bytes(12, 1));
  CkMechanism ck(mechanism);
  const auto* params = static_cast<const CK_GCM_PARAMS*>(ck.get()->pParameter);
  CHECK(params->pAAD == nullptr);
  CHECK(params->ulAADLen == 0);
  CHECK(params->ulTagBits == 128);
}

TEST_CASE("RSA-PSS passes SHA-256, MGF1-SHA256 and the salt length") {
  Mechanism mechanism = Mechanism::rsa_pss_sha256();
  CkMechanism ck(mechanism);
  CHECK(ck.get()->mechanism == CKM_SHA256_RSA_PKCS_PSS);
  REQUIRE(ck.get()->ulParameterLen == sizeof(CK_RSA_PKCS_PSS_PARAMS));
  const auto* params = static_cast<const CK_RSA_PKCS_PSS_PARAMS*>(ck.get()->pParameter);
  CHECK(params->hashAlg == CKM_SHA256);
  CHECK(params->mgf == CKG_MGF1_SHA256);
  CHECK(params->sLen == 32);
  CHECK(Mechanism::rsa_pss_sha256(20).salt_length == 20);
}

TEST_CASE("RSA-OAEP passes its hash, MGF and label as data-specified source") {
  Mechanism sha256 = Mechanism::rsa_oaep_sha256(bytes_of("label"));
  CkMechanism ck(sha256);
  REQUIRE(ck.get()->ulParameterLen == sizeof(CK_RSA_PKCS_OAEP_PARAMS));
  const auto* params = static_cast<const CK_RSA_PKCS_OAEP_PARAMS*>(ck.get()->pParameter);
  CHECK(ck.get()->mechanism == CKM_RSA_PKCS_OAEP);
  CHECK(params->hashAlg == CKM_SHA256);
  CHECK(params->mgf == CKG_MGF1_SHA256);
  CHECK(params->source == CKZ_DATA_SPECIFIED);
  CHECK(params->pSourceData == sha256.raw.data());
  CHECK(params->ulSourceDataLen == 5);

  Mechanism sha1 = Mechanism::rsa_oaep_sha1();
  CkMechanism ck1(sha1);
  const auto* params1 = static_cast<const CK_RSA_PKCS_OAEP_PARAMS*>(ck1.get()->pParameter);
  CHECK(params1->hashAlg == CKM_SHA_1);
  CHECK(params1->mgf == CKG_MGF1_SHA1);
  CHECK(params1->pSourceData == nullptr);
  CHECK(params1->ulSourceDataLen == 0);
}

TEST_CASE("mechanisms are equal when type and every parameter are") {
  CHECK(Mechanism::aes_gcm(Bytes(12, 1)) == Mechanism::aes_gcm(Bytes(12, 1)));
  CHECK(Mechanism::aes_gcm(Bytes(12, 1)) != Mechanism::aes_gcm(Bytes(12, 2)));
  CHECK(Mechanism::aes_gcm(Bytes(12, 1)) != Mechanism::aes_gcm(Bytes(12, 1), bytes_of("a")));
  CHECK(Mechanism::rsa_pss_sha256(32) != Mechanism::rsa_pss_sha256(20));
  CHECK(Mechanism::rsa_oaep_sha256() != Mechanism::rsa_oaep_sha1());
  CHECK(Mechanism::ecdsa() == Mechanism::of(CKM_ECDSA));
}

TEST_CASE("common mechanisms have names and the rest print their value") {
  CHECK(mechanism_name(CKM_ECDSA) == "CKM_ECDSA");
  CHECK(mechanism_name(CKM_SHA256_RSA_PKCS_PSS) == "CKM_SHA256_RSA_PKCS_PSS");
  CHECK(mechanism_name(CKM_AES_GCM) == "CKM_AES_GCM");
  CHECK(mechanism_name(CKM_VENDOR_DEFINED | 0x42) == "CKM_0x80000042");
}

}  // namespace
}  // namespace hsmactor::pkcs11
