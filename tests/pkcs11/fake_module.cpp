// A minimal PKCS#11 module for the few Module paths SoftHSM2 cannot reach.
//
// It has one slot (7) with a token whose info fields are padded the way
// sloppy vendor modules pad them, and it can misbehave in C_GetFunctionList.
// Set HSMACTOR_FAKE_PKCS11 before loading:
//   (unset)      a Cryptoki 2.40 module with only the slot and token functions
//   "fails"      C_GetFunctionList returns CKR_HOST_MEMORY
//   "no_list"    C_GetFunctionList succeeds without a function list
//   "version3"   the function list claims Cryptoki 3.0
#include <cstdlib>
#include <cstring>
#include <string>

#include "pkcs11/cryptoki.hpp"

namespace {

constexpr CK_SLOT_ID kSlot = 7;

std::string mode() {
  const char* value = std::getenv("HSMACTOR_FAKE_PKCS11");
  return value ? value : "";
}

template <std::size_t N>
void fill(unsigned char (&field)[N], const char* text, std::size_t length) {
  std::memset(field, ' ', N);
  std::memcpy(field, text, length);
}

CK_RV fake_initialize(void*) { return CKR_OK; }

CK_RV fake_finalize(void*) { return CKR_OK; }

CK_RV fake_get_slot_list(CK_BBOOL, CK_SLOT_ID_PTR slots, CK_ULONG_PTR count) {
  if (count == nullptr) return CKR_ARGUMENTS_BAD;
  if (slots != nullptr) {
    if (*count < 1) {
      *count = 1;
      return CKR_BUFFER_TOO_SMALL;
    }
    slots[0] = kSlot;
  }
  *count = 1;
  return CKR_OK;
}

CK_RV fake_get_token_info(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info) {
  if (slot != kSlot) return CKR_SLOT_ID_INVALID;
  std::memset(info, 0, sizeof *info);
  // Blanks, then a NUL, then more blanks: the label is "fake".
  fill(info->label, "fake  \0", 7);
  fill(info->manufacturerID, "Fake Inc", 8);
  std::memset(info->model, ' ', sizeof info->model);
  fill(info->serialNumber, "0123456789abcdef", 16);
  info->flags = CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED;
  info->ulMaxSessionCount = CK_UNAVAILABLE_INFORMATION;
  info->ulMaxRwSessionCount = 5;
  info->ulMinPinLen = 6;
  info->ulMaxPinLen = 64;
  return CKR_OK;
}

CK_FUNCTION_LIST make_function_list() {
  CK_FUNCTION_LIST list;
  std::memset(&list, 0, sizeof list);
  list.version.major = 2;
  list.version.minor = 40;
  list.C_Initialize = fake_initialize;
  list.C_Finalize = fake_finalize;
  list.C_GetSlotList = fake_get_slot_list;
  list.C_GetTokenInfo = fake_get_token_info;
  return list;
}

CK_FUNCTION_LIST function_list = make_function_list();

}  // namespace

extern "C" CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  std::string how = mode();
  if (how == "fails") return CKR_HOST_MEMORY;
  if (how == "no_list") {
    *list = nullptr;
    return CKR_OK;
  }
  function_list.version.major = how == "version3" ? 3 : 2;
  function_list.version.minor = how == "version3" ? 0 : 40;
  *list = &function_list;
  return CKR_OK;
}
