// Names and categories of PKCS#11 return values.
//
// Usage:
//   if (rv != CKR_OK) log(rv_name(rv));                  // "CKR_PIN_INCORRECT"
//   if (categorize_rv(rv) == RvCategory::retry) retry();
//   if (is_stale_session_rv(rv)) replace_session();
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "pkcs11/cryptoki.hpp"

namespace hsmactor::pkcs11 {

/// Returns the CKR_* name of `rv`, "CKR_VENDOR_DEFINED+0x.." for vendor codes
/// and "CKR_UNKNOWN_0x.." for anything else.
std::string rv_name(CK_RV rv);

/// Returns the code named `name` ("CKR_DEVICE_REMOVED"), if the header has it.
std::optional<CK_RV> rv_from_name(std::string_view name);

/// What a caller should do about a return value.
///
/// The rule, in sentences:
/// - retry: the same request may succeed on a fresh session or a little later
///   (the session, module or token went away, or the device is short of
///   resources). Nothing about the request itself is wrong.
/// - reauthenticate: the login state is wrong or the PIN was refused; log in
///   again (with a correct PIN) and the request may succeed.
/// - fix_input: the request is malformed for this key, mechanism or token;
///   repeating it unchanged gives the same answer.
/// - give_up: the device, the module or the PIN's state is broken in a way the
///   program cannot repair (CKR_DEVICE_ERROR, CKR_PIN_LOCKED, unsupported
///   functions, vendor codes).
enum class RvCategory { ok, retry, reauthenticate, fix_input, give_up };

/// Returns the category of `rv` by the rule above.
RvCategory categorize_rv(CK_RV rv);

/// Returns "retry", "reauthenticate", ...
const char* to_string(RvCategory category);

/// Returns true when `rv` means the session can no longer be used and a
/// replacement (re-initialise, re-login where needed) may succeed:
/// CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_DEVICE_REMOVED,
/// CKR_TOKEN_NOT_PRESENT, CKR_USER_NOT_LOGGED_IN, CKR_CRYPTOKI_NOT_INITIALIZED.
bool is_stale_session_rv(CK_RV rv);

/// Returns true when `rv` says the token is not there right now.
bool is_token_absent_rv(CK_RV rv);

}  // namespace hsmactor::pkcs11
