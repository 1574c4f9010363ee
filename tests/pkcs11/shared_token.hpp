// The one SoftHSM2 token of a test binary, with the standard keys.
//
// Generating keys takes most of a SoftHSM2 test's time, so each binary makes
// its token, logs in and generates the keys once, on first use, and every test
// case shares them. Tests that change login state or destroy objects make
// their own token or their own session objects instead.
//
// Usage:
//   auto& shared = shared_token();
//   Bytes signature = must(shared.session().sign(Mechanism::ecdsa(),
//                                                shared.keys().ec256.private_key, digest));
#pragma once

#include "pkcs11/module.hpp"
#include "pkcs11/session.hpp"
#include "tests/support/softhsm_token.hpp"

namespace hsmactor::testing {

/// A token labelled "pkcs11-tests", a user session on it and the TestKeys.
class SharedToken {
 public:
  SharedToken();
  SharedToken(const SharedToken&) = delete;
  SharedToken& operator=(const SharedToken&) = delete;

  const TestToken& token() const { return token_; }
  pkcs11::Module& module() { return logged_in_.module(); }
  pkcs11::Session& session() { return logged_in_.session(); }
  CK_SLOT_ID slot() const { return logged_in_.slot(); }
  const TestKeys& keys() const { return keys_; }

 private:
  TestToken token_;
  LoggedInSession logged_in_;
  TestKeys keys_;
};

/// Returns this binary's shared token, created on first use.
SharedToken& shared_token();

}  // namespace hsmactor::testing
