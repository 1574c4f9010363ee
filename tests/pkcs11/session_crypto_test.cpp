#include "pkcs11/session.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include <catch2/catch.hpp>

#include "tests/pkcs11/catch_result.hpp"
#include "tests/pkcs11/shared_token.hpp"
#include "tests/support/openssl_check.hpp"

// MACs, digests and ciphers: every result the token gives is compared with
// OpenSSL's, and ciphertext crosses between the two in both directions.

namespace hsmactor::pkcs11 {
namespace {

using testing::must;
namespace openssl = testing::openssl;

Session& session() { return testing::shared_token().session(); }
const testing::TestKeys& keys() { return testing::shared_token().keys(); }

Bytes counting_bytes(std::size_t size) {
  Bytes bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<std::uint8_t>(i * 13 + 1);
  return bytes;
}

// --- HMAC-SHA256 ---------------------------------------------------------

TEST_CASE("HMAC-SHA256 in the token equals OpenSSL's HMAC with the imported key value") {
  Bytes message = bytes_of("authenticate me");
  Bytes mac = must(session().sign(Mechanism::hmac_sha256(), keys().hmac, message));

  CHECK(mac.size() == 32);
  CHECK(mac == openssl::hmac_sha256(keys().hmac_value, message));
  CHECK(must(session().verify(Mechanism::hmac_sha256(), keys().hmac, message, mac)));
}

TEST_CASE("HMAC-SHA256 in parts equals the one-call MAC and OpenSSL's") {
  Bytes message = counting_bytes(5000);
  REQUIRE(session().sign_init(Mechanism::hmac_sha256(), keys().hmac));
  for (std::size_t at = 0; at < message.size(); at += 999) {
    REQUIRE(session().sign_update(
        ByteView(message.data() + at, std::min<std::size_t>(999, message.size() - at))));
  }
  Bytes mac = must(session().sign_final());

  CHECK(mac == must(session().sign(Mechanism::hmac_sha256(), keys().hmac, message)));
  CHECK(mac == openssl::hmac_sha256(keys().hmac_value, message));

  REQUIRE(session().verify_init(Mechanism::hmac_sha256(), keys().hmac));
  REQUIRE(session().verify_update(ByteView(message.data(), 2500)));
  REQUIRE(session().verify_update(ByteView(message.data() + 2500, 2500)));
  CHECK(must(session().verify_final(mac)));
}

TEST_CASE("a changed HMAC verifies false") {
  Bytes message = bytes_of("authenticate me");
  Bytes mac = must(session().sign(Mechanism::hmac_sha256(), keys().hmac, message));
  mac[31] ^= 0x80;
  CHECK_FALSE(must(session().verify(Mechanism::hmac_sha256(), keys().hmac, message, mac)));
  CHECK_FALSE(must(
      session().verify(Mechanism::hmac_sha256(), keys().hmac, message, ByteView(mac.data(), 16))));
}

TEST_CASE("the HMAC of an empty message equals OpenSSL's") {
  Bytes mac = must(session().sign(Mechanism::hmac_sha256(), keys().hmac, Bytes()));
  CHECK(mac == openssl::hmac_sha256(keys().hmac_value, Bytes()));
}

// --- SHA-256 and friends ---------------------------------------------------

TEST_CASE("SHA-256 in the token equals OpenSSL's, at exactly 32 bytes") {
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{64}, std::size_t{100000}}) {
    INFO("message of " << size << " bytes");
    Bytes message = counting_bytes(size);
    Bytes digest = must(session().digest(Mechanism::sha256(), message));
    CHECK(digest.size() == 32);
    CHECK(digest == openssl::sha256(message));
  }
}

