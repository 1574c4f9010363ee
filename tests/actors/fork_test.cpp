// Fork: the parent signs, forks; the child builds fresh state (a new
// C_Initialize, a new login) without touching the parent's actors, signs and
// exits; the parent keeps signing.
#include "pool/hsm.hpp"

#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include "tests/support/softhsm_token.hpp"

using namespace hsmactor;

namespace {

TokenOptions options_for(const testing::TestToken& token) {
  TokenOptions options;
  options.module_path = token.module_path;
  options.label = token.label;
  options.pin = token.user_pin;
  options.max_sessions = 2;
  return options;
}

bool signs(const Token& token) {
  auto signature = token.sign(token.key(testing::TestKeyLabels::ec256),
                              pkcs11::Mechanism::ecdsa(), Bytes(32, 7))
                       .get(std::chrono::seconds(30));
  if (!signature) return false;
  auto valid = token.verify(Key::public_key(testing::TestKeyLabels::ec256),
                            pkcs11::Mechanism::ecdsa(), Bytes(32, 7), *signature)
                   .get(std::chrono::seconds(30));
  return valid.ok() && *valid;
}

}  // namespace

TEST_CASE("after fork the child signs with fresh state and the parent keeps signing") {
  auto token_spec = testing::create_test_token("forking");
  {
    testing::LoggedInSession setup(token_spec);
    testing::create_test_keys(setup.session());
  }
  Hsm hsm;
  auto token = hsm.open_token(options_for(token_spec));
  REQUIRE(token.ok());
  REQUIRE(signs(*token));

  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    // Only async-signal-safe exits from here on failure paths: no Catch2.
    int status = 1;
    {
      // The parent's token answers with `forked` instead of touching its actors.
      auto inherited = token->random(8).get(std::chrono::seconds(5));
      bool refused = !inherited.ok() && inherited.error().condition() == Condition::forked;
      Hsm child_hsm;
      auto child_token = child_hsm.open_token(options_for(token_spec));
      if (refused && child_token.ok() && signs(*child_token)) status = 0;
      if (child_token.ok()) child_token->close();
    }
    ::_exit(status);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(signs(*token));
  CHECK(signs(*token));
}
