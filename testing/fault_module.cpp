// The fault-injecting PKCS#11 module: C_GetFunctionList hands out a function
// list whose 68 functions forward to the target module through FaultState,
// plus the hsmactor_fault_* control functions declared in fault_control.h.
//
// Every forwarder runs the same prologue (Call or SessionCall): count the
// call, (for session functions) record the thread as inside the session, sleep
// the configured latency, then answer a firing rule's rv without forwarding
// (a failed single-part crypto call still ends the target's operation).
// After that come the simulated states, in this order: removed tokens, unknown
// session handles, the session cap. Only then is the target called.
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#include "pkcs11/cryptoki.hpp"
#include "testing/fault_control.h"
#include "testing/internal/fault_names.hpp"
#include "testing/internal/fault_plan.hpp"
#include "testing/internal/fault_state.hpp"

namespace hsmactor::fault {
namespace {

/// The prologue of a function that takes no session handle.
class Call {
 public:
  explicit Call(Function function) : state_(FaultState::instance()) {
    state_.count_call(function);
    state_.sleep_latency(function);
    target_ = state_.target();
    fault_ = state_.fire_rule(function);
    if (!fault_ && target_ == nullptr) fault_ = CKR_CRYPTOKI_NOT_INITIALIZED;
  }

  /// Returns the rv to answer without forwarding, if any.
  std::optional<CK_RV> fault() const { return fault_; }
  CK_FUNCTION_LIST* target() const { return target_; }
  FaultState& state() const { return state_; }

 private:
  FaultState& state_;
  CK_FUNCTION_LIST* target_ = nullptr;
  std::optional<CK_RV> fault_;
};

/// The prologue and epilogue of a function that takes a session handle: the
/// thread counts as inside the session from construction to destruction.
class SessionCall {
 public:
  SessionCall(Function function, CK_SESSION_HANDLE session)
      : state_(FaultState::instance()), function_(function) {
    state_.count_call(function);
    visit_ = state_.enter_session(function, session);
    state_.sleep_latency(function);
    target_ = state_.target();
    fault_ = state_.fire_rule(function);
    if (fault_) {
      injected_on_live_session_ =
          visit_.record != nullptr && target_ != nullptr && !state_.token_removed();
      return;
    }
    if (state_.token_removed()) {
      fault_ = CKR_DEVICE_REMOVED;
    } else if (visit_.record == nullptr) {
      fault_ = CKR_SESSION_HANDLE_INVALID;
    } else if (target_ == nullptr) {
      fault_ = CKR_CRYPTOKI_NOT_INITIALIZED;
    }
  }

  ~SessionCall() { state_.leave_session(visit_, function_, closed_); }

  SessionCall(const SessionCall&) = delete;
  SessionCall& operator=(const SessionCall&) = delete;

  /// Returns the rv to answer without forwarding, if any.
  std::optional<CK_RV> fault() const { return fault_; }
  CK_FUNCTION_LIST* target() const { return target_; }
  /// Returns the target's handle for the caller's session.
  CK_SESSION_HANDLE real() const { return visit_.real; }
  /// Notes that the forwarded call closed the target's session.
  void mark_closed() { closed_ = true; }
  /// Whether fault() is a rule's answer on a session the target still has.
  bool injected_on_live_session() const { return injected_on_live_session_; }

