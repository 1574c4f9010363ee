#include "asio/hsmactor_error_code.hpp"

#include <limits>

#include "pkcs11/rv.hpp"

namespace hsmactor::asio_support {
namespace {

// error_condition values 0 mean "no error" by convention, and Category::retry
// is 0: the condition values are the Category plus one.
int condition_value(Category category) { return static_cast<int>(category) + 1; }

Category category_of_rv(CK_RV rv) {
  switch (pkcs11::categorize_rv(rv)) {
    case pkcs11::RvCategory::retry:
      return Category::retry;
    case pkcs11::RvCategory::reauthenticate:
      return Category::reauthenticate;
    case pkcs11::RvCategory::fix_input:
      return Category::fix_input;
    case pkcs11::RvCategory::ok:  // not an error; never made by make_error_code
    case pkcs11::RvCategory::give_up:
      break;
  }
  return Category::give_up;
}

class Pkcs11Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "pkcs11"; }
  std::string message(int value) const override {
    return pkcs11::rv_name(static_cast<CK_RV>(static_cast<std::uint32_t>(value)));
  }
  std::error_condition default_error_condition(int value) const noexcept override {
    CK_RV rv = static_cast<CK_RV>(static_cast<std::uint32_t>(value));
    return {condition_value(category_of_rv(rv)), category_category()};
  }
};

class ConditionCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "hsmactor"; }
  std::string message(int value) const override {
    return to_string(static_cast<Condition>(value));
  }
  std::error_condition default_error_condition(int value) const noexcept override {
    return {condition_value(category_of(static_cast<Condition>(value))), category_category()};
  }
};

class CategoryCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "hsmactor.category"; }
  std::string message(int value) const override {
    if (value < 1 || value > condition_value(Category::give_up)) return "unknown";
    return to_string(static_cast<Category>(value - 1));
  }
};

}  // namespace

const std::error_category& pkcs11_category() noexcept {
  static const Pkcs11Category instance;
  return instance;
}

const std::error_category& condition_category() noexcept {
  static const ConditionCategory instance;
  return instance;
}

const std::error_category& category_category() noexcept {
  static const CategoryCategory instance;
  return instance;
}

std::error_code make_error_code(const Error& error) noexcept {
  if (error.condition() == Condition::pkcs11_error && error.rv() != CKR_OK &&
      error.rv() <= std::numeric_limits<std::uint32_t>::max()) {
    // Kept as the 32-bit pattern: vendor codes (0x80000000 and up) come back
    // intact through message() and default_error_condition().
    return {static_cast<int>(static_cast<std::uint32_t>(error.rv())), pkcs11_category()};
  }
  return hsmactor::make_error_code(error.condition());
}

}  // namespace hsmactor::asio_support

namespace hsmactor {

std::error_code make_error_code(Condition condition) noexcept {
  return {static_cast<int>(condition), asio_support::condition_category()};
}

std::error_condition make_error_condition(Category category) noexcept {
  return {static_cast<int>(category) + 1, asio_support::category_category()};
}

}  // namespace hsmactor
