// Mechanisms as copyable values, with their parameters owned.
//
// A Mechanism is plain data (it travels in actor messages); the CK_MECHANISM
// that PKCS#11 wants, with its pointers, is built only for the duration of a
// call by CkMechanism.
//
// Usage:
//   session.sign(Mechanism::ecdsa(), key, sha256_digest);
//   session.encrypt(Mechanism::aes_gcm(iv, aad), key, plaintext);
//   session.sign(Mechanism::rsa_pss_sha256(), key, message);
#pragma once

#include <cstdint>
#include <string>

#include "pkcs11/bytes.hpp"
#include "pkcs11/cryptoki.hpp"

namespace hsmactor::pkcs11 {

/// Which parameter structure a mechanism carries.
enum class ParamKind : std::uint8_t {
  none,  ///< no parameter
  raw,   ///< `raw` is passed as the parameter bytes
  gcm,   ///< CK_GCM_PARAMS from `raw` (IV), `aad`, `tag_bits`
  pss,   ///< CK_RSA_PKCS_PSS_PARAMS from `hash`, `mgf`, `salt_length`
  oaep,  ///< CK_RSA_PKCS_OAEP_PARAMS from `hash`, `mgf`, `raw` (source label)
};

/// A mechanism and its parameter, by value.
struct Mechanism {
  CK_MECHANISM_TYPE type = CKM_VENDOR_DEFINED;
  ParamKind param_kind = ParamKind::none;
  Bytes raw;
  Bytes aad;
  CK_ULONG tag_bits = 0;
  CK_MECHANISM_TYPE hash = 0;
  CK_RSA_PKCS_MGF_TYPE mgf = 0;
  CK_ULONG salt_length = 0;

  /// Returns a mechanism without parameter.
  static Mechanism of(CK_MECHANISM_TYPE type);
  /// Returns a mechanism whose parameter is the bytes `parameter`.
  static Mechanism with_raw_parameter(CK_MECHANISM_TYPE type, Bytes parameter);

  /// RSA PKCS#1 v1.5 signature with SHA-256 hashing in the token.
  static Mechanism rsa_pkcs_sha256() { return of(CKM_SHA256_RSA_PKCS); }
  /// RSA-PSS with SHA-256 hashing in the token, MGF1-SHA256, 32-byte salt.
  static Mechanism rsa_pss_sha256(CK_ULONG salt_length = 32);
  /// ECDSA over a digest the caller computed (32 bytes for P-256, 48 for P-384).
  static Mechanism ecdsa() { return of(CKM_ECDSA); }
  /// HMAC-SHA256.
  static Mechanism hmac_sha256() { return of(CKM_SHA256_HMAC); }
  /// SHA-256 digest.
  static Mechanism sha256() { return of(CKM_SHA256); }
  /// AES-GCM with the given IV (12 bytes recommended), AAD and tag length.
  static Mechanism aes_gcm(Bytes iv, Bytes aad = {}, CK_ULONG tag_bits = 128);
  /// RSA-OAEP with SHA-256 and MGF1-SHA256 and an optional label.
  static Mechanism rsa_oaep_sha256(Bytes label = {});
  /// RSA-OAEP with SHA-1 and MGF1-SHA1 and an optional label: the only OAEP
  /// SoftHSM2 2.6 accepts (it answers SHA-256 with CKR_ARGUMENTS_BAD).
  static Mechanism rsa_oaep_sha1(Bytes label = {});
  /// EC key pair generation.
  static Mechanism ec_key_pair_gen() { return of(CKM_EC_KEY_PAIR_GEN); }
  /// RSA key pair generation.
  static Mechanism rsa_key_pair_gen() { return of(CKM_RSA_PKCS_KEY_PAIR_GEN); }
  /// AES key generation.
  static Mechanism aes_key_gen() { return of(CKM_AES_KEY_GEN); }
  /// Generic secret (HMAC) key generation.
  static Mechanism generic_secret_key_gen() { return of(CKM_GENERIC_SECRET_KEY_GEN); }

  bool operator==(const Mechanism& other) const;
  bool operator!=(const Mechanism& other) const { return !(*this == other); }
};

/// Returns "CKM_ECDSA", ... for common mechanisms, "CKM_0x.." otherwise.
std::string mechanism_name(CK_MECHANISM_TYPE type);

/// A CK_MECHANISM pointing into a Mechanism; lives only as long as both.
class CkMechanism {
 public:
  explicit CkMechanism(const Mechanism& mechanism);
  CkMechanism(const CkMechanism&) = delete;
  CkMechanism& operator=(const CkMechanism&) = delete;

  CK_MECHANISM* get() { return &mechanism_; }

 private:
  CK_MECHANISM mechanism_{};
  union {
    CK_GCM_PARAMS gcm;
    CK_RSA_PKCS_PSS_PARAMS pss;
    CK_RSA_PKCS_OAEP_PARAMS oaep;
  } params_{};
};

}  // namespace hsmactor::pkcs11
