// A PIN that wipes itself and cannot be printed.
//
// Usage:
//   Pin pin("1234");
//   session.login(CKU_USER, pin);
//   std::cout << pin;          // does not compile
//   pin.redacted();            // "<redacted>"
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

namespace hsmactor {

/// Secret bytes for C_Login and C_InitToken. Copies are independent and each
/// wipes its own memory when destroyed; nothing ever formats the bytes.
class Pin {
 public:
  Pin() = default;
  explicit Pin(std::string_view text);
  Pin(const Pin& other);
  Pin& operator=(const Pin& other);
  Pin(Pin&& other) noexcept;
  Pin& operator=(Pin&& other) noexcept;
  ~Pin();

  /// Returns a PIN read from environment variable `name`, or an empty PIN.
  static Pin from_env(const char* name);

  bool empty() const { return size_ == 0; }
  std::size_t size() const { return size_; }
  /// Returns the secret bytes; for handing to PKCS#11 only.
  const std::uint8_t* data() const { return bytes_.get(); }

  /// Returns "<redacted>": the only way a Pin turns into text.
  std::string redacted() const { return "<redacted>"; }

  /// Compares in time independent of where the PINs differ.
  bool equals(const Pin& other) const;

  friend std::ostream& operator<<(std::ostream&, const Pin&) = delete;

 private:
  void assign(const std::uint8_t* bytes, std::size_t size);
  void wipe();

  std::unique_ptr<std::uint8_t[]> bytes_;
  std::size_t size_ = 0;
};

}  // namespace hsmactor
