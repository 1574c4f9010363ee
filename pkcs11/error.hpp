// The one error type of hsmactor, and Result<T>.
//
// An Error says what happened (a Condition, and for PKCS#11 failures the full
// CK_RV with its CKR_* name and the C_* function that returned it), during which
// operation, and what the caller should do about it (a Category).
//
// Usage:
//   Result<Bytes> signature = session.sign(mechanism, key, data);
//   if (!signature) {
//     log(signature.error().message());
//     // "C_SignInit returned CKR_KEY_TYPE_INCONSISTENT (0x63) in sign"
//     if (signature.error().category() == Category::retry) ...
//   }
#pragma once

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <variant>

#include "pkcs11/cryptoki.hpp"

namespace hsmactor {

/// What went wrong, independent of PKCS#11 codes.
enum class Condition : std::uint8_t {
  /// A PKCS#11 function returned an error; rv() and function() say which.
  pkcs11_error = 1,
  /// The module file is missing, not a shared library, or has no C_GetFunctionList.
  module_load_failed,
  /// No token matches the label, serial or URI asked for.
  token_not_found,
  /// No object matches the key label or id asked for.
  object_not_found,
  /// The request is malformed before reaching PKCS#11 (empty data, bad URI, ...).
  invalid_argument,
  /// The pool's queue is full; try again later.
  overloaded,
  /// The request's deadline passed before it was served.
  deadline_exceeded,
  /// The token, pool or library is shutting down (or was shut down).
  shutting_down,
  /// The session was stale, it was replaced, and the one retry failed too.
  stale_session_retry_failed,
  /// A multi-part stream lost its session; it cannot be replayed.
  stream_interrupted,
  /// The promise behind a future was dropped without an answer (an actor died).
  broken_promise,
  /// The process forked; handles from the parent are not usable here.
  forked,
  /// A local wait (Future::get with a timeout) ended before the answer came;
  /// the request itself goes on and the future may be waited on again.
  wait_timeout,
  /// A bug or an unexpected state inside hsmactor.
  internal_error,
  /// The caller withdrew the request before a session started it; it never
  /// reached the module.
  withdrawn,
};

/// Returns "pkcs11_error", "overloaded", ...
const char* to_string(Condition condition);

/// What the caller should do about an error.
///
/// retry: send the same request again (later, or now on a new session).
/// reauthenticate: log in again (perhaps with the right PIN), then retry.
/// fix_input: the request is wrong; sending it again gives the same error.
/// give_up: something is broken that the program cannot repair.
enum class Category : std::uint8_t { retry, reauthenticate, fix_input, give_up };

/// Returns "retry", "reauthenticate", "fix_input" or "give_up".
const char* to_string(Category category);

/// An error value: never thrown, always returned.
class Error {
 public:
  /// Returns an error for a PKCS#11 function `function` ("C_Sign") returning `rv`.
  static Error from_rv(CK_RV rv, std::string function, std::string operation = {});

  /// Returns an error for a library condition; `detail` must not contain secrets.
  static Error make(Condition condition, std::string detail, std::string operation = {});

  Error() = default;

  /// Returns the condition (pkcs11_error for PKCS#11 failures).
  Condition condition() const { return condition_; }
  /// Returns the CK_RV, or CKR_OK when the error did not come from PKCS#11.
  /// Conditions wrapping a PKCS#11 failure (stale_session_retry_failed,
  /// stream_interrupted) keep the code of the last failure.
  CK_RV rv() const { return rv_; }
  /// Returns the CKR_* name of rv(), or "" when rv() is CKR_OK.
  std::string rv_name() const;
  /// Returns the C_* function that failed, or "".
  const std::string& function() const { return function_; }
  /// Returns the operation the caller asked for ("sign", "open_token"), or "".
  const std::string& operation() const { return operation_; }
  /// Returns extra words about the failure, or "".
  const std::string& detail() const { return detail_; }
  /// Returns what the caller should do.
  Category category() const { return category_; }

  /// Returns a one-line human description (never contains a PIN or payload).
  std::string message() const;

  /// Returns a copy naming `operation` (keeps an operation already set).
  Error in_operation(std::string operation) const;
  /// Returns a copy with `condition`, keeping the code and function.
  Error as(Condition condition, std::string detail = {}) const;

  bool operator==(const Error& other) const;
  bool operator!=(const Error& other) const { return !(*this == other); }

 private:
  Condition condition_ = Condition::internal_error;
  CK_RV rv_ = CKR_OK;
  std::string function_;
  std::string operation_;
  std::string detail_;
  Category category_ = Category::give_up;
};

std::ostream& operator<<(std::ostream& out, const Error& error);

/// Returns the category hsmactor uses for a condition (PKCS#11 codes map by
/// pkcs11::categorize_rv instead).
Category category_of(Condition condition);

/// A value or an Error. Accessing the wrong alternative is a programming error
/// and aborts.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit on purpose
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { check_ok(); return std::get<0>(state_); }
  const T& value() const& { check_ok(); return std::get<0>(state_); }
  T&& value() && { check_ok(); return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const {
    if (ok()) std::abort();  // asked for the error of a success
    return std::get<1>(state_);
  }

  T value_or(T fallback) const& { return ok() ? std::get<0>(state_) : std::move(fallback); }

  /// Moves the value out (it must be there) and leaves an internal_error in
  /// its place, so the Result keeps no copy: `Token token = opened.take();`.
  T take() {
    check_ok();
    T taken = std::move(std::get<0>(state_));
    state_.template emplace<1>(Error::make(Condition::internal_error, "the value was taken"));
    return taken;
  }

 private:
  void check_ok() const {
    if (!ok()) std::abort();  // asked for the value of a failure
  }
  std::variant<T, Error> state_;
};

/// Success or an Error.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT: implicit on purpose

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  void value() const {
    if (!ok()) std::abort();
  }
  const Error& error() const {
    if (ok()) std::abort();
    return *error_;
  }

 private:
  std::optional<Error> error_;
};

/// Returns a successful Result<void>.
inline Result<void> success() { return Result<void>{}; }

}  // namespace hsmactor
