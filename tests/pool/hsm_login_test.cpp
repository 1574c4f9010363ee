// Logging a token in through the public API: a wrong PIN is refused with
// CKR_PIN_INCORRECT and can be corrected; a token already open refuses a
// second, wrong PIN; and no PIN ever shows up in an error or a trace event.
// The login is owned with care: one another consumer made is never logged
// out by us, and one lost together with every session is made again.
#include "hsmactor.hpp"

#include <catch2/catch.hpp>

#include <mutex>
#include <string>
#include <vector>

#include "tests/support/softhsm_token.hpp"

#include "tests/pool/pool_fixture.hpp"
#include "tests/support/openssl_check.hpp"

namespace hsmactor {
namespace {

using namespace std::chrono_literals;
using testing::contains;
using testing::faults;
using testing::pool_test_token;

const char* const kWrongPin = "wrong-pin-4711";
const char* const kOtherWrongPin = "other-wrong-0815";

// Returns every text an Error carries.
std::vector<std::string> texts_of(const Error& error) {
  return {error.message(), error.detail(), error.function(), error.operation()};
}

void check_no_pin_in(const std::vector<std::string>& texts) {
  const auto& right_pin = "1234";  // create_test_token's user PIN
  for (const auto& text : texts) {
    INFO("text: " << text);
    CHECK_FALSE(contains(text, kWrongPin));
    CHECK_FALSE(contains(text, kOtherWrongPin));
    CHECK_FALSE(contains(text, right_pin));
  }
}

bool signs(const Token& token) {
  Bytes digest = testing::openssl::sha256(bytes_of("login test"));
  auto signature = token.sign(token.private_key(testing::TestKeyLabels::ec256), Mechanism::ecdsa(), digest)
                       .get(30s);
  return signature.ok() &&
         testing::openssl::verify_ecdsa(pool_test_token().ec256_public, digest, *signature);
}

TEST_CASE("a wrong PIN fails open_token with CKR_PIN_INCORRECT and the right PIN works afterwards") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  TokenOptions wrong = testing::options_for(test_token);
  wrong.pin = Pin(kWrongPin);

  auto refused = hsm.open_token(wrong);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().rv() == CKR_PIN_INCORRECT);
  CHECK(refused.error().rv_name() == "CKR_PIN_INCORRECT");
  CHECK(refused.error().category() == Category::reauthenticate);
  CHECK(refused.error().function() == "C_Login");
  check_no_pin_in(texts_of(refused.error()));

  auto accepted = hsm.open_token(testing::options_for(test_token));
  REQUIRE(accepted.ok());
  CHECK(signs(*accepted));
  testing::check_no_session_shared();
}

TEST_CASE("a token open in this process refuses a second open_token with a different wrong PIN") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  Token first = testing::open_or_throw(hsm, testing::options_for(test_token));
  std::mutex events_mutex;
  std::vector<TraceEvent> events;
  first.set_trace_sink([&](const TraceEvent& event) {
    std::lock_guard<std::mutex> lock(events_mutex);
    events.push_back(event);
  });
  REQUIRE(signs(first));

  TokenOptions wrong = testing::options_for(test_token);
  wrong.pin = Pin(kOtherWrongPin);
  auto refused = hsm.open_token(wrong);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().rv() == CKR_PIN_INCORRECT);
  CHECK(refused.error().category() == Category::reauthenticate);
  check_no_pin_in(texts_of(refused.error()));

  // The refusal did not disturb the login the first token holds, and the
  // right PIN joins it without logging in again.
  CHECK(signs(first));
  const auto logins_before = faults().call_count("C_Login");
  auto joined = hsm.open_token(testing::options_for(test_token));
  REQUIRE(joined.ok());
  CHECK(signs(*joined));
  CHECK(faults().call_count("C_Login") == logins_before);

  first.set_trace_sink(nullptr);
  std::lock_guard<std::mutex> lock(events_mutex);
  REQUIRE_FALSE(events.empty());
  for (const auto& event : events) check_no_pin_in({event.what, event.operation, event.result});
  testing::check_no_session_shared();
}

TEST_CASE("a login another consumer made before open_token survives hsmactor's last close") {
  const auto& test_token = pool_test_token();
  faults().reset();
  // Another consumer of the same module in this process, logged in first.
  testing::LoggedInSession other(test_token.token);
  auto before = other.session().info();
  REQUIRE(before.ok());
  REQUIRE(before->state == CKS_RW_USER_FUNCTIONS);
  {
    Hsm hsm;
    Token token = testing::open_or_throw(hsm, testing::options_for(test_token));
    CHECK(signs(token));
    token.close();
  }
  // hsmactor found the login there, so it was not hsmactor's to end.
  auto after = other.session().info();
  REQUIRE(after.ok());
  CHECK(after->state == CKS_RW_USER_FUNCTIONS);
  CHECK(other.session().random(16).ok());
}

TEST_CASE("every sign succeeds when all sessions and the login are lost before each burst") {
  const auto& test_token = pool_test_token();
  faults().reset();
  Hsm hsm;
  TokenOptions options = testing::options_for(test_token);
  options.min_sessions = 3;
  options.max_sessions = 3;
  Token token = testing::open_or_throw(hsm, options);
  REQUIRE(signs(token));
  const Key key = token.private_key(testing::TestKeyLabels::ec256);
  const Bytes digest = testing::openssl::sha256(bytes_of("burst"));
  std::vector<std::string> failures;
  auto sign_all = [&](int round, int count) {
    std::vector<Future<Bytes>> burst;
    for (int i = 0; i < count; ++i) burst.push_back(token.sign(key, Mechanism::ecdsa(), digest));
    for (auto& signature : burst) {
      auto result = signature.get(30s);
      if (!result) {
        failures.push_back("round " + std::to_string(round) + ": " + result.error().message());
      }
    }
  };
  // A lone sign heals through one session, so the others keep an older
  // generation; after the next loss, the first heal may come from one of
  // those. Many rounds make that order certain to occur.
  for (int round = 0; round < 30; ++round) {
    faults().invalidate_all_sessions();
    sign_all(round, 1);
    faults().invalidate_all_sessions();
    sign_all(round, 8);
  }
  std::string all_failures;
  for (const auto& failure : failures) all_failures += failure + "\n";
  INFO(failures.size() << " failed signs:\n" << all_failures);
  CHECK(failures.empty());
  CHECK(signs(token));
  testing::check_no_session_shared();
}

}  // namespace
}  // namespace hsmactor
