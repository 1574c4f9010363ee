#include "asio/hsmactor_error_code.hpp"

#include <catch2/catch.hpp>

namespace hsmactor::asio_support {
namespace {

TEST_CASE("a PKCS#11 failure becomes its CK_RV in the pkcs11 category") {
  Error error = Error::from_rv(CKR_KEY_HANDLE_INVALID, "C_SignInit", "sign");
  std::error_code ec = make_error_code(error);
  CHECK(ec.category() == pkcs11_category());
  CHECK(ec.value() == static_cast<int>(CKR_KEY_HANDLE_INVALID));
  CHECK(ec.message() == "CKR_KEY_HANDLE_INVALID");
  CHECK(std::string(ec.category().name()) == "pkcs11");
}

TEST_CASE("a library condition becomes the condition in the hsmactor category") {
  std::error_code ec = make_error_code(Error::make(Condition::overloaded, "queue full"));
  CHECK(ec.category() == condition_category());
  CHECK(ec == Condition::overloaded);
  CHECK(ec != Condition::shutting_down);
  CHECK(ec.message() == "overloaded");
  CHECK(static_cast<bool>(ec));
}

TEST_CASE("error codes compare equal to what the caller should do") {
  CHECK(make_error_code(Error::make(Condition::overloaded, "")) == Category::retry);
  CHECK(make_error_code(Error::from_rv(CKR_PIN_INCORRECT, "C_Login")) == Category::reauthenticate);
  CHECK(make_error_code(Error::from_rv(CKR_DATA_LEN_RANGE, "C_Sign")) == Category::fix_input);
  CHECK(make_error_code(Error::from_rv(CKR_DEVICE_ERROR, "C_Sign")) == Category::give_up);
  CHECK(make_error_code(Error::from_rv(CKR_DEVICE_ERROR, "C_Sign")) != Category::retry);
  CHECK(std::error_condition(Category::retry).message() == "retry");
}

TEST_CASE("a wrapping condition keeps its condition rather than its last CK_RV") {
  Error stale = Error::from_rv(CKR_SESSION_HANDLE_INVALID, "C_Sign", "sign")
                    .as(Condition::stale_session_retry_failed);
  CHECK(make_error_code(stale) == Condition::stale_session_retry_failed);
}

TEST_CASE("vendor codes survive the round trip through int") {
  CK_RV vendor = CKR_VENDOR_DEFINED + 0x42;
  std::error_code ec = make_error_code(Error::from_rv(vendor, "C_Sign"));
  CHECK(ec.category() == pkcs11_category());
  CHECK(static_cast<CK_RV>(static_cast<std::uint32_t>(ec.value())) == vendor);
  CHECK(ec.message().find("CKR_VENDOR_DEFINED") != std::string::npos);
}

TEST_CASE("a CK_RV wider than 32 bits is not truncated into another code") {
  if (sizeof(CK_RV) <= 4) SUCCEED("CK_RV is 32 bits here");
  CK_RV wide = static_cast<CK_RV>(0x1'0000'0001ULL);
  std::error_code ec = make_error_code(Error::from_rv(wide, "C_Sign"));
  CHECK(ec == Condition::pkcs11_error);
}

}  // namespace
}  // namespace hsmactor::asio_support
