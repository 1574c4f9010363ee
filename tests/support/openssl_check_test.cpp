#include "tests/support/openssl_check.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

// These checks judge the HSM in every other test, so here they are judged
// against published test vectors and against keys and signatures made by
// OpenSSL itself, with no HSM involved.

namespace hsmactor::testing {
namespace {

Bytes hex(std::string_view text) {
  auto bytes = from_hex(text);
  if (!bytes) throw std::invalid_argument("bad hex in test");
  return *bytes;
}

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* context) const { EVP_PKEY_CTX_free(context); }
};
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;

struct MdCtxFree {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

/// Returns the bytes of BIGNUM parameter `name` of `key`, big-endian.
Bytes bn_param(EVP_PKEY* key, const char* name) {
  BIGNUM* value = nullptr;
  REQUIRE(EVP_PKEY_get_bn_param(key, name, &value) == 1);
  Bytes out(static_cast<std::size_t>(BN_num_bytes(value)));
  BN_bn2bin(value, out.data());
  BN_free(value);
  return out;
}

/// An EC key made by OpenSSL, its public half as a token would export it.
struct OpensslEcKey {
  PkeyPtr key;
  pkcs11::PublicKey exported;
  std::size_t order_size = 0;
};

OpensslEcKey make_ec_key(const char* group, pkcs11::EcCurve curve, std::size_t order_size) {
  OpensslEcKey made;
  made.key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", group));
  REQUIRE(made.key);
  Bytes point(1 + 2 * order_size);
  std::size_t length = 0;
  REQUIRE(EVP_PKEY_get_octet_string_param(made.key.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                          point.size(), &length) == 1);
  point.resize(length);
  made.exported.key_type = CKK_EC;
  made.exported.ec_params = pkcs11::ec_params_der(curve);
  made.exported.ec_point = point;
  made.order_size = order_size;
  return made;
}

/// Returns OpenSSL's ECDSA signature of `digest`, reshaped into PKCS#11's r || s.
Bytes ecdsa_sign_raw(const OpensslEcKey& made, ByteView digest) {
  PkeyCtxPtr context(EVP_PKEY_CTX_new_from_pkey(nullptr, made.key.get(), nullptr));
  REQUIRE(EVP_PKEY_sign_init(context.get()) == 1);
  std::size_t length = 0;
  REQUIRE(EVP_PKEY_sign(context.get(), nullptr, &length, digest.data, digest.size) == 1);
  Bytes der(length);
  REQUIRE(EVP_PKEY_sign(context.get(), der.data(), &length, digest.data, digest.size) == 1);
  const unsigned char* cursor = der.data();
  ECDSA_SIG* signature = d2i_ECDSA_SIG(nullptr, &cursor, static_cast<long>(length));
  REQUIRE(signature != nullptr);
  Bytes raw(2 * made.order_size);
  BN_bn2binpad(ECDSA_SIG_get0_r(signature), raw.data(), static_cast<int>(made.order_size));
  BN_bn2binpad(ECDSA_SIG_get0_s(signature), raw.data() + made.order_size,
               static_cast<int>(made.order_size));
  ECDSA_SIG_free(signature);
  return raw;
}

/// An RSA-2048 key made by OpenSSL once for the whole binary (key generation is slow).
struct OpensslRsaKey {
  PkeyPtr key;
  pkcs11::PublicKey exported;
};

const OpensslRsaKey& rsa_key() {
  static const OpensslRsaKey made = [] {
    OpensslRsaKey key;
    key.key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048}));
    if (!key.key) throw std::runtime_error("RSA key generation failed");
    key.exported.key_type = CKK_RSA;
    key.exported.modulus = bn_param(key.key.get(), OSSL_PKEY_PARAM_RSA_N);
    key.exported.public_exponent = bn_param(key.key.get(), OSSL_PKEY_PARAM_RSA_E);
    return key;
  }();
  return made;
}

/// Returns OpenSSL's RSA signature of SHA-256(`message`), PKCS#1 v1.5 or PSS.
Bytes rsa_sign(ByteView message, bool pss, int salt_length = 32) {
  MdCtxPtr context(EVP_MD_CTX_new());
  EVP_PKEY_CTX* key_context = nullptr;
  REQUIRE(EVP_DigestSignInit_ex(context.get(), &key_context, "SHA256", nullptr, nullptr,
                                rsa_key().key.get(), nullptr) == 1);
  if (pss) {
    REQUIRE(EVP_PKEY_CTX_set_rsa_padding(key_context, RSA_PKCS1_PSS_PADDING) == 1);
    REQUIRE(EVP_PKEY_CTX_set_rsa_pss_saltlen(key_context, salt_length) == 1);
  }
  std::size_t length = 0;
  REQUIRE(EVP_DigestSign(context.get(), nullptr, &length, message.data, message.size) == 1);
  Bytes signature(length);
  REQUIRE(EVP_DigestSign(context.get(), signature.data(), &length, message.data, message.size) ==
          1);
  signature.resize(length);
  return signature;
}

