#include "pkcs11/error.hpp"

#include <cstdio>

#include "pkcs11/rv.hpp"

namespace hsmactor {

const char* to_string(Condition condition) {
  switch (condition) {
    case Condition::pkcs11_error: return "pkcs11_error";
    case Condition::module_load_failed: return "module_load_failed";
    case Condition::token_not_found: return "token_not_found";
    case Condition::object_not_found: return "object_not_found";
    case Condition::invalid_argument: return "invalid_argument";
    case Condition::overloaded: return "overloaded";
    case Condition::deadline_exceeded: return "deadline_exceeded";
    case Condition::shutting_down: return "shutting_down";
    case Condition::stale_session_retry_failed: return "stale_session_retry_failed";
    case Condition::stream_interrupted: return "stream_interrupted";
    case Condition::broken_promise: return "broken_promise";
    case Condition::forked: return "forked";
    case Condition::wait_timeout: return "wait_timeout";
    case Condition::internal_error: return "internal_error";
    case Condition::withdrawn: return "withdrawn";
  }
  return "internal_error";
}

const char* to_string(Category category) {
  switch (category) {
    case Category::retry: return "retry";
    case Category::reauthenticate: return "reauthenticate";
    case Category::fix_input: return "fix_input";
    case Category::give_up: return "give_up";
  }
  return "give_up";
}

Category category_of(Condition condition) {
  switch (condition) {
    case Condition::overloaded:
    case Condition::deadline_exceeded:
    case Condition::stale_session_retry_failed:
    case Condition::stream_interrupted:
    case Condition::broken_promise:
    case Condition::wait_timeout:
    case Condition::withdrawn:
      return Category::retry;
    case Condition::token_not_found:
    case Condition::object_not_found:
    case Condition::invalid_argument:
      return Category::fix_input;
    case Condition::pkcs11_error:  // only reached without a code; see from_rv
    case Condition::module_load_failed:
    case Condition::shutting_down:
    case Condition::forked:
    case Condition::internal_error:
      return Category::give_up;
  }
  return Category::give_up;
}

namespace {

Category category_of_rv(CK_RV rv) {
  switch (pkcs11::categorize_rv(rv)) {
    case pkcs11::RvCategory::ok:
    case pkcs11::RvCategory::give_up:
      return Category::give_up;
    case pkcs11::RvCategory::retry:
      return Category::retry;
    case pkcs11::RvCategory::reauthenticate:
      return Category::reauthenticate;
    case pkcs11::RvCategory::fix_input:
      return Category::fix_input;
  }
  return Category::give_up;
}

}  // namespace

Error Error::from_rv(CK_RV rv, std::string function, std::string operation) {
  Error error;
  error.condition_ = Condition::pkcs11_error;
  error.rv_ = rv;
  error.function_ = std::move(function);
  error.operation_ = std::move(operation);
  error.category_ = category_of_rv(rv);
  return error;
}

Error Error::make(Condition condition, std::string detail, std::string operation) {
  Error error;
  error.condition_ = condition;
  error.detail_ = std::move(detail);
  error.operation_ = std::move(operation);
  error.category_ = category_of(condition);
  return error;
}

std::string Error::rv_name() const {
  return rv_ == CKR_OK ? std::string() : pkcs11::rv_name(rv_);
}

std::string Error::message() const {
  // An error from from_rv names its code even when that code is CKR_OK (a
  // function that "succeeded" without its result); a pkcs11_error without any
  // code or function still says what it is, so no message is ever empty.
  const bool has_code = rv_ != CKR_OK || !function_.empty();
  std::string text;
  if (condition_ != Condition::pkcs11_error || !has_code) text = to_string(condition_);
  if (has_code) {
    char code[32];
    std::snprintf(code, sizeof code, " (0x%lx)", static_cast<unsigned long>(rv_));
    if (!text.empty()) text += ": ";
    if (!function_.empty()) text += function_ + " returned ";
    text += pkcs11::rv_name(rv_) + code;
  }
  if (!operation_.empty()) text += " in " + operation_;
  if (!detail_.empty()) text += ": " + detail_;
  return text;
}

Error Error::in_operation(std::string operation) const {
  Error copy = *this;
  if (copy.operation_.empty()) copy.operation_ = std::move(operation);
  return copy;
}

Error Error::as(Condition condition, std::string detail) const {
  Error copy = *this;
  copy.condition_ = condition;
  if (!detail.empty()) copy.detail_ = std::move(detail);
  // A condition that wraps a PKCS#11 code keeps the code's advice only when the
  // wrapper has none of its own.
  if (condition != Condition::pkcs11_error) copy.category_ = category_of(condition);
  return copy;
}

bool Error::operator==(const Error& other) const {
  return condition_ == other.condition_ && rv_ == other.rv_ &&
         function_ == other.function_ && operation_ == other.operation_ &&
         detail_ == other.detail_ && category_ == other.category_;
}

std::ostream& operator<<(std::ostream& out, const Error& error) {
  return out << error.message();
}

}  // namespace hsmactor
