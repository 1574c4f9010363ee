// Catch2 support for Result<T>: failed assertions print the error's message,
// and must() turns a Result into its value or stops the test with the error.
//
// Usage:
//   REQUIRE(session.login(CKU_USER, pin));          // prints "error: C_Login returned ..."
//   Bytes signature = must(session.sign(mechanism, key, data));
#pragma once

#include <string>
#include <utility>

#include <catch2/catch.hpp>

#include "pkcs11/error.hpp"

namespace Catch {

template <class T>
struct StringMaker<hsmactor::Result<T>> {
  static std::string convert(const hsmactor::Result<T>& result) {
    return result.ok() ? std::string("ok") : "error: " + result.error().message();
  }
};

}  // namespace Catch

namespace hsmactor::testing {

/// Returns the value of `result`, or fails the test with its error message.
template <class T>
T must(Result<T> result) {
  REQUIRE(result);
  return std::move(result).value();
}

/// Returns the error of `result`, or fails the test because it succeeded.
template <class T>
Error error_of(const Result<T>& result) {
  REQUIRE_FALSE(result.ok());
  return result.error();
}

}  // namespace hsmactor::testing
