// Standard base64 (RFC 4648, section 4): how hsmactor-sign's records carry
// data and digests, and how its answers carry signatures.
//
// Usage:
//   std::string text = to_base64(bytes_of("foob"));   // "Zm9vYg=="
//   std::optional<Bytes> bytes = from_base64("Zm9vYg");  // padding optional
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "pkcs11/bytes.hpp"

namespace hsmactor::sign {

/// Returns standard base64 (with padding).
std::string to_base64(ByteView bytes);

/// Returns the bytes of standard base64 (padding optional), or nothing.
std::optional<Bytes> from_base64(std::string_view text);

}  // namespace hsmactor::sign
