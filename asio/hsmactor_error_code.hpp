// hsmactor errors as std::error_code, for Asio completion handlers.
//
// Asio users test the first handler argument against error codes, so every
// hsmactor::Error maps to a std::error_code in one of two categories:
//   "pkcs11":   a PKCS#11 failure (Condition::pkcs11_error); the value is the
//               CK_RV itself, so `ec.value() == CKR_PIN_INCORRECT` works.
//   "hsmactor": any other condition (overloaded, deadline_exceeded,
//               shutting_down, broken_promise, ...); the value is the
//               hsmactor::Condition, so `ec == Condition::overloaded` works.
// Both map to an error_condition in the "hsmactor.category" category that says
// what the caller should do, so `ec == hsmactor::Category::retry` works for
// either (the rule is pkcs11::categorize_rv's and category_of's, unchanged).
//
// An error_code holds no text beyond its category's name for the value; the
// full Error (function, operation, detail) reaches the caller through the
// `Error& diagnostics` overloads of the async_* functions.
//
// Usage:
//   std::error_code ec = make_error_code(result.error());
//   if (ec == hsmactor::Condition::overloaded) back_off();
//   if (ec == hsmactor::Category::reauthenticate) log_in_again();
#pragma once

#include <cstdint>
#include <string>
#include <system_error>

#include "pkcs11/error.hpp"

namespace hsmactor::asio_support {

/// Returns the category of PKCS#11 return values (name "pkcs11").
const std::error_category& pkcs11_category() noexcept;

/// Returns the category of hsmactor conditions (name "hsmactor").
const std::error_category& condition_category() noexcept;

/// Returns the category of what-to-do conditions (name "hsmactor.category").
const std::error_category& category_category() noexcept;

/// Returns the error code of `error`: the "pkcs11" category with the CK_RV for
/// a PKCS#11 failure, else the "hsmactor" category with the condition. A CK_RV
/// that does not fit the error code's int (a vendor code above 32 bits) is
/// never truncated: it maps to Condition::pkcs11_error instead.
std::error_code make_error_code(const Error& error) noexcept;

}  // namespace hsmactor::asio_support

namespace hsmactor {

/// Returns the "hsmactor" error code of `condition` (for `ec == condition`).
std::error_code make_error_code(Condition condition) noexcept;

/// Returns the "hsmactor.category" condition of `category` (for `ec == category`).
std::error_condition make_error_condition(Category category) noexcept;

}  // namespace hsmactor

namespace std {
template <>
struct is_error_code_enum<hsmactor::Condition> : true_type {};
template <>
struct is_error_condition_enum<hsmactor::Category> : true_type {};
}  // namespace std
