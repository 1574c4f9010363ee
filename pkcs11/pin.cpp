#include "pkcs11/pin.hpp"

#include <cstdlib>
#include <cstring>

namespace hsmactor {

Pin::Pin(std::string_view text) {
  assign(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
}

Pin::Pin(const Pin& other) { assign(other.bytes_.get(), other.size_); }

Pin& Pin::operator=(const Pin& other) {
  if (this != &other) {
    wipe();
    assign(other.bytes_.get(), other.size_);
  }
  return *this;
}

Pin::Pin(Pin&& other) noexcept : bytes_(std::move(other.bytes_)), size_(other.size_) {
  other.size_ = 0;
}

Pin& Pin::operator=(Pin&& other) noexcept {
  if (this != &other) {
    wipe();
    bytes_ = std::move(other.bytes_);
    size_ = other.size_;
    other.size_ = 0;
  }
  return *this;
}

Pin::~Pin() { wipe(); }

Pin Pin::from_env(const char* name) {
  const char* value = std::getenv(name);
  return value ? Pin(value) : Pin();
}

bool Pin::equals(const Pin& other) const {
  if (size_ != other.size_) return false;
  std::uint8_t difference = 0;
  for (std::size_t i = 0; i < size_; ++i) difference |= bytes_[i] ^ other.bytes_[i];
  return difference == 0;
}

void Pin::assign(const std::uint8_t* bytes, std::size_t size) {
  size_ = size;
  if (size == 0) return;
  bytes_.reset(new std::uint8_t[size]);
  std::memcpy(bytes_.get(), bytes, size);
}

void Pin::wipe() {
  // explicit_bzero is not optimised away, unlike a memset before free.
  if (bytes_) explicit_bzero(bytes_.get(), size_);
  bytes_.reset();
  size_ = 0;
}

}  // namespace hsmactor
