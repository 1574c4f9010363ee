#include "tests/support/openssl_check.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <climits>
#include <memory>
#include <stdexcept>
#include <string>

namespace hsmactor::testing::openssl {
namespace {

template <auto Free>
struct FreeWith {
  template <class T>
  void operator()(T* pointer) const {
    Free(pointer);
  }
};

template <class T, auto Free>
using Owned = std::unique_ptr<T, FreeWith<Free>>;

using PkeyPtr = Owned<EVP_PKEY, EVP_PKEY_free>;
using PkeyCtxPtr = Owned<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using MdCtxPtr = Owned<EVP_MD_CTX, EVP_MD_CTX_free>;
using CipherCtxPtr = Owned<EVP_CIPHER_CTX, EVP_CIPHER_CTX_free>;
using BignumPtr = Owned<BIGNUM, BN_free>;
using ParamBuildPtr = Owned<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>;
using ParamsPtr = Owned<OSSL_PARAM, OSSL_PARAM_free>;
using EcdsaSigPtr = Owned<ECDSA_SIG, ECDSA_SIG_free>;
using ObjectPtr = Owned<ASN1_OBJECT, ASN1_OBJECT_free>;

constexpr std::size_t kGcmTagSize = 16;

// OpenSSL treats a null pointer with length 0 differently from one function
// to the next (HMAC refuses a null key); an empty view always points here.
const unsigned char kNothing[1] = {0};

const unsigned char* bytes(ByteView view) { return view.data ? view.data : kNothing; }

int int_size(ByteView view) {
  if (view.size > static_cast<std::size_t>(INT_MAX)) {
    throw std::runtime_error("openssl_check: input larger than INT_MAX bytes");
  }
  return static_cast<int>(view.size);
}

// Returns the calling thread's OpenSSL error queue as text, and empties it.
std::string drain_errors() {
  std::string text;
  while (unsigned long code = ERR_get_error()) {
    char line[256];
    ERR_error_string_n(code, line, sizeof line);
    if (!text.empty()) text += "; ";
    text += line;
  }
  return text.empty() ? "no OpenSSL error recorded" : text;
}

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("openssl_check: " + what + ": " + drain_errors());
}

// A rejected signature leaves errors on the thread's queue; they are the
// expected outcome, not news for whoever calls OpenSSL next on this thread.
bool rejected() {
  ERR_clear_error();
  return false;
}

PkeyPtr key_from_params(const char* type, OSSL_PARAM_BLD* build) {
  ParamsPtr params(OSSL_PARAM_BLD_to_param(build));
  if (!params) fail("OSSL_PARAM_BLD_to_param");
  PkeyCtxPtr context(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  if (!context || EVP_PKEY_fromdata_init(context.get()) != 1) fail("EVP_PKEY_fromdata_init");
  EVP_PKEY* key = nullptr;
  if (EVP_PKEY_fromdata(context.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    fail(std::string("EVP_PKEY_fromdata for an ") + type + " public key");
  }
  return PkeyPtr(key);
}

// Returns OpenSSL's short name ("prime256v1") of the curve whose DER OID is
// `ec_params`.
std::string curve_name(const Bytes& ec_params) {
  const unsigned char* cursor = ec_params.data();
  ObjectPtr oid(d2i_ASN1_OBJECT(nullptr, &cursor, static_cast<long>(ec_params.size())));
  if (!oid) fail("CKA_EC_PARAMS is not a DER object identifier");
  int nid = OBJ_obj2nid(oid.get());
  if (nid == NID_undef) fail("CKA_EC_PARAMS names a curve OpenSSL does not know");
  return OBJ_nid2sn(nid);
}

PkeyPtr ec_public_key(const pkcs11::PublicKey& key) {
  if (key.key_type != CKK_EC) fail("not an EC public key");
  std::string group = curve_name(key.ec_params);
  ParamBuildPtr build(OSSL_PARAM_BLD_new());
  if (!build ||
      OSSL_PARAM_BLD_push_utf8_string(build.get(), OSSL_PKEY_PARAM_GROUP_NAME, group.c_str(), 0) !=
          1 ||
      OSSL_PARAM_BLD_push_octet_string(build.get(), OSSL_PKEY_PARAM_PUB_KEY, bytes(key.ec_point),
                                       key.ec_point.size()) != 1) {
    fail("building EC key parameters");
  }
  return key_from_params("EC", build.get());
}

PkeyPtr rsa_public_key(const pkcs11::PublicKey& key) {
  if (key.key_type != CKK_RSA) fail("not an RSA public key");
  if (key.modulus.empty() || key.public_exponent.empty()) fail("RSA key without modulus");
  BignumPtr modulus(BN_bin2bn(key.modulus.data(), int_size(key.modulus), nullptr));
  BignumPtr exponent(BN_bin2bn(key.public_exponent.data(), int_size(key.public_exponent), nullptr));
  ParamBuildPtr build(OSSL_PARAM_BLD_new());
  // The builder reads the BIGNUMs in OSSL_PARAM_BLD_to_param, so they outlive it.
  if (!modulus || !exponent || !build ||
      OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_N, modulus.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_E, exponent.get()) != 1) {
    fail("building RSA key parameters");
  }
  return key_from_params("RSA", build.get());
}

// Returns the DER ECDSA-Sig-Value for PKCS#11's r || s, or nothing when the
// halves do not match the curve's order size.
std::optional<Bytes> der_ecdsa_signature(ByteView raw, std::size_t order_size) {
  if (raw.size != 2 * order_size) return std::nullopt;
  BignumPtr r(BN_bin2bn(raw.data, static_cast<int>(order_size), nullptr));
  BignumPtr s(BN_bin2bn(raw.data + order_size, static_cast<int>(order_size), nullptr));
  EcdsaSigPtr signature(ECDSA_SIG_new());
  if (!r || !s || !signature) fail("ECDSA_SIG_new");
  if (ECDSA_SIG_set0(signature.get(), r.get(), s.get()) != 1) fail("ECDSA_SIG_set0");
  // The signature owns r and s now.
  (void)r.release();
  (void)s.release();
  int length = i2d_ECDSA_SIG(signature.get(), nullptr);
  if (length <= 0) fail("i2d_ECDSA_SIG");
  Bytes der(static_cast<std::size_t>(length));
  unsigned char* cursor = der.data();
  if (i2d_ECDSA_SIG(signature.get(), &cursor) != length) fail("i2d_ECDSA_SIG");
  return der;
}

enum class RsaPadding { pkcs1, pss };

bool verify_rsa_sha256(const pkcs11::PublicKey& key, ByteView message, ByteView signature,
                       RsaPadding padding, int salt_length) {
  PkeyPtr public_key = rsa_public_key(key);
  MdCtxPtr context(EVP_MD_CTX_new());
  EVP_PKEY_CTX* key_context = nullptr;  // owned by `context`
  if (!context || EVP_DigestVerifyInit_ex(context.get(), &key_context, "SHA256", nullptr, nullptr,
                                          public_key.get(), nullptr) != 1) {
    fail("EVP_DigestVerifyInit_ex");
  }
  if (padding == RsaPadding::pss &&
      (EVP_PKEY_CTX_set_rsa_padding(key_context, RSA_PKCS1_PSS_PADDING) != 1 ||
       EVP_PKEY_CTX_set_rsa_mgf1_md(key_context, EVP_sha256()) != 1 ||
       EVP_PKEY_CTX_set_rsa_pss_saltlen(key_context, salt_length) != 1)) {
    fail("setting RSA-PSS parameters");
  }
  int verdict = EVP_DigestVerify(context.get(), bytes(signature), signature.size, bytes(message),
                                 message.size);
  return verdict == 1 ? true : rejected();
}

}  // namespace

bool verify_ecdsa(const pkcs11::PublicKey& key, ByteView digest, ByteView raw_r_s_signature) {
  PkeyPtr public_key = ec_public_key(key);
  std::size_t order_size = static_cast<std::size_t>(EVP_PKEY_get_bits(public_key.get()) + 7) / 8;
  auto der = der_ecdsa_signature(raw_r_s_signature, order_size);
  if (!der) return rejected();
  PkeyCtxPtr context(EVP_PKEY_CTX_new_from_pkey(nullptr, public_key.get(), nullptr));
  if (!context || EVP_PKEY_verify_init(context.get()) != 1) fail("EVP_PKEY_verify_init");
  int verdict =
      EVP_PKEY_verify(context.get(), der->data(), der->size(), bytes(digest), digest.size);
  return verdict == 1 ? true : rejected();
}

bool verify_rsa_pkcs1_sha256(const pkcs11::PublicKey& key, ByteView message, ByteView signature) {
  return verify_rsa_sha256(key, message, signature, RsaPadding::pkcs1, 0);
}

bool verify_rsa_pss_sha256(const pkcs11::PublicKey& key, ByteView message, ByteView signature,
                           int salt_length) {
  return verify_rsa_sha256(key, message, signature, RsaPadding::pss, salt_length);
}

Bytes hmac_sha256(ByteView key, ByteView data) {
  Bytes mac(EVP_MAX_MD_SIZE);
  std::size_t length = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, bytes(key), key.size, bytes(data),
                data.size, mac.data(), mac.size(), &length) == nullptr) {
    fail("EVP_Q_mac HMAC-SHA256");
  }
  mac.resize(length);
  return mac;
}

