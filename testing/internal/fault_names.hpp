// Names the fault module works with: the 68 functions of a Cryptoki 2.40
// CK_FUNCTION_LIST and the CKR_* codes of the header.
//
// The fault module keeps its own tables rather than using //pkcs11:rv, so a
// bug in the code under test cannot hide itself in the fixture that tests it.
//
// Usage:
//   std::optional<Function> f = function_from_name("C_Sign");
//   const char* name = function_name(Function::sign);        // "C_Sign"
//   std::optional<CK_RV> rv = parse_rv("CKR_DEVICE_REMOVED");  // or "0x32"
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

#include "pkcs11/cryptoki.hpp"

namespace hsmactor::fault {

/// Every function of CK_FUNCTION_LIST, in the order of the list.
enum class Function : int {
  initialize,
  finalize,
  get_info,
  get_function_list,
  get_slot_list,
  get_slot_info,
  get_token_info,
  get_mechanism_list,
  get_mechanism_info,
  init_token,
  init_pin,
  set_pin,
  open_session,
  close_session,
  close_all_sessions,
  get_session_info,
  get_operation_state,
  set_operation_state,
  login,
  logout,
  create_object,
  copy_object,
  destroy_object,
  get_object_size,
  get_attribute_value,
  set_attribute_value,
  find_objects_init,
  find_objects,
  find_objects_final,
  encrypt_init,
  encrypt,
  encrypt_update,
  encrypt_final,
  decrypt_init,
  decrypt,
  decrypt_update,
  decrypt_final,
  digest_init,
  digest,
  digest_update,
  digest_key,
  digest_final,
  sign_init,
  sign,
  sign_update,
  sign_final,
  sign_recover_init,
  sign_recover,
  verify_init,
  verify,
  verify_update,
  verify_final,
  verify_recover_init,
  verify_recover,
  digest_encrypt_update,
  decrypt_digest_update,
  sign_encrypt_update,
  decrypt_verify_update,
  generate_key,
  generate_key_pair,
  wrap_key,
  unwrap_key,
  derive_key,
  seed_random,
  generate_random,
  get_function_status,
  cancel_function,
  wait_for_slot_event,
};

/// The number of functions in a Cryptoki 2.40 CK_FUNCTION_LIST.
inline constexpr std::size_t kFunctionCount = 68;

// The list is a version followed by one pointer per function; if the header
// ever grows, the enum above must grow with it.
static_assert(sizeof(CK_FUNCTION_LIST) ==
                  offsetof(CK_FUNCTION_LIST, C_Initialize) +
                      kFunctionCount * sizeof(CK_C_Initialize),
              "CK_FUNCTION_LIST does not have 68 functions");

/// Returns the position of `function` in the list (0 for C_Initialize).
constexpr std::size_t index_of(Function function) {
  return static_cast<std::size_t>(function);
}

/// Returns the PKCS#11 name of `function` ("C_Sign").
const char* function_name(Function function);

/// Returns the function named `name` ("C_Sign"), if the list has it.
std::optional<Function> function_from_name(std::string_view name);

/// Returns the code named `name` ("CKR_DEVICE_REMOVED"), if the header has it.
std::optional<CK_RV> rv_from_name(std::string_view name);

/// Returns the CKR_* name of `rv`, or nullptr for codes the header lacks.
const char* rv_name(CK_RV rv);

/// Returns the code written as a CKR_* name, 0x-prefixed hex or decimal.
std::optional<CK_RV> parse_rv(std::string_view text);

/// Returns `text` as an unsigned number (decimal, or hex after "0x").
std::optional<unsigned long> parse_number(std::string_view text);

}  // namespace hsmactor::fault
