// Turns the TokenOptions a user gave into the ones open_token uses: the URI's
// parts merged in, and every bound checked (not public API).
#pragma once

#include "pkcs11/error.hpp"
#include "pool/token_options.hpp"

namespace hsmactor::internal {

/// Returns `requested` with its URI (token=, serial=, module-path=,
/// pin-value=) merged in and `uri` cleared, or invalid_argument naming the
/// option that is out of range. The copy of the URI made here is wiped.
Result<TokenOptions> resolve_options(const TokenOptions& requested);

}  // namespace hsmactor::internal
