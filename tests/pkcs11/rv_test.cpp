#include "pkcs11/rv.hpp"

#include <iterator>
#include <set>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

namespace hsmactor::pkcs11 {
namespace {

struct HeaderCode {
  CK_RV rv;
  const char* name;
};

// Every CKR_* macro of the PKCS#11 header we compile against, extracted from
// the header itself at build time, so a code the table forgets cannot hide.
#define HSMACTOR_HEADER_CODE(name) {name, #name},
constexpr HeaderCode kHeaderCodes[] = {
#include "tests/pkcs11/ckr_codes.inc"
};
#undef HSMACTOR_HEADER_CODE

TEST_CASE("the header extraction found the codes of the whole 2.40 range") {
  CHECK(std::size(kHeaderCodes) >= 90);
}

TEST_CASE("every CKR_ code of the PKCS#11 header has its own name, and back") {
  for (const auto& code : kHeaderCodes) {
    INFO(code.name);
    CHECK(rv_name(code.rv) == code.name);
    auto parsed = rv_from_name(code.name);
    REQUIRE(parsed);
    CHECK(*parsed == code.rv);
  }
}

TEST_CASE("well-known codes have their standard names") {
  CHECK(rv_name(CKR_OK) == "CKR_OK");
  CHECK(rv_name(0x0a0) == "CKR_PIN_INCORRECT");
  CHECK(rv_name(0x032) == "CKR_DEVICE_REMOVED");
  CHECK(rv_name(0x0b3) == "CKR_SESSION_HANDLE_INVALID");
  CHECK(rv_name(0x101) == "CKR_USER_NOT_LOGGED_IN");  // would be 0x01 in an 8-bit code
  CHECK(rv_name(0x150) == "CKR_BUFFER_TOO_SMALL");
  CHECK(rv_name(0x190) == "CKR_CRYPTOKI_NOT_INITIALIZED");
  CHECK(rv_name(0x0f0) == "CKR_UNWRAPPING_KEY_HANDLE_INVALID");
  CHECK(rv_name(0x200) == "CKR_FUNCTION_REJECTED");
}

TEST_CASE("vendor-defined codes are named by their offset from CKR_VENDOR_DEFINED") {
  CHECK(rv_name(CKR_VENDOR_DEFINED) == "CKR_VENDOR_DEFINED+0x0");
  CHECK(rv_name(CKR_VENDOR_DEFINED + 0x42) == "CKR_VENDOR_DEFINED+0x42");
  CHECK(rv_name(0xce534351UL) == "CKR_VENDOR_DEFINED+0x4e534351");  // NSS's CKR_NSS_CERTDB_FAILED
}

TEST_CASE("codes the standard never assigned are CKR_UNKNOWN with their value in hex") {
  CHECK(rv_name(0x4) == "CKR_UNKNOWN_0x4");
  CHECK(rv_name(0x1ff) == "CKR_UNKNOWN_0x1ff");
  CHECK(rv_name(0x7fffffffUL) == "CKR_UNKNOWN_0x7fffffff");
}

TEST_CASE("rv_from_name knows only the exact names of the header") {
  CHECK_FALSE(rv_from_name(""));
  CHECK_FALSE(rv_from_name("ckr_ok"));
  CHECK_FALSE(rv_from_name("CKR_PIN_INCORRECT "));
  CHECK_FALSE(rv_from_name("CKR_VENDOR_DEFINED+0x42"));
  CHECK_FALSE(rv_from_name("CKR_UNKNOWN_0x4"));
}

// The expected categories, written from the rule in rv.hpp rather than from
// the implementation, one reason per group.
const std::set<CK_RV> kRetry = {
    // The session, module or token went away: a fresh one may succeed.
    CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT,
    CKR_CRYPTOKI_NOT_INITIALIZED,
    // This session is busy; another session is not.
    CKR_OPERATION_ACTIVE, CKR_FUNCTION_NOT_PARALLEL,
    // Short of resources right now.
    CKR_DEVICE_MEMORY, CKR_HOST_MEMORY, CKR_SESSION_COUNT, CKR_FUNCTION_CANCELED};

const std::set<CK_RV> kReauthenticate = {CKR_USER_NOT_LOGGED_IN,
                                         CKR_PIN_INCORRECT,
                                         CKR_PIN_EXPIRED,
                                         CKR_PIN_INVALID,
                                         CKR_PIN_LEN_RANGE,
                                         CKR_USER_PIN_NOT_INITIALIZED,
                                         CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
                                         CKR_USER_TOO_MANY_TYPES};

const std::set<CK_RV> kFixInput = {
    CKR_ARGUMENTS_BAD,
    CKR_ATTRIBUTE_READ_ONLY,
    CKR_ATTRIBUTE_SENSITIVE,
    CKR_ATTRIBUTE_TYPE_INVALID,
    CKR_ATTRIBUTE_VALUE_INVALID,
    CKR_ACTION_PROHIBITED,
    CKR_DATA_INVALID,
    CKR_DATA_LEN_RANGE,
    CKR_ENCRYPTED_DATA_INVALID,
    CKR_ENCRYPTED_DATA_LEN_RANGE,
    CKR_KEY_HANDLE_INVALID,
    CKR_KEY_SIZE_RANGE,
    CKR_KEY_TYPE_INCONSISTENT,
    CKR_KEY_NOT_NEEDED,
    CKR_KEY_NEEDED,
    CKR_KEY_INDIGESTIBLE,
    CKR_KEY_FUNCTION_NOT_PERMITTED,
    CKR_KEY_NOT_WRAPPABLE,
    CKR_KEY_UNEXTRACTABLE,
    CKR_MECHANISM_INVALID,
    CKR_MECHANISM_PARAM_INVALID,
    CKR_OBJECT_HANDLE_INVALID,
    CKR_OPERATION_NOT_INITIALIZED,
    CKR_SIGNATURE_INVALID,
    CKR_SIGNATURE_LEN_RANGE,
    CKR_TEMPLATE_INCOMPLETE,
    CKR_TEMPLATE_INCONSISTENT,
    CKR_SESSION_READ_ONLY,
    CKR_SLOT_ID_INVALID,
    CKR_TOKEN_WRITE_PROTECTED,
    CKR_USER_TYPE_INVALID,
    CKR_WRAPPED_KEY_INVALID,
    CKR_WRAPPED_KEY_LEN_RANGE,
    CKR_WRAPPING_KEY_HANDLE_INVALID,
    CKR_WRAPPING_KEY_SIZE_RANGE,
    CKR_WRAPPING_KEY_TYPE_INCONSISTENT,
    CKR_UNWRAPPING_KEY_HANDLE_INVALID,
    CKR_UNWRAPPING_KEY_SIZE_RANGE,
    CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
    CKR_DOMAIN_PARAMS_INVALID,
    CKR_CURVE_NOT_SUPPORTED,
    CKR_BUFFER_TOO_SMALL,
    CKR_PUBLIC_KEY_INVALID,
    CKR_PIN_TOO_WEAK,
    CKR_RANDOM_SEED_NOT_SUPPORTED,
};

RvCategory expected_category(CK_RV rv) {
  if (rv == CKR_OK) return RvCategory::ok;
  if (kRetry.count(rv)) return RvCategory::retry;
  if (kReauthenticate.count(rv)) return RvCategory::reauthenticate;
  if (kFixInput.count(rv)) return RvCategory::fix_input;
  return RvCategory::give_up;
}

TEST_CASE("every code of the header falls in the category the documented rule gives it") {
  for (const auto& code : kHeaderCodes) {
    INFO(code.name);
    CHECK(to_string(categorize_rv(code.rv)) == std::string(to_string(expected_category(code.rv))));
  }
}

TEST_CASE("only CKR_OK is ok") {
  CHECK(categorize_rv(CKR_OK) == RvCategory::ok);
  for (const auto& code : kHeaderCodes) {
    if (code.rv == CKR_OK) continue;
    INFO(code.name);
    CHECK(categorize_rv(code.rv) != RvCategory::ok);
  }
}

TEST_CASE("broken devices, locked PINs, unsupported functions and vendor codes give up") {
  for (CK_RV rv : {CKR_DEVICE_ERROR, CKR_GENERAL_ERROR, CKR_FUNCTION_FAILED, CKR_PIN_LOCKED,
                   CKR_FUNCTION_NOT_SUPPORTED, CKR_FIPS_SELF_TEST_FAILED, CKR_CANT_LOCK,
                   CKR_TOKEN_NOT_RECOGNIZED, CKR_VENDOR_DEFINED + 1, 0xce534351UL}) {
    INFO(rv_name(rv));
    CHECK(categorize_rv(rv) == RvCategory::give_up);
  }
}

TEST_CASE("an unknown code gives up rather than guessing") {
  CHECK(categorize_rv(0x4) == RvCategory::give_up);
  CHECK(categorize_rv(0x7fffffffUL) == RvCategory::give_up);
}

TEST_CASE("the stale-session codes are exactly the six that a fresh session can heal") {
  const std::set<CK_RV> stale = {CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED,
                                 CKR_DEVICE_REMOVED,         CKR_TOKEN_NOT_PRESENT,
                                 CKR_USER_NOT_LOGGED_IN,     CKR_CRYPTOKI_NOT_INITIALIZED};
  for (const auto& code : kHeaderCodes) {
    INFO(code.name);
    CHECK(is_stale_session_rv(code.rv) == (stale.count(code.rv) == 1));
  }
  CHECK_FALSE(is_stale_session_rv(CKR_VENDOR_DEFINED));
}

TEST_CASE("every stale-session code asks for a retry or a new login, never for new input") {
  for (const auto& code : kHeaderCodes) {
    if (!is_stale_session_rv(code.rv)) continue;
    INFO(code.name);
    auto category = categorize_rv(code.rv);
    CHECK((category == RvCategory::retry || category == RvCategory::reauthenticate));
  }
}

TEST_CASE("a token is absent when it was removed, is not present or is not recognised") {
  CHECK(is_token_absent_rv(CKR_DEVICE_REMOVED));
  CHECK(is_token_absent_rv(CKR_TOKEN_NOT_PRESENT));
  CHECK(is_token_absent_rv(CKR_TOKEN_NOT_RECOGNIZED));
  CHECK_FALSE(is_token_absent_rv(CKR_SESSION_HANDLE_INVALID));
  CHECK_FALSE(is_token_absent_rv(CKR_OK));
}

TEST_CASE("categories print as their names") {
  CHECK(std::string(to_string(RvCategory::ok)) == "ok");
  CHECK(std::string(to_string(RvCategory::retry)) == "retry");
  CHECK(std::string(to_string(RvCategory::reauthenticate)) == "reauthenticate");
  CHECK(std::string(to_string(RvCategory::fix_input)) == "fix_input");
  CHECK(std::string(to_string(RvCategory::give_up)) == "give_up");
}

}  // namespace
}  // namespace hsmactor::pkcs11