/// Returns OpenSSL's RSA-OAEP decryption of `ciphertext` with `hash` for
/// both OAEP and MGF1, or nothing.
std::optional<Bytes> rsa_oaep_decrypt(ByteView ciphertext, const EVP_MD* hash) {
  PkeyCtxPtr context(EVP_PKEY_CTX_new_from_pkey(nullptr, rsa_key().key.get(), nullptr));
  REQUIRE(EVP_PKEY_decrypt_init(context.get()) == 1);
  REQUIRE(EVP_PKEY_CTX_set_rsa_padding(context.get(), RSA_PKCS1_OAEP_PADDING) == 1);
  REQUIRE(EVP_PKEY_CTX_set_rsa_oaep_md(context.get(), hash) == 1);
  REQUIRE(EVP_PKEY_CTX_set_rsa_mgf1_md(context.get(), hash) == 1);
  std::size_t length = 0;
  REQUIRE(EVP_PKEY_decrypt(context.get(), nullptr, &length, ciphertext.data, ciphertext.size) == 1);
  Bytes plaintext(length);
  if (EVP_PKEY_decrypt(context.get(), plaintext.data(), &length, ciphertext.data,
                       ciphertext.size) != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  plaintext.resize(length);
  return plaintext;
}

TEST_CASE("sha256 matches the FIPS 180-2 examples") {
  CHECK(to_hex(openssl::sha256(bytes_of("abc"))) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(to_hex(openssl::sha256(ByteView())) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("hmac_sha256 matches RFC 4231 test cases 1 and 2") {
  CHECK(to_hex(openssl::hmac_sha256(Bytes(20, 0x0b), bytes_of("Hi There"))) ==
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  CHECK(to_hex(openssl::hmac_sha256(bytes_of("Jefe"), bytes_of("what do ya want for nothing?"))) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("hmac_sha256 accepts an empty key and empty data") {
  CHECK(openssl::hmac_sha256(ByteView(), ByteView()).size() == 32);
}

TEST_CASE("aes_gcm_encrypt matches test case 2 of the GCM specification") {
  Bytes ciphertext = openssl::aes_gcm_encrypt(Bytes(16, 0), Bytes(12, 0), ByteView(), Bytes(16, 0));
  CHECK(to_hex(ciphertext) ==
        "0388dace60b6a392f328c2b971b2fe78"    // ciphertext
        "ab6e47d42cec13bdf53a67b21257bddf");  // tag
}

TEST_CASE("aes_gcm_decrypt opens what aes_gcm_encrypt sealed, with AAD and a 256-bit key") {
  Bytes key(32, 0x42);
  Bytes iv = hex("000102030405060708090a0b");
  Bytes aad = bytes_of("header");
  Bytes plaintext = bytes_of("attack at dawn, bring the 256-bit key");
  Bytes sealed = openssl::aes_gcm_encrypt(key, iv, aad, plaintext);
  REQUIRE(sealed.size() == plaintext.size() + 16);

  auto opened = openssl::aes_gcm_decrypt(key, iv, aad, sealed);
  REQUIRE(opened);
  CHECK(*opened == plaintext);
}

TEST_CASE("aes_gcm_decrypt refuses a changed tag, changed AAD or input shorter than a tag") {
  Bytes key(16, 7);
  Bytes iv(12, 9);
  Bytes sealed = openssl::aes_gcm_encrypt(key, iv, bytes_of("aad"), bytes_of("secret"));

  Bytes bad_tag = sealed;
  bad_tag.back() ^= 0x01;
  CHECK_FALSE(openssl::aes_gcm_decrypt(key, iv, bytes_of("aad"), bad_tag));
  CHECK_FALSE(openssl::aes_gcm_decrypt(key, iv, bytes_of("AAD"), sealed));
  CHECK_FALSE(openssl::aes_gcm_decrypt(key, iv, bytes_of("aad"), Bytes(15, 0)));
}

TEST_CASE("verify_ecdsa accepts OpenSSL's own P-256 and P-384 signatures as r||s") {
  auto p256 = make_ec_key("P-256", pkcs11::EcCurve::p256, 32);
  auto p384 = make_ec_key("P-384", pkcs11::EcCurve::p384, 48);
  Bytes digest256 = openssl::sha256(bytes_of("message"));
  Bytes digest384(48, 0x5a);

  CHECK(openssl::verify_ecdsa(p256.exported, digest256, ecdsa_sign_raw(p256, digest256)));
  CHECK(openssl::verify_ecdsa(p384.exported, digest384, ecdsa_sign_raw(p384, digest384)));
}

TEST_CASE("verify_ecdsa rejects another digest, a flipped bit, a wrong length and another key") {
  auto key = make_ec_key("P-256", pkcs11::EcCurve::p256, 32);
  auto other = make_ec_key("P-256", pkcs11::EcCurve::p256, 32);
  Bytes digest = openssl::sha256(bytes_of("message"));
  Bytes signature = ecdsa_sign_raw(key, digest);

  CHECK_FALSE(openssl::verify_ecdsa(key.exported, openssl::sha256(bytes_of("massage")), signature));
  Bytes flipped = signature;
  flipped[40] ^= 0x10;
  CHECK_FALSE(openssl::verify_ecdsa(key.exported, digest, flipped));
  CHECK_FALSE(openssl::verify_ecdsa(key.exported, digest, ByteView(signature.data(), 63)));
  CHECK_FALSE(openssl::verify_ecdsa(other.exported, digest, signature));
}

TEST_CASE("verify_ecdsa throws for a curve it cannot build, instead of answering false") {
  auto key = make_ec_key("P-256", pkcs11::EcCurve::p256, 32);
  pkcs11::PublicKey broken = key.exported;
  broken.ec_params = {0x06, 0x03, 0x2a, 0x03, 0x04};  // OID 1.2.3.4: no curve
  CHECK_THROWS_AS(openssl::verify_ecdsa(broken, Bytes(32, 1), Bytes(64, 1)), std::runtime_error);
}

TEST_CASE("verify_rsa_pkcs1_sha256 accepts OpenSSL's signature and rejects a tampered one") {
  Bytes message = bytes_of("pay 100 to alice");
  Bytes signature = rsa_sign(message, false);
  CHECK(openssl::verify_rsa_pkcs1_sha256(rsa_key().exported, message, signature));

  CHECK_FALSE(openssl::verify_rsa_pkcs1_sha256(rsa_key().exported, bytes_of("pay 900 to alice"),
                                               signature));
  Bytes tampered = signature;
  tampered[10] ^= 0x01;
  CHECK_FALSE(openssl::verify_rsa_pkcs1_sha256(rsa_key().exported, message, tampered));
}

TEST_CASE("verify_rsa_pss_sha256 holds PSS signatures to the salt length asked for") {
  Bytes message = bytes_of("pss message");
  Bytes salt32 = rsa_sign(message, true, 32);
  CHECK(openssl::verify_rsa_pss_sha256(rsa_key().exported, message, salt32));
  CHECK_FALSE(openssl::verify_rsa_pss_sha256(rsa_key().exported, bytes_of("other"), salt32));

  Bytes salt20 = rsa_sign(message, true, 20);
  CHECK_FALSE(openssl::verify_rsa_pss_sha256(rsa_key().exported, message, salt20));
  CHECK(openssl::verify_rsa_pss_sha256(rsa_key().exported, message, salt20, 20));
}

TEST_CASE("a PKCS#1 v1.5 signature is not a PSS signature, nor the other way round") {
  Bytes message = bytes_of("same message");
  CHECK_FALSE(
      openssl::verify_rsa_pss_sha256(rsa_key().exported, message, rsa_sign(message, false)));
  CHECK_FALSE(
      openssl::verify_rsa_pkcs1_sha256(rsa_key().exported, message, rsa_sign(message, true)));
}

TEST_CASE("rsa_oaep_sha256_encrypt makes fresh ciphertext that the private key opens") {
  Bytes plaintext = bytes_of("wrapped secret");
  Bytes first = openssl::rsa_oaep_sha256_encrypt(rsa_key().exported, plaintext);
  Bytes second = openssl::rsa_oaep_sha256_encrypt(rsa_key().exported, plaintext);
  CHECK(first.size() == 256);
  CHECK(first != second);  // OAEP is randomised

  auto opened = rsa_oaep_decrypt(first, EVP_sha256());
  REQUIRE(opened);
  CHECK(*opened == plaintext);
  CHECK_FALSE(rsa_oaep_decrypt(first, EVP_sha1()));
}

TEST_CASE("rsa_oaep_sha1_encrypt makes ciphertext only the SHA-1 OAEP decryption opens") {
  Bytes plaintext = bytes_of("for SoftHSM2");
  Bytes ciphertext = openssl::rsa_oaep_sha1_encrypt(rsa_key().exported, plaintext);

  auto opened = rsa_oaep_decrypt(ciphertext, EVP_sha1());
  REQUIRE(opened);
  CHECK(*opened == plaintext);
  CHECK_FALSE(rsa_oaep_decrypt(ciphertext, EVP_sha256()));
}

TEST_CASE("many threads verify at once without sharing state") {
  auto key = make_ec_key("P-256", pkcs11::EcCurve::p256, 32);
  Bytes digest = openssl::sha256(bytes_of("shared"));
  Bytes good = ecdsa_sign_raw(key, digest);
  Bytes bad = good;
  bad[0] ^= 0x80;
  Bytes message = bytes_of("rsa shared");
  Bytes rsa_signature = rsa_sign(message, false);

  std::atomic<int> wrong_answers{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        if (!openssl::verify_ecdsa(key.exported, digest, good)) ++wrong_answers;
        if (openssl::verify_ecdsa(key.exported, digest, bad)) ++wrong_answers;
        if (!openssl::verify_rsa_pkcs1_sha256(rsa_key().exported, message, rsa_signature)) {
          ++wrong_answers;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(wrong_answers == 0);
}

}  // namespace
}  // namespace hsmactor::testing
