// The soak's token: a SoftHSM2 token in a directory of its own (throwaway by
// default), created through the fault module with the standard test keys, and
// the public halves and HMAC value needed to check answers outside the HSM.
//
// SOFTHSM2_CONF is pointed at the directory before anything initialises the
// module; the set-up session is closed and the module finalised again, so the
// Hsm that opens the token afterwards owns the module's initialisation and the
// login, as an application would.
//
// Usage:
//   auto token = SoakToken::create(fault_module_path, "");  // throws on failure
//   options.module_path = token->test_token().module_path;
#pragma once

#include <memory>
#include <string>

#include "pkcs11/attributes.hpp"
#include "tests/support/softhsm_token.hpp"

namespace hsmactor::soak {

class SoakToken {
 public:
  /// Creates the token in `token_dir` (made if missing; must not already hold
  /// a soak token), or in a fresh directory under $TMPDIR when it is empty.
  /// Throws std::runtime_error saying what failed.
  static std::unique_ptr<SoakToken> create(const std::string& module_path,
                                           const std::string& token_dir);
  /// Removes a throwaway directory.
  ~SoakToken();
  SoakToken(const SoakToken&) = delete;
  SoakToken& operator=(const SoakToken&) = delete;

  const testing::TestToken& test_token() const { return token_; }
  const testing::TestKeys& keys() const { return keys_; }
  const pkcs11::PublicKey& ec256_public() const { return ec256_public_; }
  const pkcs11::PublicKey& rsa2048_public() const { return rsa2048_public_; }
  const std::string& dir() const { return dir_; }

 private:
  SoakToken() = default;

  testing::TestToken token_;
  testing::TestKeys keys_;
  pkcs11::PublicKey ec256_public_;
  pkcs11::PublicKey rsa2048_public_;
  std::string dir_;
  bool throwaway_ = false;
};

}  // namespace hsmactor::soak
