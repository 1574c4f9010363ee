#include "pkcs11/pin.hpp"

#include <cstdlib>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "pkcs11/error.hpp"
#include "pkcs11/module.hpp"
#include "tests/pkcs11/catch_result.hpp"
#include "tests/support/softhsm_token.hpp"

namespace hsmactor {
namespace {

template <class T, class = void>
struct IsStreamable : std::false_type {};
template <class T>
struct IsStreamable<
    T, std::void_t<decltype(std::declval<std::ostream&>() << std::declval<const T&>())>>
    : std::true_type {};

// The trait itself works: an Error streams.
static_assert(IsStreamable<Error>::value);
// A Pin cannot be written to a stream, nor become text by conversion.
static_assert(!IsStreamable<Pin>::value, "a Pin must not be printable");
static_assert(!std::is_convertible_v<Pin, std::string>);
static_assert(!std::is_convertible_v<Pin, std::string_view>);
static_assert(!std::is_convertible_v<Pin, const char*>);
// A PIN is never made from text by accident.
static_assert(!std::is_convertible_v<const char*, Pin>);

TEST_CASE("a Pin renders only as <redacted>") {
  Pin pin("9999-secret-77");
  CHECK(pin.redacted() == "<redacted>");
  CHECK(Pin().redacted() == "<redacted>");
}

TEST_CASE("a Pin holds exactly the bytes it was given") {
  Pin pin("1234");
  REQUIRE(pin.size() == 4);
  CHECK(std::string(reinterpret_cast<const char*>(pin.data()), pin.size()) == "1234");
  CHECK_FALSE(pin.empty());
  CHECK(Pin().empty());
  CHECK(Pin("").empty());
}

TEST_CASE("copies of a Pin are independent and equal") {
  Pin original("1234");
  Pin copy = original;
  CHECK(copy.equals(original));
  CHECK(copy.data() != original.data());

  Pin assigned("other");
  assigned = original;
  CHECK(assigned.equals(original));
  original = Pin("5678");
  CHECK(assigned.equals(Pin("1234")));
}

TEST_CASE("a moved-from Pin is empty and the new owner has the secret") {
  Pin source("1234");
  Pin target = std::move(source);
  CHECK(source.empty());  // NOLINT: checking the moved-from state on purpose
  CHECK(target.equals(Pin("1234")));

  Pin assigned;
  assigned = std::move(target);
  CHECK(target.empty());  // NOLINT
  CHECK(assigned.equals(Pin("1234")));
}

TEST_CASE("equals tells PINs apart by length and by content") {
  CHECK(Pin("1234").equals(Pin("1234")));
  CHECK_FALSE(Pin("1234").equals(Pin("12345")));
  CHECK_FALSE(Pin("1234").equals(Pin("1235")));
  CHECK_FALSE(Pin("1234").equals(Pin()));
  CHECK(Pin().equals(Pin("")));
}

TEST_CASE("from_env reads a PIN from the environment, and is empty when it is unset") {
  ::setenv("HSMACTOR_TEST_PIN", "env-secret-31", 1);
  CHECK(Pin::from_env("HSMACTOR_TEST_PIN").equals(Pin("env-secret-31")));
  ::unsetenv("HSMACTOR_TEST_PIN");
  CHECK(Pin::from_env("HSMACTOR_TEST_PIN").empty());
}

// Collects every error text an Error can produce: message, detail, stream.
void collect(std::vector<std::string>& texts, const Error& error) {
  texts.push_back(error.message());
  texts.push_back(error.detail());
  std::ostringstream streamed;
  streamed << error;
  texts.push_back(streamed.str());
}

TEST_CASE("no PIN appears in the text of any error that a wrong or refused PIN produces") {
  const std::vector<std::string> secrets = {"9999-secret-77", "so-secret-4242", "new-secret-5150",
                                            "long-secret-8080"};
  testing::TestToken token = testing::create_test_token("pin-secrets");
  auto module = testing::must(pkcs11::Module::load(token.module_path));
  REQUIRE(module->initialize());
  CK_SLOT_ID slot = testing::must(module->find_token(pkcs11::TokenSelector::by_label(token.label)));
  std::vector<std::string> texts;

  {
    pkcs11::Session session = testing::must(module->open_session(slot));
    auto wrong_user = session.login(CKU_USER, Pin(secrets[0]));
    REQUIRE_FALSE(wrong_user);
    CHECK(wrong_user.error().rv() == CKR_PIN_INCORRECT);
    collect(texts, wrong_user.error());

    auto wrong_so = session.login(CKU_SO, Pin(secrets[1]));
    REQUIRE_FALSE(wrong_so);
    CHECK(wrong_so.error().rv() == CKR_PIN_INCORRECT);
    collect(texts, wrong_so.error());

    auto init_pin_without_so = session.init_pin(Pin(secrets[2]));
    REQUIRE_FALSE(init_pin_without_so);
    collect(texts, init_pin_without_so.error());

    auto long_pin = session.login(CKU_USER, Pin(std::string(300, 'x') + secrets[3]));
    REQUIRE_FALSE(long_pin);
    collect(texts, long_pin.error());
  }

  // With no session open, C_InitToken reaches the SO PIN check (and, the PIN
  // being wrong, erases nothing).
  auto reinit = module->init_token(slot, Pin(secrets[1]), token.label);
  REQUIRE_FALSE(reinit);
  CHECK(reinit.error().rv() == CKR_PIN_INCORRECT);
  collect(texts, reinit.error());
  REQUIRE(module->finalize());

  for (const auto& text : texts) {
    for (const auto& secret : secrets) {
      INFO("error text: " << text);
      CHECK(text.find(secret) == std::string::npos);
    }
  }
  CHECK_THAT(texts.front(), Catch::Matchers::Contains("C_Login") &&
                                Catch::Matchers::Contains("CKR_PIN_INCORRECT"));
}

}  // namespace
}  // namespace hsmactor
