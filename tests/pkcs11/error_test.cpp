#include "pkcs11/error.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <iterator>
#include <memory>
#include <set>
#include <sstream>
#include <string>

#include <catch2/catch.hpp>

#include "pkcs11/rv.hpp"

namespace hsmactor {
namespace {

using Catch::Matchers::Contains;

TEST_CASE("a PKCS#11 failure names the function, the CKR_* name, the code and the operation") {
  Error error = Error::from_rv(CKR_KEY_TYPE_INCONSISTENT, "C_SignInit", "sign");

  CHECK(error.condition() == Condition::pkcs11_error);
  CHECK(error.rv() == CKR_KEY_TYPE_INCONSISTENT);
  CHECK(error.rv_name() == "CKR_KEY_TYPE_INCONSISTENT");
  CHECK(error.function() == "C_SignInit");
  CHECK(error.operation() == "sign");
  CHECK(error.category() == Category::fix_input);
  CHECK(error.message() == "C_SignInit returned CKR_KEY_TYPE_INCONSISTENT (0x63) in sign");
}

TEST_CASE("a CK_RV above 255 is kept whole, not cut to 8 bits") {
  Error error = Error::from_rv(CKR_USER_NOT_LOGGED_IN, "C_Sign", "sign");
  CHECK(error.rv() == 0x101);
  CHECK(error.rv_name() == "CKR_USER_NOT_LOGGED_IN");
  CHECK_THAT(error.message(), Contains("(0x101)"));
}

TEST_CASE("a vendor code keeps its value and is named as vendor-defined") {
  Error error = Error::from_rv(CKR_VENDOR_DEFINED + 0x17, "C_Sign", "sign");
  CHECK(error.rv() == CKR_VENDOR_DEFINED + 0x17);
  CHECK_THAT(error.message(), Contains("CKR_VENDOR_DEFINED+0x17"));
  CHECK_THAT(error.message(), Contains("(0x80000017)"));
  CHECK(error.category() == Category::give_up);
}

TEST_CASE("the category of a PKCS#11 error is the category of its code") {
  CHECK(Error::from_rv(CKR_SESSION_HANDLE_INVALID, "C_Sign").category() == Category::retry);
  CHECK(Error::from_rv(CKR_PIN_INCORRECT, "C_Login").category() == Category::reauthenticate);
  CHECK(Error::from_rv(CKR_DATA_LEN_RANGE, "C_Sign").category() == Category::fix_input);
  CHECK(Error::from_rv(CKR_DEVICE_ERROR, "C_Sign").category() == Category::give_up);
  CHECK(Error::from_rv(CKR_PIN_LOCKED, "C_Login").category() == Category::give_up);
}

TEST_CASE("an error without an operation leaves the operation out of its message") {
  CHECK(Error::from_rv(CKR_DEVICE_ERROR, "C_Sign").message() ==
        "C_Sign returned CKR_DEVICE_ERROR (0x30)");
}

TEST_CASE("a library condition carries its detail, no code, and its own category") {
  Error error = Error::make(Condition::overloaded, "queue full (64 waiting)", "sign");

  CHECK(error.condition() == Condition::overloaded);
  CHECK(error.rv() == CKR_OK);
  CHECK(error.rv_name().empty());
  CHECK(error.function().empty());
  CHECK(error.detail() == "queue full (64 waiting)");
  CHECK(error.category() == Category::retry);
  CHECK(error.message() == "overloaded in sign: queue full (64 waiting)");
}

TEST_CASE("each condition has a distinct name and the category its documentation gives") {
  struct Expected {
    Condition condition;
    const char* name;
    Category category;
  };
  const Expected expected[] = {
      {Condition::pkcs11_error, "pkcs11_error", Category::give_up},
      {Condition::module_load_failed, "module_load_failed", Category::give_up},
      {Condition::token_not_found, "token_not_found", Category::fix_input},
      {Condition::object_not_found, "object_not_found", Category::fix_input},
      {Condition::invalid_argument, "invalid_argument", Category::fix_input},
      {Condition::overloaded, "overloaded", Category::retry},
      {Condition::deadline_exceeded, "deadline_exceeded", Category::retry},
      {Condition::shutting_down, "shutting_down", Category::give_up},
      {Condition::stale_session_retry_failed, "stale_session_retry_failed", Category::retry},
      {Condition::stream_interrupted, "stream_interrupted", Category::retry},
      {Condition::broken_promise, "broken_promise", Category::retry},
      {Condition::forked, "forked", Category::give_up},
      {Condition::internal_error, "internal_error", Category::give_up},
  };
  std::set<std::string> names;
  for (const auto& item : expected) {
    INFO(item.name);
    CHECK(std::string(to_string(item.condition)) == item.name);
    CHECK(category_of(item.condition) == item.category);
    CHECK(Error::make(item.condition, "").category() == item.category);
    names.insert(to_string(item.condition));
  }
  CHECK(names.size() == std::size(expected));
}

TEST_CASE("categories print as their names") {
  CHECK(std::string(to_string(Category::retry)) == "retry");
  CHECK(std::string(to_string(Category::reauthenticate)) == "reauthenticate");
  CHECK(std::string(to_string(Category::fix_input)) == "fix_input");
  CHECK(std::string(to_string(Category::give_up)) == "give_up");
}

TEST_CASE("in_operation names the operation once and keeps one already named") {
  Error bare = Error::from_rv(CKR_DEVICE_ERROR, "C_GetSlotList");
  Error named = bare.in_operation("find_token");
  CHECK(named.operation() == "find_token");
  CHECK(named.in_operation("open_token").operation() == "find_token");
  CHECK(bare.operation().empty());  // a copy was changed, not the original
}

TEST_CASE("as() rewraps a PKCS#11 failure as a condition, keeping the code and function") {
  Error stale = Error::from_rv(CKR_SESSION_HANDLE_INVALID, "C_Sign", "sign");
  Error wrapped = stale.as(Condition::stale_session_retry_failed, "retried once on a new session");

  CHECK(wrapped.condition() == Condition::stale_session_retry_failed);
  CHECK(wrapped.rv() == CKR_SESSION_HANDLE_INVALID);
  CHECK(wrapped.function() == "C_Sign");
  CHECK(wrapped.operation() == "sign");
  CHECK(wrapped.category() == Category::retry);
  CHECK(wrapped.message() ==
        "stale_session_retry_failed: C_Sign returned CKR_SESSION_HANDLE_INVALID (0xb3) in sign: "
        "retried once on a new session");
}

TEST_CASE("a stream cut short keeps the code that cut it, and says to start over") {
  Error cut = Error::from_rv(CKR_DEVICE_REMOVED, "C_SignUpdate", "sign_update")
                  .as(Condition::stream_interrupted);
  CHECK(cut.rv() == CKR_DEVICE_REMOVED);
  CHECK(cut.detail().empty());
  CHECK(cut.category() == Category::retry);
  CHECK_THAT(cut.message(), Contains("stream_interrupted") && Contains("CKR_DEVICE_REMOVED"));
}

TEST_CASE("errors are equal only when every field is") {
  Error error = Error::from_rv(CKR_PIN_INCORRECT, "C_Login", "login");
  CHECK(error == Error::from_rv(CKR_PIN_INCORRECT, "C_Login", "login"));
  CHECK(error != Error::from_rv(CKR_PIN_INCORRECT, "C_Login", "open_token"));
  CHECK(error != Error::from_rv(CKR_PIN_INCORRECT, "C_InitToken", "login"));
  CHECK(error != Error::from_rv(CKR_PIN_EXPIRED, "C_Login", "login"));
  CHECK(error != error.as(Condition::stale_session_retry_failed));
  CHECK(Error::make(Condition::overloaded, "a") != Error::make(Condition::overloaded, "b"));
}

TEST_CASE("an error streams as its message") {
  Error error = Error::make(Condition::token_not_found, "no token with label=\"x\"", "find_token");
  std::ostringstream out;
  out << error;
  CHECK(out.str() == error.message());
}

TEST_CASE("a Result holds a value, and offers it by reference, pointer and fallback") {
  Result<std::string> result = std::string("signature");
  REQUIRE(result.ok());
  CHECK(static_cast<bool>(result));
  CHECK(*result == "signature");
  CHECK(result->size() == 9);
  CHECK(result.value_or("fallback") == "signature");
  result.value() += "!";
  CHECK(*result == "signature!");
}

TEST_CASE("a failed Result holds its error and gives the fallback") {
  Result<int> result = Error::from_rv(CKR_DEVICE_ERROR, "C_Sign", "sign");
  CHECK_FALSE(result.ok());
  CHECK_FALSE(static_cast<bool>(result));
  CHECK(result.error().rv() == CKR_DEVICE_ERROR);
  CHECK(result.value_or(7) == 7);
}

TEST_CASE("a Result<bool> is ok even when the value it holds is false") {
  Result<bool> verified = false;
  CHECK(verified.ok());
  CHECK_FALSE(*verified);
}

TEST_CASE("a move-only value moves out of a Result") {
  Result<std::unique_ptr<int>> result = std::make_unique<int>(42);
  std::unique_ptr<int> taken = std::move(result).value();
  REQUIRE(taken);
  CHECK(*taken == 42);
}

TEST_CASE("Result<void> is a success or an error") {
  Result<void> done = success();
  CHECK(done.ok());
  done.value();  // does not abort

  Result<void> failed = Error::make(Condition::shutting_down, "pool stopped");
  CHECK_FALSE(failed.ok());
  CHECK(failed.error().condition() == Condition::shutting_down);
}

/// Returns true when `action` run in a child process dies of SIGABRT.
template <class Action>
bool aborts(Action action) {
  pid_t child = ::fork();
  if (child == 0) {
    // Catch2's own SIGABRT handler would report the abort as a failed test
    // of the child; the default action lets the parent see the signal.
    std::signal(SIGABRT, SIG_DFL);
    action();
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

TEST_CASE("asking a Result for the alternative it does not hold aborts instead of lying") {
  Result<int> failed = Error::make(Condition::internal_error, "x");
  Result<int> succeeded = 1;
  Result<void> void_failed = Error::make(Condition::internal_error, "x");
  Result<void> void_succeeded = success();

  CHECK(aborts([&] { (void)failed.value(); }));
  CHECK(aborts([&] { (void)*failed; }));
  CHECK(aborts([&] { (void)succeeded.error(); }));
  CHECK(aborts([&] { void_failed.value(); }));
  CHECK(aborts([&] { (void)void_succeeded.error(); }));
  CHECK_FALSE(aborts([&] { (void)succeeded.value(); }));
}

}  // namespace
}  // namespace hsmactor