Bytes sha256(ByteView data) {
  Bytes digest(EVP_MAX_MD_SIZE);
  unsigned int length = 0;
  if (EVP_Digest(bytes(data), data.size, digest.data(), &length, EVP_sha256(), nullptr) != 1) {
    fail("EVP_Digest SHA-256");
  }
  digest.resize(length);
  return digest;
}

namespace {

const EVP_CIPHER* aes_gcm_for(ByteView key) {
  switch (key.size) {
    case 16:
      return EVP_aes_128_gcm();
    case 24:
      return EVP_aes_192_gcm();
    case 32:
      return EVP_aes_256_gcm();
    default:
      throw std::runtime_error("openssl_check: AES key of " + std::to_string(key.size) +
                               " bytes (want 16, 24 or 32)");
  }
}

CipherCtxPtr gcm_context(ByteView key, ByteView iv, bool encrypt) {
  CipherCtxPtr context(EVP_CIPHER_CTX_new());
  if (!context ||
      EVP_CipherInit_ex(context.get(), aes_gcm_for(key), nullptr, nullptr, nullptr,
                        encrypt ? 1 : 0) != 1 ||
      EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_AEAD_SET_IVLEN, int_size(iv), nullptr) != 1 ||
      EVP_CipherInit_ex(context.get(), nullptr, nullptr, bytes(key), bytes(iv), encrypt ? 1 : 0) !=
          1) {
    fail("AES-GCM set-up");
  }
  return context;
}

}  // namespace