 private:
  FaultState& state_;
  Function function_;
  SessionVisit visit_;
  CK_FUNCTION_LIST* target_ = nullptr;
  std::optional<CK_RV> fault_;
  bool closed_ = false;
  bool injected_on_live_session_ = false;
};

/// A failed single-part call (C_Sign, C_Encrypt, ...) ends its operation in
/// a real module (PKCS#11 2.40, 5.1), so an injected failure must end the
/// target's too: the next call on the session would otherwise see
/// CKR_OPERATION_ACTIVE, which no compliant module answers. The exception is
/// CKR_BUFFER_TOO_SMALL, which leaves the operation active for the caller's
/// retry with a larger buffer (5.2 for C_Sign; alike for the others).
/// `forward` makes the call into a scratch buffer of `room` bytes; its answer
/// is dropped.
template <class Forward>
CK_RV injected_failure(const SessionCall& call, CK_RV rv, CK_ULONG room, Forward forward) {
  if (call.injected_on_live_session() && rv != CKR_BUFFER_TOO_SMALL) {
    std::string scratch(room + 1024, '\0');
    CK_ULONG length = static_cast<CK_ULONG>(scratch.size());
    (void)forward(reinterpret_cast<CK_BYTE_PTR>(scratch.data()), &length);
  }
  return rv;
}

// ---------------------------------------------------------------------------
// General-purpose and slot/token functions.

CK_RV C_Initialize(CK_VOID_PTR init_args) {
  Call call(Function::initialize);
  if (auto rv = call.fault()) return *rv;
  const CK_RV rv = call.target()->C_Initialize(init_args);
  // CKR_OK means the target was not initialized, so it has no sessions; any
  // we remember are from before a C_Finalize we did not see, or a fork.
  if (rv == CKR_OK) call.state().forget_all_sessions();
  return rv;
}

CK_RV C_Finalize(CK_VOID_PTR reserved) {
  Call call(Function::finalize);
  if (auto rv = call.fault()) return *rv;
  const CK_RV rv = call.target()->C_Finalize(reserved);
  if (rv == CKR_OK) call.state().forget_all_sessions();
  return rv;
}

CK_RV C_GetInfo(CK_INFO_PTR info) {
  Call call(Function::get_info);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_GetInfo(info);
}

CK_RV C_GetSlotList(CK_BBOOL token_present, CK_SLOT_ID_PTR slots,
                    CK_ULONG_PTR count) {
  Call call(Function::get_slot_list);
  if (auto rv = call.fault()) return *rv;
  if (token_present != CK_FALSE && call.state().token_removed()) {
    // Every token is out, so no slot has one.
    if (count == nullptr) return CKR_ARGUMENTS_BAD;
    *count = 0;
    return CKR_OK;
  }
  return call.target()->C_GetSlotList(token_present, slots, count);
}

CK_RV C_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info) {
  Call call(Function::get_slot_info);
  if (auto rv = call.fault()) return *rv;
  const CK_RV rv = call.target()->C_GetSlotInfo(slot, info);
  if (rv == CKR_OK && call.state().token_removed()) {
    info->flags &= ~CKF_TOKEN_PRESENT;
  }
  return rv;
}

CK_RV C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info) {
  Call call(Function::get_token_info);
  if (auto rv = call.fault()) return *rv;
  if (call.state().token_removed()) return CKR_TOKEN_NOT_PRESENT;
  const CK_RV rv = call.target()->C_GetTokenInfo(slot, info);
  const CK_ULONG max = call.state().max_sessions();
  if (rv == CKR_OK && max != 0) {
    info->ulMaxSessionCount = max;
    info->ulMaxRwSessionCount = max;
  }
  return rv;
}

CK_RV C_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR mechanisms,
                         CK_ULONG_PTR count) {
  Call call(Function::get_mechanism_list);
  if (auto rv = call.fault()) return *rv;
  if (call.state().token_removed()) return CKR_TOKEN_NOT_PRESENT;
  return call.target()->C_GetMechanismList(slot, mechanisms, count);
}

CK_RV C_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type,
                         CK_MECHANISM_INFO_PTR info) {
  Call call(Function::get_mechanism_info);
  if (auto rv = call.fault()) return *rv;
  if (call.state().token_removed()) return CKR_TOKEN_NOT_PRESENT;
  return call.target()->C_GetMechanismInfo(slot, type, info);
}

CK_RV C_InitToken(CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len,
                  CK_UTF8CHAR_PTR label) {
  Call call(Function::init_token);
  if (auto rv = call.fault()) return *rv;
  if (call.state().token_removed()) return CKR_TOKEN_NOT_PRESENT;
  return call.target()->C_InitToken(slot, pin, pin_len, label);
}

CK_RV C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR slot,
                         CK_VOID_PTR reserved) {
  Call call(Function::wait_for_slot_event);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_WaitForSlotEvent(flags, slot, reserved);
}

// ---------------------------------------------------------------------------
// Session management.

CK_RV C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR application,
                    CK_NOTIFY notify, CK_SESSION_HANDLE_PTR session) {
  Call call(Function::open_session);
  if (auto rv = call.fault()) return *rv;
  if (session == nullptr) return CKR_ARGUMENTS_BAD;
  const OpenTicket ticket = call.state().begin_open(slot);
  if (ticket.rv != CKR_OK) return ticket.rv;
  // A notify callback, if the target ever made one, would see the target's
  // handle; SoftHSM2 never calls it.
  CK_SESSION_HANDLE real = CK_INVALID_HANDLE;
  const CK_RV rv =
      call.target()->C_OpenSession(slot, flags, application, notify, &real);
  return call.state().finish_open(slot, ticket, rv, real, session);
}

