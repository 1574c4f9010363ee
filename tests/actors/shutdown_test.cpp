// Shutdown with requests in flight: every future resolves, nothing hangs, and
// the process exits cleanly (this test also runs under --config=asan).
#include "pool/hsm.hpp"

#include <catch2/catch.hpp>

#include <vector>

#include "testing/fault_control.hpp"
#include "tests/support/softhsm_token.hpp"

using namespace hsmactor;

TEST_CASE("closing a token with 1000 requests in flight resolves every future") {
  auto fault_path = fault::fault_module_path();
  auto token_spec = testing::create_test_token("shutdown", fault_path);
  fault::FaultControl faults(fault_path);
  faults.reset();
  faults.set_latency("C_GenerateRandom", std::chrono::microseconds(500));
  std::vector<Future<Bytes>> answers;
  {
    Hsm hsm;
    TokenOptions options;
    options.module_path = fault_path;
    options.label = token_spec.label;
    options.pin = token_spec.user_pin;
    options.max_sessions = 4;
    options.queue_limit = 2000;
    auto token = hsm.open_token(options);
    REQUIRE(token.ok());
    for (int i = 0; i < 1000; ++i) answers.push_back(token->random(32));
    token->close();
    // Requests after close are answered too.
    answers.push_back(token->random(32));
  }
  int values = 0;
  int shutdown_errors = 0;
  for (auto& answer : answers) {
    auto result = answer.get(std::chrono::seconds(60));
    if (result.ok()) {
      values++;
      continue;
    }
    INFO(result.error().message());
    CHECK(result.error().condition() != Condition::deadline_exceeded);
    shutdown_errors++;
  }
  CHECK(values + shutdown_errors == 1001);
  CHECK(shutdown_errors >= 1);
  CHECK(faults.violations() == 0);
  faults.reset();
}

TEST_CASE("destroying the Hsm without closing tokens still answers everything") {
  auto token_spec = testing::create_test_token("dropped");
  std::vector<Future<Bytes>> answers;
  {
    Hsm hsm;
    TokenOptions options;
    options.module_path = token_spec.module_path;
    options.label = token_spec.label;
    options.pin = token_spec.user_pin;
    auto token = hsm.open_token(options);
    REQUIRE(token.ok());
    for (int i = 0; i < 200; ++i) answers.push_back(token->random(16));
  }
  for (auto& answer : answers) {
    auto result = answer.get(std::chrono::seconds(60));
    if (!result.ok()) CHECK(result.error().condition() != Condition::deadline_exceeded);
  }
}
