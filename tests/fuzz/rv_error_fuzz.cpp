// Fuzzes the naming and categorising of arbitrary CK_RV values (pkcs11/rv)
// and the Error built from them (pkcs11/error).
//
// Input: up to 8 bytes of CK_RV (little-endian), then "function|operation|detail".
// Properties, for any 64-bit value:
// - rv_name is never empty, starts with CKR_, and is either a name of the
//   header (rv_from_name gives the value back) or the documented
//   "CKR_VENDOR_DEFINED+0x.." / "CKR_UNKNOWN_0x.." form, whose hex is the value;
// - it agrees with the fault module's own, separately written table;
// - categorize_rv says ok for CKR_OK only, give_up for vendor codes, and a
//   stale session is a reason to retry or to log in again;
// - Error::from_rv keeps the whole value, the function and the operation,
//   takes its category from the code, and its message is never empty and
//   mentions the C_* function, the CKR_* name and the code in hex;
// - as() and in_operation() keep the code; Error::make keeps the detail.
#include "pkcs11/error.hpp"

#include <cstring>
#include <string>

#include "pkcs11/rv.hpp"
#include "testing/internal/fault_names.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/fuzz_text.hpp"

namespace hsmactor {
namespace {

using fuzz::contains;
using fuzz::hex;
using fuzz::starts_with;

Category expected_category(pkcs11::RvCategory category) {
  switch (category) {
    case pkcs11::RvCategory::retry: return Category::retry;
    case pkcs11::RvCategory::reauthenticate: return Category::reauthenticate;
    case pkcs11::RvCategory::fix_input: return Category::fix_input;
    case pkcs11::RvCategory::ok:
    case pkcs11::RvCategory::give_up: return Category::give_up;
  }
  return Category::give_up;
}

void check_name(CK_RV rv) {
  const std::string name = pkcs11::rv_name(rv);
  FUZZ_CHECK(!name.empty() && starts_with(name, "CKR_"), "rv_name is a CKR_* name");
  for (char c : name) {
    FUZZ_CHECK(c > 0x20 && c < 0x7F, "rv_name is printable ASCII without blanks");
  }
  const std::optional<CK_RV> known = pkcs11::rv_from_name(name);
  if (known) {
    FUZZ_CHECK(*known == rv, "a header name gives the value back");
  } else if (rv >= CKR_VENDOR_DEFINED) {
    FUZZ_CHECK(name == "CKR_VENDOR_DEFINED+0x" + hex(rv - CKR_VENDOR_DEFINED),
               "a vendor code is CKR_VENDOR_DEFINED+0x<offset>");
  } else {
    FUZZ_CHECK(name == "CKR_UNKNOWN_0x" + hex(rv), "an unknown code is CKR_UNKNOWN_0x<value>");
  }

  // The fault module keeps its own table; both must describe the same header.
  const char* fault_name = fault::rv_name(rv);
  if (rv == CKR_VENDOR_DEFINED) {
    FUZZ_CHECK(!known, "CKR_VENDOR_DEFINED itself is named as offset 0");
  } else if (fault_name != nullptr) {
    FUZZ_CHECK(known && name == fault_name, "both tables give the same name");
  } else {
    FUZZ_CHECK(!known, "a name only pkcs11/rv knows");
  }
}

void check_category(CK_RV rv) {
  const pkcs11::RvCategory category = pkcs11::categorize_rv(rv);
  FUZZ_CHECK((category == pkcs11::RvCategory::ok) == (rv == CKR_OK), "ok means CKR_OK");
  FUZZ_CHECK(std::strlen(pkcs11::to_string(category)) > 0, "a category has a name");
  if (rv >= CKR_VENDOR_DEFINED) {
    FUZZ_CHECK(category == pkcs11::RvCategory::give_up, "vendor codes are give_up");
  }
  if (pkcs11::is_stale_session_rv(rv)) {
    FUZZ_CHECK(category == pkcs11::RvCategory::retry ||
                   category == pkcs11::RvCategory::reauthenticate,
               "a stale session is retried or logged in again");
  }
  if (pkcs11::is_token_absent_rv(rv)) FUZZ_CHECK(rv != CKR_OK, "CKR_OK is not an absent token");
}

void check_error(CK_RV rv, const std::string& function, const std::string& operation,
                 const std::string& detail) {
  const Error error = Error::from_rv(rv, function, operation);
  FUZZ_CHECK(error.condition() == Condition::pkcs11_error, "from_rv is pkcs11_error");
  FUZZ_CHECK(error.rv() == rv, "the whole 64-bit value is kept");
  FUZZ_CHECK(error.function() == function && error.operation() == operation,
             "function and operation are kept");
  FUZZ_CHECK(error.detail().empty(), "from_rv adds no detail");
  FUZZ_CHECK(error.category() == expected_category(pkcs11::categorize_rv(rv)),
             "the category is the code's");
  FUZZ_CHECK(error.rv_name() == (rv == CKR_OK ? std::string() : pkcs11::rv_name(rv)),
             "rv_name is the code's name");
  const std::string message = error.message();
  FUZZ_CHECK(!message.empty(), "a message is never empty");
  if (rv != CKR_OK || !function.empty()) {
    FUZZ_CHECK(contains(message, "(0x" + hex(rv) + ")"), "the message has the code in hex");
    FUZZ_CHECK(contains(message, pkcs11::rv_name(rv)), "the message has the CKR_* name");
  }
  if (!function.empty()) {
    FUZZ_CHECK(contains(message, function + " returned "), "the message names the function");
  }
  if (!operation.empty()) {
    FUZZ_CHECK(contains(message, " in " + operation), "the message names the operation");
  }
  FUZZ_CHECK(error == error && !(error != error), "an Error equals itself");

  const Error wrapped = error.as(Condition::stale_session_retry_failed, detail);
  FUZZ_CHECK(wrapped.rv() == rv && wrapped.function() == function, "as() keeps the code");
  FUZZ_CHECK(wrapped.category() == Category::retry, "as() takes the wrapper's category");
  if (rv != CKR_OK) {
    FUZZ_CHECK(contains(wrapped.message(), "(0x" + hex(rv) + ")"), "as() keeps the hex code");
  }
  if (!detail.empty()) FUZZ_CHECK(contains(wrapped.message(), detail), "as() adds the detail");
  const Error named = error.in_operation("fuzz");
  FUZZ_CHECK(named.rv() == rv && named.operation() == (operation.empty() ? "fuzz" : operation),
             "in_operation keeps an operation already set");

  for (Condition condition : {Condition::invalid_argument, Condition::overloaded,
                              Condition::internal_error, Condition::pkcs11_error}) {
    const Error made = Error::make(condition, detail, operation);
    FUZZ_CHECK(made.rv() == CKR_OK && made.rv_name().empty(), "make() has no code");
    FUZZ_CHECK(made.category() == category_of(condition), "make() takes the condition's category");
    FUZZ_CHECK(!made.message().empty(), "a message is never empty");
    if (!detail.empty()) FUZZ_CHECK(contains(made.message(), detail), "make() keeps the detail");
  }
}

}  // namespace
}  // namespace hsmactor

HSMACTOR_FUZZ_ENTRY(input) {
  using namespace hsmactor;
  CK_RV rv = 0;
  const std::size_t width = input.size() < sizeof rv ? input.size() : sizeof rv;
  for (std::size_t i = 0; i < width; ++i) {
    rv |= static_cast<CK_RV>(static_cast<unsigned char>(input[i])) << (8 * i);
  }
  std::string_view rest = input.substr(width);
  std::string parts[3];
  for (std::string& part : parts) {
    const std::size_t bar = rest.find('|');
    part.assign(rest.substr(0, bar));
    rest.remove_prefix(bar == std::string_view::npos ? rest.size() : bar + 1);
  }
  check_name(rv);
  check_category(rv);
  check_error(rv, parts[0], parts[1], parts[2]);
  // The neighbours of the value too: off-by-one mistakes hide at table edges.
  check_name(rv + 1);
  check_name(rv - 1);
}
