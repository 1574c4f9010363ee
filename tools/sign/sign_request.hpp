// What one input line asks hsmactor-sign to do, and the line it answers with.
//
// A record is a flat JSON object:
//   {"id": "42", "key": "ec256", "mechanism": "ecdsa", "digest_hex": "9f86d0..."}
// with exactly one payload member: "data" (base64), "data_hex", "digest"
// (base64) or "digest_hex". Digests are accepted only by the ECDSA schemes.
//
// ECDSA always signs a digest (CKM_ECDSA). Given plain data, "ecdsa" and
// "ecdsa-sha256" hash it with SHA-256 on the host, with OpenSSL, before it goes
// to the token: the data is on the host anyway, the token's CKM_SHA256 would
// cost a second round trip per record, and many tokens (SoftHSM2 2.6 among
// them) lack CKM_ECDSA_SHA256. "ecdsa-sha256" insists that a given digest is
// 32 bytes; "ecdsa" signs a digest of any length (a SHA-384 digest for P-384).
// The RSA and HMAC schemes hash inside the token and take data only.
//
// Usage:
//   DecodedRecord record = decode_record(line, line_number);
//   if (!record.request) out << error_line(record.name, record.request.error());
//   else sign(record.request->key_label, mechanism_for(record.request->scheme), ...);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pkcs11/bytes.hpp"
#include "pkcs11/cryptoki.hpp"
#include "pkcs11/error.hpp"
#include "pkcs11/mechanism.hpp"

namespace hsmactor::sign {

/// The signing schemes a record may name in "mechanism".
enum class Scheme : std::uint8_t {
  ecdsa,            ///< "ecdsa": CKM_ECDSA over a digest (SHA-256 of data if data is given)
  ecdsa_sha256,     ///< "ecdsa-sha256": CKM_ECDSA over SHA-256 of the data, or a 32-byte digest
  rsa_pkcs_sha256,  ///< "rsa-pkcs-sha256": CKM_SHA256_RSA_PKCS over the data
  rsa_pss_sha256,   ///< "rsa-pss-sha256": CKM_SHA256_RSA_PKCS_PSS, MGF1-SHA256, 32-byte salt
  hmac_sha256,      ///< "hmac-sha256": CKM_SHA256_HMAC with a secret key
};

/// Returns the scheme called `name`, or nothing for an unknown name.
std::optional<Scheme> scheme_named(std::string_view name);
/// Returns the name a record uses for `scheme` ("ecdsa-sha256", ...).
const char* to_string(Scheme scheme);
/// Returns the PKCS#11 mechanism that signs for `scheme`.
pkcs11::Mechanism mechanism_for(Scheme scheme);
/// Returns the class of key that signs for `scheme` (private or secret).
CK_OBJECT_CLASS key_class_for(Scheme scheme);

/// One record, checked and ready for the token.
struct SignRequest {
  std::string key_label;
  Scheme scheme = Scheme::ecdsa;
  /// What C_Sign receives: the data, or for ECDSA the digest.
  Bytes payload;
};

/// Who an answer is for: the record's "id", or its line number if it has none.
struct RecordName {
  std::optional<std::string> id;
  std::uint64_t line = 0;
};

/// A decoded line: it always names itself, and holds a request or the reason
/// it is not one (an invalid_argument Error).
struct DecodedRecord {
  RecordName name;
  Result<SignRequest> request;
};

/// Returns what line `line_number` (counting from 1) of the input asks for.
DecodedRecord decode_record(std::string_view line, std::uint64_t line_number);

/// Returns SHA-256 of `data`, computed by OpenSSL (internal_error if it fails).
Result<Bytes> sha256(ByteView data);

/// Returns the answer line {"id":..,"signature":"<base64>"} (no newline).
std::string signature_line(const RecordName& name, ByteView signature);

/// Returns the answer line {"id":..,"error":{"code","condition","category",
/// "message"}} (no newline); "line" replaces "id" for a record without one,
/// and "code" (the CKR_* name) is left out when no PKCS#11 call failed.
std::string error_line(const RecordName& name, const Error& error);

}  // namespace hsmactor::sign
