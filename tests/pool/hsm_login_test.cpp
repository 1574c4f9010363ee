// Logging a token in through the public API: a wrong PIN is refused with
// CKR_PIN_INCORRECT and can be corrected; a token already open refuses a
// second, wrong PIN; and no PIN ever shows up in an error or a trace event.
#include "pool/hsm.hpp"

#include <catch2/catch.hpp>

#include <mutex>
#include <string>
#include <vector>

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
  auto signature = token.sign(token.key(testing::TestKeyLabels::ec256), Mechanism::ecdsa(), digest)
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

}  // namespace
}  // namespace hsmactor
