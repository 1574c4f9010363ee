#include "tests/pkcs11/shared_token.hpp"

namespace hsmactor::testing {

SharedToken::SharedToken()
    : token_(create_test_token("pkcs11-tests")),
      logged_in_(token_),
      keys_(create_test_keys(logged_in_.session())) {}

SharedToken& shared_token() {
  // Destroyed at exit, after every test: closes the session and finalises.
  static SharedToken shared;
  return shared;
}

}  // namespace hsmactor::testing
