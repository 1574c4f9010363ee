#include "tools/soak/soak.hpp"

#include <catch2/catch.hpp>

namespace hsmactor::soak {
namespace {

Error stale_retry_failed() {
  return Error::from_rv(CKR_TOKEN_NOT_PRESENT, "C_Sign")
      .as(Condition::stale_session_retry_failed, "retried once, still stale");
}

TEST_CASE("no error is allowed without a fault that explains it") {
  const FaultContext calm;
  CHECK_FALSE(allowed_error(Error::from_rv(CKR_DEVICE_REMOVED, "C_Sign"), calm));
  CHECK_FALSE(allowed_error(Error::make(Condition::broken_promise, "dropped", "sign"), calm));
  CHECK_FALSE(allowed_error(stale_retry_failed(), calm));
}

TEST_CASE("a pull explains token-absent and stale codes, not internal errors") {
  FaultContext pull;
  pull.pull_window = true;
  CHECK(allowed_error(Error::from_rv(CKR_TOKEN_NOT_PRESENT, "C_Sign"), pull));
  CHECK(allowed_error(Error::from_rv(CKR_DEVICE_REMOVED, "C_Sign"), pull));
  CHECK(allowed_error(stale_retry_failed(), pull));
  CHECK_FALSE(allowed_error(Error::make(Condition::internal_error, "oops", "sign"), pull));
  CHECK_FALSE(allowed_error(Error::make(Condition::deadline_exceeded, "late", "sign"), pull));
  CHECK_FALSE(allowed_error(Error::from_rv(CKR_SIGNATURE_INVALID, "C_Verify"), pull));
}

TEST_CASE("a kill explains broken_promise for requests in flight only") {
  FaultContext kill;
  kill.in_flight_at_kill = true;
  CHECK(allowed_error(Error::make(Condition::broken_promise, "dropped", "sign"), kill));
  CHECK_FALSE(allowed_error(Error::make(Condition::overloaded, "full", "sign"), kill));
  FaultContext stale;
  stale.stale_injection = true;
  CHECK_FALSE(allowed_error(Error::make(Condition::broken_promise, "dropped", "sign"), stale));
  CHECK(allowed_error(stale_retry_failed(), stale));
}

}  // namespace
}  // namespace hsmactor::soak
