// Checks HSM results outside the HSM, with OpenSSL 3.
//
// Tests use these functions as an independent second opinion: a signature the
// token made must verify here from the exported public key, a MAC or digest
// must equal OpenSSL's, and ciphertext must cross between the two both ways.
// Every function is self-contained (no global state, nothing cached), so any
// number of threads may call them at once.
//
// A verify function answers false only when the signature itself is rejected.
// A public key OpenSSL cannot even build (an unknown curve, an empty modulus)
// is a broken test, not a bad signature, and throws std::runtime_error; so does
// any OpenSSL failure in the functions that return bytes.
//
// Usage:
//   pkcs11::PublicKey key = *session.export_public_key(keys.ec256.public_key);
//   CHECK(openssl::verify_ecdsa(key, digest, *session.sign(Mechanism::ecdsa(), ...)));
//   CHECK(*session.digest(Mechanism::sha256(), data) == openssl::sha256(data));
#pragma once

#include <optional>

#include "pkcs11/attributes.hpp"
#include "pkcs11/bytes.hpp"

namespace hsmactor::testing::openssl {

/// Returns true when `raw_r_s_signature` (PKCS#11's r || s, each half the
/// size of the curve order) is a valid ECDSA signature of `digest` by `key`.
bool verify_ecdsa(const pkcs11::PublicKey& key, ByteView digest, ByteView raw_r_s_signature);

/// Returns true when `signature` is a valid RSA PKCS#1 v1.5 signature of
/// SHA-256(`message`) by `key` (what CKM_SHA256_RSA_PKCS makes).
bool verify_rsa_pkcs1_sha256(const pkcs11::PublicKey& key, ByteView message, ByteView signature);

/// Returns true when `signature` is a valid RSA-PSS signature of `message` by
/// `key` with SHA-256, MGF1-SHA256 and a salt of `salt_length` bytes (what
/// CKM_SHA256_RSA_PKCS_PSS with Mechanism::rsa_pss_sha256() makes).
bool verify_rsa_pss_sha256(const pkcs11::PublicKey& key, ByteView message, ByteView signature,
                           int salt_length = 32);

/// Returns HMAC-SHA256 of `data` under `key`.
Bytes hmac_sha256(ByteView key, ByteView data);

/// Returns SHA-256 of `data`.
Bytes sha256(ByteView data);

/// Returns AES-GCM ciphertext followed by its 16-byte tag, the layout
/// CKM_AES_GCM produces. The key is 16, 24 or 32 bytes.
Bytes aes_gcm_encrypt(ByteView key, ByteView iv, ByteView aad, ByteView plaintext);

/// Returns the plaintext of `ciphertext_with_tag` (ciphertext || 16-byte tag),
/// or nothing when the tag does not authenticate it.
std::optional<Bytes> aes_gcm_decrypt(ByteView key, ByteView iv, ByteView aad,
                                     ByteView ciphertext_with_tag);

/// Returns RSA-OAEP ciphertext of `plaintext` for `key` with SHA-256,
/// MGF1-SHA256 and an empty label (what Mechanism::rsa_oaep_sha256() decrypts).
Bytes rsa_oaep_sha256_encrypt(const pkcs11::PublicKey& key, ByteView plaintext);

/// Returns RSA-OAEP ciphertext with SHA-1 and MGF1-SHA1 and an empty label
/// (Mechanism::rsa_oaep_sha1(), the OAEP SoftHSM2 2.6 supports).
Bytes rsa_oaep_sha1_encrypt(const pkcs11::PublicKey& key, ByteView plaintext);

}  // namespace hsmactor::testing::openssl
