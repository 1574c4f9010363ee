// A program outside hsmactor that uses it as a library: it makes a throwaway
// SoftHSM2 token, generates an EC key there, signs one message, verifies the
// signature (and that a tampered one fails), prints OK and exits 0.
#include <chrono>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <string>

#include "hsmactor.hpp"
#include "throwaway_token.hpp"

namespace {

using namespace std::chrono_literals;

constexpr const char* kTokenLabel = "consumer";
constexpr const char* kKeyLabel = "consumer-ec";

[[noreturn]] void fail(const std::string& what) {
  std::cerr << "consumer_sign: " << what << "\n";
  std::exit(1);
}

template <class T>
T must(hsmactor::Result<T> result, const std::string& what) {
  if (!result) fail(what + ": " + result.error().message());
  return std::move(result).value();
}

}  // namespace

int main() {
  // Made before anything loads SoftHSM2, and removed however main returns.
  std::optional<ThrowawayToken> softhsm;
  try {
    softhsm.emplace(kTokenLabel);
  } catch (const std::exception& e) {
    fail(e.what());
  }

  const char* module = std::getenv("HSMACTOR_SOFTHSM2");
  hsmactor::TokenOptions options;
  options.module_path = module && *module ? module : "/usr/lib/softhsm/libsofthsm2.so";
  options.label = softhsm->label();
  options.pin = hsmactor::Pin(ThrowawayToken::kUserPin);

  hsmactor::Hsm hsm;
  hsmactor::Token token = must(hsm.open_token(options), "open the token");

  namespace p11 = hsmactor::pkcs11;
  must(token.generate_key_pair(p11::ec_key_pair_template(p11::EcCurve::p256, kKeyLabel,
                                                         hsmactor::bytes_of("c1")))
           .get(30s),
       "generate an EC P-256 key pair");

  // CKM_ECDSA signs a digest; the token computes it too.
  hsmactor::Bytes message = hsmactor::bytes_of("hello from a consumer of hsmactor");
  hsmactor::Bytes digest =
      must(token.digest(p11::Mechanism::sha256(), message).get(30s), "digest the message");
  hsmactor::Bytes signature =
      must(token.sign(token.private_key(kKeyLabel), p11::Mechanism::ecdsa(), digest).get(30s), "sign");

  hsmactor::Key public_key = hsmactor::Key::public_key(kKeyLabel);
  bool valid = must(token.verify(public_key, p11::Mechanism::ecdsa(), digest, signature).get(30s),
                    "verify");
  if (!valid) fail("the token rejected its own signature");

  hsmactor::Bytes tampered = signature;
  tampered[tampered.size() / 2] ^= 0x01;
  auto rejected = token.verify(public_key, p11::Mechanism::ecdsa(), digest, tampered).get(30s);
  if (rejected && *rejected) fail("the token accepted a tampered signature");

  token.close();
  std::cout << "signature " << hsmactor::to_hex(signature).substr(0, 16) << "... ("
            << signature.size() << " bytes) over SHA-256 " << hsmactor::to_hex(digest).substr(0, 16)
            << "... verifies; a tampered one does not\nOK\n";
  return 0;
}