CK_RV C_CloseSession(CK_SESSION_HANDLE session) {
  SessionCall call(Function::close_session, session);
  if (auto rv = call.fault()) return *rv;
  const CK_RV rv = call.target()->C_CloseSession(call.real());
  if (rv == CKR_OK) call.mark_closed();
  return rv;
}

CK_RV C_CloseAllSessions(CK_SLOT_ID slot) {
  Call call(Function::close_all_sessions);
  if (auto rv = call.fault()) return *rv;
  // The sessions are already gone with the token; the target must not close
  // sessions that a thread may still be inside.
  if (call.state().token_removed()) return CKR_TOKEN_NOT_PRESENT;
  const CK_RV rv = call.target()->C_CloseAllSessions(slot);
  if (rv == CKR_OK) call.state().forget_slot_sessions(slot);
  return rv;
}

CK_RV C_GetSessionInfo(CK_SESSION_HANDLE session, CK_SESSION_INFO_PTR info) {
  SessionCall call(Function::get_session_info, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_GetSessionInfo(call.real(), info);
}

CK_RV C_GetOperationState(CK_SESSION_HANDLE session, CK_BYTE_PTR state,
                          CK_ULONG_PTR state_len) {
  SessionCall call(Function::get_operation_state, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_GetOperationState(call.real(), state, state_len);
}

CK_RV C_SetOperationState(CK_SESSION_HANDLE session, CK_BYTE_PTR state,
                          CK_ULONG state_len, CK_OBJECT_HANDLE encryption_key,
                          CK_OBJECT_HANDLE authentication_key) {
  SessionCall call(Function::set_operation_state, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_SetOperationState(
      call.real(), state, state_len, encryption_key, authentication_key);
}

CK_RV C_InitPIN(CK_SESSION_HANDLE session, CK_UTF8CHAR_PTR pin,
                CK_ULONG pin_len) {
  SessionCall call(Function::init_pin, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_InitPIN(call.real(), pin, pin_len);
}

CK_RV C_SetPIN(CK_SESSION_HANDLE session, CK_UTF8CHAR_PTR old_pin,
               CK_ULONG old_len, CK_UTF8CHAR_PTR new_pin, CK_ULONG new_len) {
  SessionCall call(Function::set_pin, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_SetPIN(call.real(), old_pin, old_len, new_pin,
                                 new_len);
}

CK_RV C_Login(CK_SESSION_HANDLE session, CK_USER_TYPE user_type,
              CK_UTF8CHAR_PTR pin, CK_ULONG pin_len) {
  SessionCall call(Function::login, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_Login(call.real(), user_type, pin, pin_len);
}

CK_RV C_Logout(CK_SESSION_HANDLE session) {
  SessionCall call(Function::logout, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_Logout(call.real());
}

// ---------------------------------------------------------------------------
// Objects.

CK_RV C_CreateObject(CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR templ,
                     CK_ULONG count, CK_OBJECT_HANDLE_PTR object) {
  SessionCall call(Function::create_object, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_CreateObject(call.real(), templ, count, object);
}

CK_RV C_CopyObject(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                   CK_ATTRIBUTE_PTR templ, CK_ULONG count,
                   CK_OBJECT_HANDLE_PTR new_object) {
  SessionCall call(Function::copy_object, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_CopyObject(call.real(), object, templ, count,
                                     new_object);
}

CK_RV C_DestroyObject(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object) {
  SessionCall call(Function::destroy_object, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_DestroyObject(call.real(), object);
}

CK_RV C_GetObjectSize(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                      CK_ULONG_PTR size) {
  SessionCall call(Function::get_object_size, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_GetObjectSize(call.real(), object, size);
}

CK_RV C_GetAttributeValue(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                          CK_ATTRIBUTE_PTR templ, CK_ULONG count) {
  SessionCall call(Function::get_attribute_value, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_GetAttributeValue(call.real(), object, templ, count);
}

CK_RV C_SetAttributeValue(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                          CK_ATTRIBUTE_PTR templ, CK_ULONG count) {
  SessionCall call(Function::set_attribute_value, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_SetAttributeValue(call.real(), object, templ, count);
}

CK_RV C_FindObjectsInit(CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR templ,
                        CK_ULONG count) {
  SessionCall call(Function::find_objects_init, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_FindObjectsInit(call.real(), templ, count);
}

CK_RV C_FindObjects(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE_PTR objects,
                    CK_ULONG max_count, CK_ULONG_PTR count) {
  SessionCall call(Function::find_objects, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_FindObjects(call.real(), objects, max_count, count);
}

CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE session) {
  SessionCall call(Function::find_objects_final, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_FindObjectsFinal(call.real());
}

// ---------------------------------------------------------------------------
// Encryption and decryption.

CK_RV C_EncryptInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                    CK_OBJECT_HANDLE key) {
  SessionCall call(Function::encrypt_init, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_EncryptInit(call.real(), mechanism, key);
}

CK_RV C_Encrypt(CK_SESSION_HANDLE session, CK_BYTE_PTR data,
                CK_ULONG data_len, CK_BYTE_PTR encrypted,
                CK_ULONG_PTR encrypted_len) {
  SessionCall call(Function::encrypt, session);
  if (auto rv = call.fault()) {
    return injected_failure(call, *rv, data_len, [&](CK_BYTE_PTR out, CK_ULONG_PTR length) {
      return call.target()->C_Encrypt(call.real(), data, data_len, out, length);
    });
  }
  return call.target()->C_Encrypt(call.real(), data, data_len, encrypted,
                                  encrypted_len);
}

CK_RV C_EncryptUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part,
                      CK_ULONG part_len, CK_BYTE_PTR encrypted,
                      CK_ULONG_PTR encrypted_len) {
  SessionCall call(Function::encrypt_update, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_EncryptUpdate(call.real(), part, part_len,
                                        encrypted, encrypted_len);
}

CK_RV C_EncryptFinal(CK_SESSION_HANDLE session, CK_BYTE_PTR last,
                     CK_ULONG_PTR last_len) {
  SessionCall call(Function::encrypt_final, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_EncryptFinal(call.real(), last, last_len);
}

CK_RV C_DecryptInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                    CK_OBJECT_HANDLE key) {
  SessionCall call(Function::decrypt_init, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_DecryptInit(call.real(), mechanism, key);
}

CK_RV C_Decrypt(CK_SESSION_HANDLE session, CK_BYTE_PTR encrypted,
                CK_ULONG encrypted_len, CK_BYTE_PTR data,
                CK_ULONG_PTR data_len) {
  SessionCall call(Function::decrypt, session);
  if (auto rv = call.fault()) {
    return injected_failure(call, *rv, encrypted_len, [&](CK_BYTE_PTR out, CK_ULONG_PTR length) {
      return call.target()->C_Decrypt(call.real(), encrypted, encrypted_len, out, length);
    });
  }
  return call.target()->C_Decrypt(call.real(), encrypted, encrypted_len, data,
                                  data_len);
}

CK_RV C_DecryptUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR encrypted,
                      CK_ULONG encrypted_len, CK_BYTE_PTR part,
                      CK_ULONG_PTR part_len) {
  SessionCall call(Function::decrypt_update, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_DecryptUpdate(call.real(), encrypted, encrypted_len,
                                        part, part_len);
}

CK_RV C_DecryptFinal(CK_SESSION_HANDLE session, CK_BYTE_PTR last,
                     CK_ULONG_PTR last_len) {
  SessionCall call(Function::decrypt_final, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_DecryptFinal(call.real(), last, last_len);
}

// ---------------------------------------------------------------------------
// Digests.

CK_RV C_DigestInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism) {
  SessionCall call(Function::digest_init, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_DigestInit(call.real(), mechanism);
}

CK_RV C_Digest(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
               CK_BYTE_PTR digest, CK_ULONG_PTR digest_len) {
  SessionCall call(Function::digest, session);
  if (auto rv = call.fault()) {
    return injected_failure(call, *rv, 0, [&](CK_BYTE_PTR out, CK_ULONG_PTR length) {
      return call.target()->C_Digest(call.real(), data, data_len, out, length);
    });
  }
  return call.target()->C_Digest(call.real(), data, data_len, digest,
                                 digest_len);
}

CK_RV C_DigestUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part,
                     CK_ULONG part_len) {
  SessionCall call(Function::digest_update, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_DigestUpdate(call.real(), part, part_len);
}

CK_RV C_DigestKey(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key) {
  SessionCall call(Function::digest_key, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_DigestKey(call.real(), key);
}

CK_RV C_DigestFinal(CK_SESSION_HANDLE session, CK_BYTE_PTR digest,
                    CK_ULONG_PTR digest_len) {
  SessionCall call(Function::digest_final, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_DigestFinal(call.real(), digest, digest_len);
}

// ---------------------------------------------------------------------------
// Signatures and verification.

CK_RV C_SignInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                 CK_OBJECT_HANDLE key) {
  SessionCall call(Function::sign_init, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_SignInit(call.real(), mechanism, key);
}

CK_RV C_Sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
             CK_BYTE_PTR signature, CK_ULONG_PTR signature_len) {
  SessionCall call(Function::sign, session);
  if (auto rv = call.fault()) {
    return injected_failure(call, *rv, 0, [&](CK_BYTE_PTR out, CK_ULONG_PTR length) {
      return call.target()->C_Sign(call.real(), data, data_len, out, length);
    });
  }
  return call.target()->C_Sign(call.real(), data, data_len, signature,
                               signature_len);
}

CK_RV C_SignUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part,
                   CK_ULONG part_len) {
  SessionCall call(Function::sign_update, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_SignUpdate(call.real(), part, part_len);
}

CK_RV C_SignFinal(CK_SESSION_HANDLE session, CK_BYTE_PTR signature,
                  CK_ULONG_PTR signature_len) {
  SessionCall call(Function::sign_final, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_SignFinal(call.real(), signature, signature_len);
}

CK_RV C_SignRecoverInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                        CK_OBJECT_HANDLE key) {
  SessionCall call(Function::sign_recover_init, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_SignRecoverInit(call.real(), mechanism, key);
}

CK_RV C_SignRecover(CK_SESSION_HANDLE session, CK_BYTE_PTR data,
                    CK_ULONG data_len, CK_BYTE_PTR signature,
                    CK_ULONG_PTR signature_len) {
  SessionCall call(Function::sign_recover, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_SignRecover(call.real(), data, data_len, signature,
                                      signature_len);
}

CK_RV C_VerifyInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                   CK_OBJECT_HANDLE key) {
  SessionCall call(Function::verify_init, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_VerifyInit(call.real(), mechanism, key);
}

CK_RV C_Verify(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
               CK_BYTE_PTR signature, CK_ULONG signature_len) {
  SessionCall call(Function::verify, session);
  if (auto rv = call.fault()) {
    return injected_failure(call, *rv, 0, [&](CK_BYTE_PTR, CK_ULONG_PTR) {
      return call.target()->C_Verify(call.real(), data, data_len, signature, signature_len);
    });
  }
  return call.target()->C_Verify(call.real(), data, data_len, signature,
                                 signature_len);
}

CK_RV C_VerifyUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part,
                     CK_ULONG part_len) {
  SessionCall call(Function::verify_update, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_VerifyUpdate(call.real(), part, part_len);
}

CK_RV C_VerifyFinal(CK_SESSION_HANDLE session, CK_BYTE_PTR signature,
                    CK_ULONG signature_len) {
  SessionCall call(Function::verify_final, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_VerifyFinal(call.real(), signature, signature_len);
}

CK_RV C_VerifyRecoverInit(CK_SESSION_HANDLE session,
                          CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key) {
  SessionCall call(Function::verify_recover_init, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_VerifyRecoverInit(call.real(), mechanism, key);
}

CK_RV C_VerifyRecover(CK_SESSION_HANDLE session, CK_BYTE_PTR signature,
                      CK_ULONG signature_len, CK_BYTE_PTR data,
                      CK_ULONG_PTR data_len) {
  SessionCall call(Function::verify_recover, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_VerifyRecover(call.real(), signature, signature_len,
                                        data, data_len);
}

// ---------------------------------------------------------------------------
// Dual-function operations.

CK_RV C_DigestEncryptUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part,
                            CK_ULONG part_len, CK_BYTE_PTR encrypted,
                            CK_ULONG_PTR encrypted_len) {
  SessionCall call(Function::digest_encrypt_update, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_DigestEncryptUpdate(call.real(), part, part_len,
                                              encrypted, encrypted_len);
}

CK_RV C_DecryptDigestUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR encrypted,
                            CK_ULONG encrypted_len, CK_BYTE_PTR part,
                            CK_ULONG_PTR part_len) {
  SessionCall call(Function::decrypt_digest_update, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_DecryptDigestUpdate(call.real(), encrypted,
                                              encrypted_len, part, part_len);
}

CK_RV C_SignEncryptUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part,
                          CK_ULONG part_len, CK_BYTE_PTR encrypted,
                          CK_ULONG_PTR encrypted_len) {
  SessionCall call(Function::sign_encrypt_update, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_SignEncryptUpdate(call.real(), part, part_len,
                                            encrypted, encrypted_len);
}

CK_RV C_DecryptVerifyUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR encrypted,
                            CK_ULONG encrypted_len, CK_BYTE_PTR part,
                            CK_ULONG_PTR part_len) {
  SessionCall call(Function::decrypt_verify_update, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_DecryptVerifyUpdate(call.real(), encrypted,
                                              encrypted_len, part, part_len);
}

// ---------------------------------------------------------------------------
// Keys.

CK_RV C_GenerateKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                    CK_ATTRIBUTE_PTR templ, CK_ULONG count,
                    CK_OBJECT_HANDLE_PTR key) {
  SessionCall call(Function::generate_key, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_GenerateKey(call.real(), mechanism, templ, count,
                                      key);
}

CK_RV C_GenerateKeyPair(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                        CK_ATTRIBUTE_PTR public_template,
                        CK_ULONG public_count,
                        CK_ATTRIBUTE_PTR private_template,
                        CK_ULONG private_count,
                        CK_OBJECT_HANDLE_PTR public_key,
                        CK_OBJECT_HANDLE_PTR private_key) {
  SessionCall call(Function::generate_key_pair, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_GenerateKeyPair(
      call.real(), mechanism, public_template, public_count, private_template,
      private_count, public_key, private_key);
}

CK_RV C_WrapKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                CK_OBJECT_HANDLE wrapping_key, CK_OBJECT_HANDLE key,
                CK_BYTE_PTR wrapped, CK_ULONG_PTR wrapped_len) {
  SessionCall call(Function::wrap_key, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_WrapKey(call.real(), mechanism, wrapping_key, key,
                                  wrapped, wrapped_len);
}

CK_RV C_UnwrapKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                  CK_OBJECT_HANDLE unwrapping_key, CK_BYTE_PTR wrapped,
                  CK_ULONG wrapped_len, CK_ATTRIBUTE_PTR templ, CK_ULONG count,
                  CK_OBJECT_HANDLE_PTR key) {
  SessionCall call(Function::unwrap_key, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_UnwrapKey(call.real(), mechanism, unwrapping_key,
                                    wrapped, wrapped_len, templ, count, key);
}

CK_RV C_DeriveKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                  CK_OBJECT_HANDLE base_key, CK_ATTRIBUTE_PTR templ,
                  CK_ULONG count, CK_OBJECT_HANDLE_PTR key) {
  SessionCall call(Function::derive_key, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_DeriveKey(call.real(), mechanism, base_key, templ,
                                    count, key);
}

// ---------------------------------------------------------------------------
// Random numbers and legacy parallel functions.

CK_RV C_SeedRandom(CK_SESSION_HANDLE session, CK_BYTE_PTR seed,
                   CK_ULONG seed_len) {
  SessionCall call(Function::seed_random, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_SeedRandom(call.real(), seed, seed_len);
}

CK_RV C_GenerateRandom(CK_SESSION_HANDLE session, CK_BYTE_PTR random,
                       CK_ULONG random_len) {
  SessionCall call(Function::generate_random, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_GenerateRandom(call.real(), random, random_len);
}

CK_RV C_GetFunctionStatus(CK_SESSION_HANDLE session) {
  SessionCall call(Function::get_function_status, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_GetFunctionStatus(call.real());
}

CK_RV C_CancelFunction(CK_SESSION_HANDLE session) {
  SessionCall call(Function::cancel_function, session);
  if (auto rv = call.fault()) return *rv;
  return call.target()->C_CancelFunction(call.real());
}

// ---------------------------------------------------------------------------
// The list and the module's lifetime.

CK_FUNCTION_LIST make_function_list() {
  CK_FUNCTION_LIST list{};
  // We implement (by forwarding) exactly the 2.40 list, whatever the target is.
  list.version.major = 2;
  list.version.minor = 40;
  list.C_Initialize = C_Initialize;
  list.C_Finalize = C_Finalize;
  list.C_GetInfo = C_GetInfo;
  list.C_GetFunctionList = ::C_GetFunctionList;
  list.C_GetSlotList = C_GetSlotList;
  list.C_GetSlotInfo = C_GetSlotInfo;
  list.C_GetTokenInfo = C_GetTokenInfo;
  list.C_GetMechanismList = C_GetMechanismList;
  list.C_GetMechanismInfo = C_GetMechanismInfo;
  list.C_InitToken = C_InitToken;
  list.C_InitPIN = C_InitPIN;
  list.C_SetPIN = C_SetPIN;
  list.C_OpenSession = C_OpenSession;
  list.C_CloseSession = C_CloseSession;
  list.C_CloseAllSessions = C_CloseAllSessions;
  list.C_GetSessionInfo = C_GetSessionInfo;
  list.C_GetOperationState = C_GetOperationState;
  list.C_SetOperationState = C_SetOperationState;
  list.C_Login = C_Login;
  list.C_Logout = C_Logout;
  list.C_CreateObject = C_CreateObject;
  list.C_CopyObject = C_CopyObject;
  list.C_DestroyObject = C_DestroyObject;
  list.C_GetObjectSize = C_GetObjectSize;
  list.C_GetAttributeValue = C_GetAttributeValue;
  list.C_SetAttributeValue = C_SetAttributeValue;
  list.C_FindObjectsInit = C_FindObjectsInit;
  list.C_FindObjects = C_FindObjects;
  list.C_FindObjectsFinal = C_FindObjectsFinal;
  list.C_EncryptInit = C_EncryptInit;
  list.C_Encrypt = C_Encrypt;
  list.C_EncryptUpdate = C_EncryptUpdate;
  list.C_EncryptFinal = C_EncryptFinal;
  list.C_DecryptInit = C_DecryptInit;
  list.C_Decrypt = C_Decrypt;
  list.C_DecryptUpdate = C_DecryptUpdate;
  list.C_DecryptFinal = C_DecryptFinal;
  list.C_DigestInit = C_DigestInit;
  list.C_Digest = C_Digest;
  list.C_DigestUpdate = C_DigestUpdate;
  list.C_DigestKey = C_DigestKey;
  list.C_DigestFinal = C_DigestFinal;
  list.C_SignInit = C_SignInit;
  list.C_Sign = C_Sign;
  list.C_SignUpdate = C_SignUpdate;
  list.C_SignFinal = C_SignFinal;
  list.C_SignRecoverInit = C_SignRecoverInit;
  list.C_SignRecover = C_SignRecover;
  list.C_VerifyInit = C_VerifyInit;
  list.C_Verify = C_Verify;
  list.C_VerifyUpdate = C_VerifyUpdate;
  list.C_VerifyFinal = C_VerifyFinal;
  list.C_VerifyRecoverInit = C_VerifyRecoverInit;
  list.C_VerifyRecover = C_VerifyRecover;
  list.C_DigestEncryptUpdate = C_DigestEncryptUpdate;
  list.C_DecryptDigestUpdate = C_DecryptDigestUpdate;
  list.C_SignEncryptUpdate = C_SignEncryptUpdate;
  list.C_DecryptVerifyUpdate = C_DecryptVerifyUpdate;
  list.C_GenerateKey = C_GenerateKey;
  list.C_GenerateKeyPair = C_GenerateKeyPair;
  list.C_WrapKey = C_WrapKey;
  list.C_UnwrapKey = C_UnwrapKey;
  list.C_DeriveKey = C_DeriveKey;
  list.C_SeedRandom = C_SeedRandom;
  list.C_GenerateRandom = C_GenerateRandom;
  list.C_GetFunctionStatus = C_GetFunctionStatus;
  list.C_CancelFunction = C_CancelFunction;
  list.C_WaitForSlotEvent = C_WaitForSlotEvent;
  return list;
}

CK_FUNCTION_LIST g_function_list = make_function_list();

/// Reads HSMACTOR_FAULT_PLAN when the module is loaded, so a process that
/// sets it and then loads us is faulted from its first call; closes the
/// target when the module is unloaded (dlclose or exit).
struct ModuleLifetime {
  ModuleLifetime() { FaultState::instance(); }
  ~ModuleLifetime() { FaultState::unload(); }
} g_module_lifetime;

/// Returns the state for a control call; like C_GetFunctionList, the first
/// control call loads the target.
FaultState& control_state() {
  FaultState& state = FaultState::instance();
  state.target();
  return state;
}

/// Returns the function named `name`, or nullopt (and a note on stderr) for
/// a name the list does not have.
std::optional<Function> named_function(const char* name, const char* caller) {
  std::optional<Function> function;
  if (name != nullptr) function = function_from_name(name);
  if (!function) {
    std::fprintf(stderr, "hsmactor_fault: %s: unknown function '%s'\n",
                 caller, name == nullptr ? "(null)" : name);
  }
  return function;
}

}  // namespace
}  // namespace hsmactor::fault

using hsmactor::fault::control_state;
using hsmactor::fault::FaultState;
using hsmactor::fault::Function;

extern "C" {

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  FaultState& state = FaultState::instance();
  state.count_call(Function::get_function_list);
  state.sleep_latency(Function::get_function_list);
  if (auto rv = state.fire_rule(Function::get_function_list)) return *rv;
  // A module that could not load its target or its plan must fail where the
  // caller looks first, not pass as an unfaulted module.
  if (!state.usable()) return CKR_GENERAL_ERROR;
  if (list == nullptr) return CKR_ARGUMENTS_BAD;
  *list = &hsmactor::fault::g_function_list;
  return CKR_OK;
}

void hsmactor_fault_reset(void) { control_state().reset(); }

void hsmactor_fault_reset_counts(void) {
  control_state().reset_counts();
}

int hsmactor_fault_load_plan(const char* plan) {
  const hsmactor::fault::PlanParse parsed =
      hsmactor::fault::parse_plan(plan == nullptr ? "" : plan);
  if (!parsed.ok()) {
    std::fprintf(stderr, "hsmactor_fault: bad plan %s\n",
                 parsed.error.c_str());
    return -1;
  }
  control_state().apply_plan(parsed.plan);
  return 0;
}

int hsmactor_fault_add_rule(const char* function, CK_RV rv,
                            unsigned long after, unsigned long times) {
  const auto f = hsmactor::fault::named_function(function, "add_rule");
  if (!f) return -1;
  control_state().add_rule(*f, rv, after, times);
  return 0;
}

void hsmactor_fault_invalidate_all_sessions(void) {
  control_state().invalidate_all_sessions();
}

void hsmactor_fault_invalidate_session(CK_SESSION_HANDLE session) {
  control_state().invalidate_session(session);
}

void hsmactor_fault_remove_token(void) { control_state().remove_token(); }

void hsmactor_fault_insert_token(void) { control_state().insert_token(); }

void hsmactor_fault_set_max_sessions(CK_ULONG max) {
  control_state().set_max_sessions(max);
}

int hsmactor_fault_set_latency_us(const char* function, unsigned long us) {
  std::optional<Function> f;
  if (function != nullptr) {
    f = hsmactor::fault::named_function(function, "set_latency_us");
    if (!f) return -1;
  }
  control_state().set_latency_us(f, us);
  return 0;
}

unsigned long hsmactor_fault_call_count(const char* function) {
  const auto f = hsmactor::fault::named_function(function, "call_count");
  if (!f) return ~0UL;
  return control_state().call_count(*f);
}

unsigned long hsmactor_fault_open_sessions(void) {
  return control_state().open_sessions();
}

unsigned long hsmactor_fault_violations(void) {
  return control_state().violations();
}

size_t hsmactor_fault_last_violation(char* buffer, size_t size) {
  const std::string text = control_state().last_violation();
  if (buffer != nullptr && size > 0) {
    const size_t n = text.size() < size - 1 ? text.size() : size - 1;
    std::memcpy(buffer, text.data(), n);
    buffer[n] = '\0';
  }
  return text.size();
}

unsigned long hsmactor_fault_max_concurrency(void) {
  return control_state().max_concurrency();
}

unsigned long hsmactor_fault_threads_inside(void) {
  return control_state().threads_inside();
}

}  // extern "C"
