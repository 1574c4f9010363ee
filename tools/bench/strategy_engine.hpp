// The peer users would pick instead of hsmactor: OpenSSL 3 with libp11's
// PKCS#11 engine (Debian package libengine-pkcs11-openssl), keys loaded by
// pkcs11: URI, signing through EVP_PKEY_sign (ECDSA over a digest) and
// EVP_DigestSign (RSA, hashed by OpenSSL, padded and signed in the token with
// CKM_RSA_PKCS). The engine offers no HMAC, random or digest on the token.
//
// If the engine is not installed or cannot load the keys, every cell is
// reported as unavailable with the reason; nothing fails.
//
// Usage:
//   auto engine = make_engine_strategy({kDefaultEnginePath, module, "hsmactor-bench", pin});
//   if (engine->unavailable().empty()) engine->run(workload, 4, timing);
#pragma once

#include <memory>
#include <string>

#include "pkcs11/pin.hpp"
#include "tools/bench/strategy.hpp"

namespace hsmactor::bench {

/// Where the engine and the token are.
struct EngineConfig {
  std::string engine_path;
  std::string module_path;
  std::string token_label;
  Pin pin;
};

/// Returns the engine strategy; check unavailable() before relying on it.
std::unique_ptr<Strategy> make_engine_strategy(const EngineConfig& config);

}  // namespace hsmactor::bench
