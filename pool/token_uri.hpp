// Reads the token-selecting parts of an RFC 7512 pkcs11: URI (parsed by
// p11-kit): token=, serial=, module-path= and pin-value=.
//
// Usage:
//   auto parts = parse_token_uri("pkcs11:token=signer?module-path=/usr/lib/x.so");
//   if (parts) use(parts->label, parts->module_path);
#pragma once

#include <string>
#include <string_view>

#include "pkcs11/error.hpp"
#include "pkcs11/pin.hpp"

namespace hsmactor {

/// What a pkcs11: URI says about the token to open; empty fields were not set.
struct TokenUri {
  std::string label;
  std::string serial;
  std::string module_path;
  Pin pin;
};

/// Returns the parts of `uri`, or invalid_argument naming p11-kit's reason.
/// A pin-value is copied into a Pin, and p11-kit's copy is wiped before it
/// is freed.
Result<TokenUri> parse_token_uri(std::string_view uri);

}  // namespace hsmactor
