// Byte strings: the payload type of every operation.
//
// Usage:
//   Bytes data = bytes_of("hello");
//   std::string printable = to_hex(data);        // "68656c6c6f"
//   Result<Bytes> parsed = from_hex("68656c6c6f");
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hsmactor {

/// An owned byte string.
using Bytes = std::vector<std::uint8_t>;

/// A non-owning view of bytes; implicitly made from Bytes and string_view.
struct ByteView {
  ByteView() = default;
  ByteView(const std::uint8_t* bytes, std::size_t length) : data(bytes), size(length) {}
  ByteView(const Bytes& bytes) : data(bytes.data()), size(bytes.size()) {}  // NOLINT
  ByteView(std::string_view text)  // NOLINT
      : data(reinterpret_cast<const std::uint8_t*>(text.data())), size(text.size()) {}

  const std::uint8_t* data = nullptr;
  std::size_t size = 0;

  Bytes to_bytes() const { return Bytes(data, data + size); }
};

/// Returns the bytes of `text`.
inline Bytes bytes_of(std::string_view text) { return Bytes(text.begin(), text.end()); }

/// Returns lower-case hex.
std::string to_hex(ByteView bytes);

/// Returns the bytes of a hex string (either case), or nothing if it is not hex.
std::optional<Bytes> from_hex(std::string_view hex);

}  // namespace hsmactor
