#include "pkcs11/session.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include <catch2/catch.hpp>

#include "tests/pkcs11/catch_result.hpp"
#include "tests/pkcs11/shared_token.hpp"
#include "tests/support/openssl_check.hpp"

// Every signature the token makes is checked twice: by the token's own
// verify and, from the exported public key, by OpenSSL.

namespace hsmactor::pkcs11 {
namespace {

using testing::must;
namespace openssl = testing::openssl;

Session& session() { return testing::shared_token().session(); }
const testing::TestKeys& keys() { return testing::shared_token().keys(); }

PublicKey public_key(CK_OBJECT_HANDLE handle) { return must(session().export_public_key(handle)); }

bool token_verifies(const Mechanism& mechanism, CK_OBJECT_HANDLE key, ByteView data,
                    ByteView signature) {
  return must(session().verify(mechanism, key, data, signature));
}

Bytes flipped(Bytes bytes, std::size_t at) {
  bytes.at(at) ^= 0x01;
  return bytes;
}

/// Feeds `message` to sign_update in pieces of `piece` bytes.
Bytes sign_in_pieces(const Mechanism& mechanism, CK_OBJECT_HANDLE key, const Bytes& message,
                     std::size_t piece) {
  REQUIRE(session().sign_init(mechanism, key));
  for (std::size_t at = 0; at < message.size(); at += piece) {
    std::size_t length = std::min(piece, message.size() - at);
    REQUIRE(session().sign_update(ByteView(message.data() + at, length)));
  }
  return must(session().sign_final());
}

/// Feeds `message` to verify_update in pieces of `piece` bytes.
bool verify_in_pieces(const Mechanism& mechanism, CK_OBJECT_HANDLE key, const Bytes& message,
                      std::size_t piece, ByteView signature) {
  REQUIRE(session().verify_init(mechanism, key));
  for (std::size_t at = 0; at < message.size(); at += piece) {
    std::size_t length = std::min(piece, message.size() - at);
    REQUIRE(session().verify_update(ByteView(message.data() + at, length)));
  }
  return must(session().verify_final(signature));
}

Bytes long_message() {
  Bytes message;
  for (int i = 0; i < 10000; ++i) message.push_back(static_cast<std::uint8_t>(i * 31 + 7));
  return message;
}

TEST_CASE("RSA PKCS#1 v1.5 SHA-256 signs in one call, and the token and OpenSSL verify it") {
  Bytes message = bytes_of("pay 100 to alice");
  Bytes signature =
      must(session().sign(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.private_key, message));

  CHECK(signature.size() == 256);
  CHECK(
      token_verifies(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.public_key, message, signature));
  CHECK(
      openssl::verify_rsa_pkcs1_sha256(public_key(keys().rsa2048.public_key), message, signature));
}

TEST_CASE("RSA PKCS#1 v1.5 signing is deterministic: one message, one signature") {
  Bytes message = bytes_of("same every time");
  CHECK(must(session().sign(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.private_key, message)) ==
        must(session().sign(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.private_key, message)));
}

TEST_CASE("RSA PKCS#1 v1.5 signs in parts, equal to the one-call signature") {
  Bytes message = long_message();
  Bytes whole =
      must(session().sign(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.private_key, message));
  Bytes parts =
      sign_in_pieces(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.private_key, message, 777);

  CHECK(parts == whole);
  CHECK(verify_in_pieces(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.public_key, message, 1000,
                         parts));
  CHECK(openssl::verify_rsa_pkcs1_sha256(public_key(keys().rsa2048.public_key), message, parts));
}

TEST_CASE("RSA-PSS SHA-256 signs in one call, and the token and OpenSSL verify it") {
  Bytes message = bytes_of("pss message");
  Bytes signature =
      must(session().sign(Mechanism::rsa_pss_sha256(), keys().rsa2048.private_key, message));

  CHECK(signature.size() == 256);
  CHECK(token_verifies(Mechanism::rsa_pss_sha256(), keys().rsa2048.public_key, message, signature));
  CHECK(openssl::verify_rsa_pss_sha256(public_key(keys().rsa2048.public_key), message, signature));
}

TEST_CASE("RSA-PSS is randomised by its salt, and each signature verifies") {
  Bytes message = bytes_of("salted");
  Bytes first =
      must(session().sign(Mechanism::rsa_pss_sha256(), keys().rsa2048.private_key, message));
  Bytes second =
      must(session().sign(Mechanism::rsa_pss_sha256(), keys().rsa2048.private_key, message));
  CHECK(first != second);
  PublicKey key = public_key(keys().rsa2048.public_key);
  CHECK(openssl::verify_rsa_pss_sha256(key, message, first));
  CHECK(openssl::verify_rsa_pss_sha256(key, message, second));
}

TEST_CASE("RSA-PSS signs and verifies in parts") {
  Bytes message = long_message();
  Bytes signature =
      sign_in_pieces(Mechanism::rsa_pss_sha256(), keys().rsa2048.private_key, message, 4096);

  CHECK(verify_in_pieces(Mechanism::rsa_pss_sha256(), keys().rsa2048.public_key, message, 3,
                         signature));
  CHECK(token_verifies(Mechanism::rsa_pss_sha256(), keys().rsa2048.public_key, message, signature));
  CHECK(openssl::verify_rsa_pss_sha256(public_key(keys().rsa2048.public_key), message, signature));
}

TEST_CASE("ECDSA P-256 signs a SHA-256 digest as 64 bytes of r||s that OpenSSL verifies") {
  Bytes digest = openssl::sha256(bytes_of("ecdsa message"));
  Bytes signature = must(session().sign(Mechanism::ecdsa(), keys().ec256.private_key, digest));

  CHECK(signature.size() == 64);
  CHECK(token_verifies(Mechanism::ecdsa(), keys().ec256.public_key, digest, signature));
  CHECK(openssl::verify_ecdsa(public_key(keys().ec256.public_key), digest, signature));
}

TEST_CASE("ECDSA P-384 signs a 48-byte digest as 96 bytes of r||s that OpenSSL verifies") {
  Bytes digest = must(session().digest(Mechanism::of(CKM_SHA384), bytes_of("p384 message")));
  REQUIRE(digest.size() == ec_digest_size(EcCurve::p384));
  Bytes signature = must(session().sign(Mechanism::ecdsa(), keys().ec384.private_key, digest));

  CHECK(signature.size() == 96);
  CHECK(token_verifies(Mechanism::ecdsa(), keys().ec384.public_key, digest, signature));
  CHECK(openssl::verify_ecdsa(public_key(keys().ec384.public_key), digest, signature));
}

TEST_CASE("ECDSA over a digest longer than the curve signs its leftmost bytes, as OpenSSL does") {
  // SoftHSM2 does not refuse an oversized digest with CKR_DATA_LEN_RANGE:
  // like OpenSSL, it uses the leftmost bits the curve order holds.
  Bytes digest(64, 0);
  for (std::size_t i = 0; i < digest.size(); ++i) digest[i] = static_cast<std::uint8_t>(i);
  Bytes signature = must(session().sign(Mechanism::ecdsa(), keys().ec256.private_key, digest));

  PublicKey key = public_key(keys().ec256.public_key);
  CHECK(openssl::verify_ecdsa(key, digest, signature));
  CHECK(openssl::verify_ecdsa(key, ByteView(digest.data(), 32), signature));
}

TEST_CASE("a tampered signature verifies false, in the token and in OpenSSL") {
  Bytes message = bytes_of("do not tamper");
  Bytes digest = openssl::sha256(message);
  PublicKey rsa = public_key(keys().rsa2048.public_key);
  PublicKey ec = public_key(keys().ec256.public_key);

  SECTION("RSA PKCS#1 v1.5") {
    Bytes bad = flipped(
        must(session().sign(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.private_key, message)),
        100);
    CHECK_FALSE(
        token_verifies(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.public_key, message, bad));
    CHECK_FALSE(openssl::verify_rsa_pkcs1_sha256(rsa, message, bad));
  }
  SECTION("RSA-PSS") {
    Bytes bad = flipped(
        must(session().sign(Mechanism::rsa_pss_sha256(), keys().rsa2048.private_key, message)), 0);
    CHECK_FALSE(
        token_verifies(Mechanism::rsa_pss_sha256(), keys().rsa2048.public_key, message, bad));
    CHECK_FALSE(openssl::verify_rsa_pss_sha256(rsa, message, bad));
  }
  SECTION("ECDSA") {
    Bytes bad =
        flipped(must(session().sign(Mechanism::ecdsa(), keys().ec256.private_key, digest)), 40);
    CHECK_FALSE(token_verifies(Mechanism::ecdsa(), keys().ec256.public_key, digest, bad));
    CHECK_FALSE(openssl::verify_ecdsa(ec, digest, bad));
  }
  SECTION("a good signature of another message") {
    Bytes other = must(session().sign(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.private_key,
                                      bytes_of("another message")));
    CHECK_FALSE(
        token_verifies(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.public_key, message, other));
    CHECK_FALSE(openssl::verify_rsa_pkcs1_sha256(rsa, message, other));
  }
}

TEST_CASE("a signature of the wrong length verifies false instead of failing") {
  Bytes digest = openssl::sha256(bytes_of("length"));
  Bytes signature = must(session().sign(Mechanism::ecdsa(), keys().ec256.private_key, digest));

  CHECK_FALSE(token_verifies(Mechanism::ecdsa(), keys().ec256.public_key, digest,
                             ByteView(signature.data(), 63)));
  CHECK_FALSE(token_verifies(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.public_key, bytes_of("x"),
                             Bytes(100, 0)));
  CHECK_FALSE(token_verifies(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.public_key, bytes_of("x"),
                             Bytes()));
}

TEST_CASE("multi-part verification of a tampered signature is false and ends the operation") {
  Bytes message = long_message();
  Bytes bad = flipped(
      must(session().sign(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.private_key, message)), 7);
  CHECK_FALSE(
      verify_in_pieces(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.public_key, message, 500, bad));
  // The session is free again: a new operation starts.
  CHECK(session().sign(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.private_key, message));
}

TEST_CASE("an empty message signs and verifies like any other") {
  Bytes empty;
  Bytes signature =
      must(session().sign(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.private_key, empty));
  CHECK(token_verifies(Mechanism::rsa_pkcs_sha256(), keys().rsa2048.public_key, empty, signature));
  CHECK(openssl::verify_rsa_pkcs1_sha256(public_key(keys().rsa2048.public_key), empty, signature));
}

/// An RSA-4096 pair, generated on first use (seconds in SoftHSM2) as session objects.
const KeyPairHandles& rsa4096() {
  static const KeyPairHandles pair = must(session().generate_key_pair(
      rsa_key_pair_template(4096, "rsa4096", bytes_of("rsa4096"), KeyOptions{false})));
  return pair;
}

TEST_CASE("an RSA-4096 signature comes back whole at 512 bytes, never CKR_BUFFER_TOO_SMALL") {
  Bytes message = bytes_of("big key");
  Bytes single = must(session().sign(Mechanism::rsa_pkcs_sha256(), rsa4096().private_key, message));
  Bytes parts = sign_in_pieces(Mechanism::rsa_pkcs_sha256(), rsa4096().private_key, message, 3);
  Bytes pss = must(session().sign(Mechanism::rsa_pss_sha256(), rsa4096().private_key, message));

  CHECK(single.size() == 512);
  CHECK(parts == single);
  CHECK(pss.size() == 512);
  PublicKey key = public_key(rsa4096().public_key);
  CHECK(key.modulus.size() == 512);
  CHECK(openssl::verify_rsa_pkcs1_sha256(key, message, single));
  CHECK(openssl::verify_rsa_pss_sha256(key, message, pss));
}

}  // namespace
}  // namespace hsmactor::pkcs11