Bytes aes_gcm_encrypt(ByteView key, ByteView iv, ByteView aad, ByteView plaintext) {
  CipherCtxPtr context = gcm_context(key, iv, true);
  int length = 0;
  if (aad.size > 0 &&
      EVP_EncryptUpdate(context.get(), nullptr, &length, bytes(aad), int_size(aad)) != 1) {
    fail("AES-GCM AAD");
  }
  Bytes out(plaintext.size + kGcmTagSize);
  int total = 0;
  if (plaintext.size > 0) {
    if (EVP_EncryptUpdate(context.get(), out.data(), &length, bytes(plaintext),
                          int_size(plaintext)) != 1) {
      fail("AES-GCM encrypt");
    }
    total = length;
  }
  if (EVP_EncryptFinal_ex(context.get(), out.data() + total, &length) != 1) {
    fail("AES-GCM encrypt final");
  }
  total += length;
  if (EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_AEAD_GET_TAG, kGcmTagSize, out.data() + total) !=
      1) {
    fail("AES-GCM tag");
  }
  out.resize(static_cast<std::size_t>(total) + kGcmTagSize);
  return out;
}

std::optional<Bytes> aes_gcm_decrypt(ByteView key, ByteView iv, ByteView aad,
                                     ByteView ciphertext_with_tag) {
  if (ciphertext_with_tag.size < kGcmTagSize) return std::nullopt;
  ByteView ciphertext(ciphertext_with_tag.data, ciphertext_with_tag.size - kGcmTagSize);
  Bytes tag(ciphertext_with_tag.data + ciphertext.size,
            ciphertext_with_tag.data + ciphertext_with_tag.size);
  CipherCtxPtr context = gcm_context(key, iv, false);
  int length = 0;
  if (aad.size > 0 &&
      EVP_DecryptUpdate(context.get(), nullptr, &length, bytes(aad), int_size(aad)) != 1) {
    fail("AES-GCM AAD");
  }
  // One spare block: EVP_DecryptFinal_ex may write nothing, but wants room.
  Bytes plaintext(ciphertext.size + 16);
  int total = 0;
  if (ciphertext.size > 0) {
    if (EVP_DecryptUpdate(context.get(), plaintext.data(), &length, bytes(ciphertext),
                          int_size(ciphertext)) != 1) {
      fail("AES-GCM decrypt");
    }
    total = length;
  }
  if (EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_AEAD_SET_TAG, kGcmTagSize, tag.data()) != 1) {
    fail("AES-GCM set tag");
  }
  if (EVP_DecryptFinal_ex(context.get(), plaintext.data() + total, &length) != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  plaintext.resize(static_cast<std::size_t>(total + length));
  return plaintext;
}

namespace {

Bytes rsa_oaep_encrypt(const pkcs11::PublicKey& key, ByteView plaintext, const EVP_MD* hash) {
  PkeyPtr public_key = rsa_public_key(key);
  PkeyCtxPtr context(EVP_PKEY_CTX_new_from_pkey(nullptr, public_key.get(), nullptr));
  if (!context || EVP_PKEY_encrypt_init(context.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(context.get(), RSA_PKCS1_OAEP_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(context.get(), hash) != 1 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(context.get(), hash) != 1) {
    fail("RSA-OAEP set-up");
  }
  std::size_t length = 0;
  if (EVP_PKEY_encrypt(context.get(), nullptr, &length, bytes(plaintext), plaintext.size) != 1) {
    fail("RSA-OAEP output size");
  }
  Bytes ciphertext(length);
  if (EVP_PKEY_encrypt(context.get(), ciphertext.data(), &length, bytes(plaintext),
                       plaintext.size) != 1) {
    fail("RSA-OAEP encrypt");
  }
  ciphertext.resize(length);
  return ciphertext;
}

}  // namespace

Bytes rsa_oaep_sha256_encrypt(const pkcs11::PublicKey& key, ByteView plaintext) {
  return rsa_oaep_encrypt(key, plaintext, EVP_sha256());
}

Bytes rsa_oaep_sha1_encrypt(const pkcs11::PublicKey& key, ByteView plaintext) {
  return rsa_oaep_encrypt(key, plaintext, EVP_sha1());
}

}  // namespace hsmactor::testing::openssl