TEST_CASE("SHA-256 of an empty message is the well-known constant") {
  CHECK(to_hex(must(session().digest(Mechanism::sha256(), Bytes()))) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("SHA-256 in parts equals the one-call digest and OpenSSL's") {
  Bytes message = counting_bytes(10000);
  REQUIRE(session().digest_init(Mechanism::sha256()));
  for (std::size_t at = 0; at < message.size(); at += 4096) {
    REQUIRE(session().digest_update(
        ByteView(message.data() + at, std::min<std::size_t>(4096, message.size() - at))));
  }
  REQUIRE(session().digest_update(Bytes()));  // an empty part changes nothing
  Bytes digest = must(session().digest_final());

  CHECK(digest == openssl::sha256(message));
  CHECK(digest == must(session().digest(Mechanism::sha256(), message)));
}

TEST_CASE("SHA-384 and SHA-512 digests come back at their exact sizes") {
  CHECK(must(session().digest(Mechanism::of(CKM_SHA384), bytes_of("abc"))).size() == 48);
  CHECK(to_hex(must(session().digest(Mechanism::of(CKM_SHA512), bytes_of("abc")))) ==
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
}

// --- AES-GCM -----------------------------------------------------------------

TEST_CASE("AES-GCM ciphertext from the token is ciphertext||tag that OpenSSL opens") {
  Bytes iv = counting_bytes(12);
  Bytes aad = bytes_of("header v1");
  Bytes plaintext = bytes_of("the launch codes are 0000");
  Bytes sealed = must(session().encrypt(Mechanism::aes_gcm(iv, aad), keys().aes, plaintext));

  CHECK(sealed.size() == plaintext.size() + 16);
  auto opened = openssl::aes_gcm_decrypt(keys().aes_value, iv, aad, sealed);
  REQUIRE(opened);
  CHECK(*opened == plaintext);
  CHECK(sealed == openssl::aes_gcm_encrypt(keys().aes_value, iv, aad, plaintext));
}

TEST_CASE("AES-GCM ciphertext from OpenSSL opens in the token") {
  Bytes iv(12, 0x24);
  Bytes aad = bytes_of("from outside");
  Bytes plaintext = counting_bytes(1000);
  Bytes sealed = openssl::aes_gcm_encrypt(keys().aes_value, iv, aad, plaintext);

  CHECK(must(session().decrypt(Mechanism::aes_gcm(iv, aad), keys().aes, sealed)) == plaintext);
}

TEST_CASE("AES-GCM round-trips in the token without AAD and with an empty plaintext") {
  Bytes iv(12, 1);
  Bytes sealed = must(session().encrypt(Mechanism::aes_gcm(iv), keys().aes, bytes_of("no aad")));
  CHECK(must(session().decrypt(Mechanism::aes_gcm(iv), keys().aes, sealed)) == bytes_of("no aad"));

  Bytes tag_only = must(session().encrypt(Mechanism::aes_gcm(iv), keys().aes, Bytes()));
  CHECK(tag_only.size() == 16);
  CHECK(tag_only == openssl::aes_gcm_encrypt(keys().aes_value, iv, ByteView(), ByteView()));
  CHECK(must(session().decrypt(Mechanism::aes_gcm(iv), keys().aes, tag_only)).empty());
}

TEST_CASE("AES-GCM output larger than any first guess comes back whole") {
  Bytes iv(12, 2);
  Bytes plaintext = counting_bytes(200000);
  Bytes sealed = must(session().encrypt(Mechanism::aes_gcm(iv), keys().aes, plaintext));

  CHECK(sealed.size() == plaintext.size() + 16);
  CHECK(must(session().decrypt(Mechanism::aes_gcm(iv), keys().aes, sealed)) == plaintext);
  CHECK(openssl::aes_gcm_decrypt(keys().aes_value, iv, ByteView(), sealed) == plaintext);
}

// --- RSA-OAEP ------------------------------------------------------------------

TEST_CASE("RSA-OAEP (SHA-1, what SoftHSM2 offers) round-trips in the token") {
  Bytes secret = bytes_of("wrapped key material");
  Bytes ciphertext =
      must(session().encrypt(Mechanism::rsa_oaep_sha1(), keys().rsa2048.public_key, secret));
  CHECK(ciphertext.size() == 256);
  CHECK(must(session().decrypt(Mechanism::rsa_oaep_sha1(), keys().rsa2048.private_key,
                               ciphertext)) == secret);
}

TEST_CASE("RSA-OAEP ciphertext from OpenSSL opens in the token") {
  PublicKey key = must(session().export_public_key(keys().rsa2048.public_key));
  Bytes secret = counting_bytes(100);
  Bytes ciphertext = openssl::rsa_oaep_sha1_encrypt(key, secret);

  CHECK(must(session().decrypt(Mechanism::rsa_oaep_sha1(), keys().rsa2048.private_key,
                               ciphertext)) == secret);
}

TEST_CASE("RSA-OAEP with SHA-256 round-trips with OpenSSL, or is refused as bad input") {
  PublicKey key = must(session().export_public_key(keys().rsa2048.public_key));
  Bytes secret = bytes_of("sha-256 oaep");
  Bytes ciphertext = openssl::rsa_oaep_sha256_encrypt(key, secret);
  auto opened =
      session().decrypt(Mechanism::rsa_oaep_sha256(), keys().rsa2048.private_key, ciphertext);
  if (opened) {
    CHECK(*opened == secret);
  } else {
    // SoftHSM2 2.6 supports only SHA-1 in OAEP and says so at C_DecryptInit.
    WARN("module refuses RSA-OAEP with SHA-256: " << opened.error().message());
    CHECK(opened.error().function() == "C_DecryptInit");
    CHECK((opened.error().rv() == CKR_ARGUMENTS_BAD ||
           opened.error().rv() == CKR_MECHANISM_PARAM_INVALID));
    CHECK(opened.error().category() == Category::fix_input);
  }
}

// --- Random --------------------------------------------------------------------

TEST_CASE("random returns exactly the bytes asked for, and two calls differ") {
  CHECK(must(session().random(0)).empty());
  CHECK(must(session().random(1)).size() == 1);
  CHECK(must(session().random(4096)).size() == 4096);

  Bytes first = must(session().random(32));
  Bytes second = must(session().random(32));
  CHECK(first.size() == 32);
  CHECK(first != second);
  CHECK(first != Bytes(32, 0));
}

}  // namespace
}  // namespace hsmactor::pkcs11
