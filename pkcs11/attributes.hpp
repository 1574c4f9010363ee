// Attribute templates as copyable values, and ready-made key templates.
//
// Usage:
//   AttributeList query;
//   query.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY).set_string(CKA_LABEL, "signer");
//   auto handles = session.find_objects(query);
//   KeyPairTemplate spec = ec_key_pair_template(EcCurve::p256, "signer", bytes_of("01"));
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pkcs11/bytes.hpp"
#include "pkcs11/cryptoki.hpp"
#include "pkcs11/mechanism.hpp"

namespace hsmactor::pkcs11 {

/// One attribute: its type and its value in PKCS#11's in-memory encoding.
struct Attribute {
  CK_ATTRIBUTE_TYPE type = 0;
  Bytes value;

  bool operator==(const Attribute& other) const {
    return type == other.type && value == other.value;
  }
};

/// An ordered set of attributes (setting a type twice replaces its value).
class AttributeList {
 public:
  AttributeList& set_bool(CK_ATTRIBUTE_TYPE type, bool value);
  AttributeList& set_ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG value);
  AttributeList& set_bytes(CK_ATTRIBUTE_TYPE type, Bytes value);
  AttributeList& set_string(CK_ATTRIBUTE_TYPE type, std::string_view value);

  /// Returns the raw value of `type`, if present.
  std::optional<Bytes> get(CK_ATTRIBUTE_TYPE type) const;
  /// Returns the value of `type` read as CK_ULONG, if present and of that size.
  std::optional<CK_ULONG> get_ulong(CK_ATTRIBUTE_TYPE type) const;
  /// Returns the value of `type` read as CK_BBOOL, if present and one byte.
  std::optional<bool> get_bool(CK_ATTRIBUTE_TYPE type) const;

  bool empty() const { return items_.empty(); }
  std::size_t size() const { return items_.size(); }
  const std::vector<Attribute>& items() const { return items_; }
  std::vector<Attribute>& items() { return items_; }

  bool operator==(const AttributeList& other) const { return items_ == other.items_; }

 private:
  std::vector<Attribute> items_;
};

/// A CK_ATTRIBUTE array pointing into an AttributeList; lives only as long as both.
class CkTemplate {
 public:
  explicit CkTemplate(const AttributeList& list);
  CK_ATTRIBUTE* data() { return attributes_.empty() ? nullptr : attributes_.data(); }
  CK_ULONG size() const { return attributes_.size(); }

 private:
  std::vector<CK_ATTRIBUTE> attributes_;
};

/// Named elliptic curves.
enum class EcCurve : std::uint8_t { p256, p384 };

/// Returns the DER-encoded OID of `curve` (the CKA_EC_PARAMS value).
Bytes ec_params_der(EcCurve curve);

/// Returns the size in bytes of a digest to sign with ECDSA on `curve`.
std::size_t ec_digest_size(EcCurve curve);

/// How a generated key may be used and kept.
struct KeyOptions {
  /// Stored on the token (CKA_TOKEN); false makes a session object.
  bool persistent = true;
  /// The secret may leave the token (CKA_EXTRACTABLE); tests use it to check
  /// results outside the HSM.
  bool extractable = false;
  /// The secret cannot be read in clear (CKA_SENSITIVE).
  bool sensitive = true;
};

/// Handles of a generated key pair.
struct KeyPairHandles {
  CK_OBJECT_HANDLE public_key = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE private_key = CK_INVALID_HANDLE;
};

/// Everything C_GenerateKeyPair needs.
struct KeyPairTemplate {
  Mechanism mechanism;
  AttributeList public_key;
  AttributeList private_key;
};

/// Everything C_GenerateKey (or C_CreateObject, with `mechanism` unused) needs.
struct KeyTemplate {
  Mechanism mechanism;
  AttributeList key;
};

/// Returns a template for an EC signing key pair labelled `label` with id `id`.
KeyPairTemplate ec_key_pair_template(EcCurve curve, std::string_view label, Bytes id,
                                     KeyOptions options = {});

/// Returns a template for an RSA key pair (sign/verify and encrypt/decrypt).
KeyPairTemplate rsa_key_pair_template(CK_ULONG modulus_bits, std::string_view label, Bytes id,
                                      KeyOptions options = {});

/// Returns a template for an AES key of `length_bytes` (16, 24 or 32).
KeyTemplate aes_key_template(CK_ULONG length_bytes, std::string_view label, Bytes id,
                             KeyOptions options = {});

/// Returns a template for a generic secret (HMAC) key of `length_bytes`.
KeyTemplate hmac_key_template(CK_ULONG length_bytes, std::string_view label, Bytes id,
                              KeyOptions options = {});

/// Returns a template that imports a secret key with a known value (C_CreateObject).
AttributeList secret_key_import_template(CK_KEY_TYPE key_type, Bytes value,
                                         std::string_view label, Bytes id,
                                         KeyOptions options = {});

/// A public key read from the token.
struct PublicKey {
  CK_KEY_TYPE key_type = CKK_VENDOR_DEFINED;
  /// EC: the curve OID (DER), the point as the token returns it (a DER OCTET
  /// STRING) and the bare uncompressed point (04 || x || y).
  Bytes ec_params;
  Bytes ec_point_der;
  Bytes ec_point;
  /// RSA: big-endian modulus and public exponent.
  Bytes modulus;
  Bytes public_exponent;
};

}  // namespace hsmactor::pkcs11
