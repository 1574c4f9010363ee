// One PKCS#11 session: a move-only handle with the operations hsmactor offers.
//
// A Session is not thread-safe, on purpose: PKCS#11 forbids two threads in one
// session at once, and hsmactor gives each session to exactly one actor. It
// closes on destruction and never logs out (login belongs to the token: a
// C_Logout here would log out every other session of the process).
//
// Every method returns a Result; the CKR_* codes listed are the ones callers
// should expect, each with what happens:
//   CKR_SESSION_HANDLE_INVALID / CKR_SESSION_CLOSED: the session is gone; open another.
//   CKR_DEVICE_REMOVED / CKR_TOKEN_NOT_PRESENT: the token is gone; wait for it.
//   CKR_USER_NOT_LOGGED_IN: the token lost its login; log in again.
//   CKR_KEY_HANDLE_INVALID, CKR_KEY_TYPE_INCONSISTENT, CKR_MECHANISM_INVALID,
//   CKR_DATA_LEN_RANGE, CKR_KEY_FUNCTION_NOT_PERMITTED: the request is wrong.
//   CKR_BUFFER_TOO_SMALL never reaches a caller: outputs are sized inside.
//
// An optional CallObserver (call_observer.hpp) is told of every C_* call the
// session makes, one record per invocation, so a higher layer can trace and
// time PKCS#11 without wrapping each method. Records carry the function name,
// handle, slot, duration and CKR_* only: the observer never sees data or PINs.
// With no observer set, a call costs one extra branch and no clock read.
//
// Usage:
//   Result<Session> session = module->open_session(slot);
//   session->login(CKU_USER, pin);
//   auto key = session->find_objects(AttributeList().set_string(CKA_LABEL, "k"));
//   Result<Bytes> signature = session->sign(Mechanism::ecdsa(), (*key)[0], digest);
//   session->set_observer(&tracer);  // optional: every C_* call from now on
#pragma once

#include <cstddef>
#include <vector>

#include "pkcs11/attributes.hpp"
#include "pkcs11/bytes.hpp"
#include "pkcs11/call_observer.hpp"
#include "pkcs11/cryptoki.hpp"
#include "pkcs11/error.hpp"
#include "pkcs11/mechanism.hpp"
#include "pkcs11/pin.hpp"

namespace hsmactor::pkcs11 {

/// What C_GetSessionInfo says.
struct SessionInfo {
  CK_SLOT_ID slot = 0;
  CK_STATE state = 0;
  CK_FLAGS flags = 0;
  CK_ULONG device_error = 0;

  bool logged_in() const {
    return state == CKS_RO_USER_FUNCTIONS || state == CKS_RW_USER_FUNCTIONS ||
           state == CKS_RW_SO_FUNCTIONS;
  }
};

/// An open session (or an empty one after a move or release()).
class Session {
 public:
  Session() = default;
  /// Takes ownership of `handle`, opened through `functions` on `slot`.
  Session(CK_FUNCTION_LIST* functions, CK_SESSION_HANDLE handle, CK_SLOT_ID slot);
  /// Takes the handle and the observer of `other`, which is left empty.
  Session(Session&& other) noexcept;
  /// Closes this session (reported to its own observer), then moves as above.
  Session& operator=(Session&& other) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  /// Closes the session (never logs out); errors are ignored.
  ~Session();

  bool is_open() const { return handle_ != CK_INVALID_HANDLE; }
  CK_SESSION_HANDLE handle() const { return handle_; }
  CK_SLOT_ID slot() const { return slot_; }
  CK_FUNCTION_LIST* functions() const { return functions_; }

  /// Sets the observer told of every C_* call from now on; nullptr turns it
  /// off. Not owned: it must outlive the session or be reset first (the
  /// closing C_CloseSession of the destructor is reported too).
  void set_observer(CallObserver* observer) { observer_ = observer; }
  /// Returns the observer, or nullptr.
  CallObserver* observer() const { return observer_; }

  /// Returns the handle and gives up ownership; the caller closes it.
  CK_SESSION_HANDLE release();
  /// Closes now. CKR_SESSION_HANDLE_INVALID means it was already gone.
  Result<void> close();
  /// Forgets the handle without calling PKCS#11 (for handles a fork invalidated).
  void abandon();

  /// C_GetSessionInfo.
  Result<SessionInfo> info() const;

  /// Logs `user_type` in. CKR_USER_ALREADY_LOGGED_IN counts as success (login
  /// is per token; another session may have done it). CKR_PIN_INCORRECT,
  /// CKR_PIN_LOCKED and CKR_USER_PIN_NOT_INITIALIZED come back as errors.
  Result<void> login(CK_USER_TYPE user_type, const Pin& pin);
  /// Logs in like login() and says whether this call made the login: false
  /// for CKR_USER_ALREADY_LOGGED_IN (another session, perhaps another
  /// consumer's, holds it; then the PIN was not checked and the login is not
  /// ours to end).
  Result<bool> login_made_here(CK_USER_TYPE user_type, const Pin& pin);
  /// Logs the token out for every session of this process; only the owner of
  /// the token's login should call it. CKR_USER_NOT_LOGGED_IN counts as success.
  Result<void> logout();
  /// Sets the user PIN (in an SO session): C_InitPIN.
  Result<void> init_pin(const Pin& user_pin);

  /// Signs `data` in one call. With CKM_ECDSA, `data` is the digest.
  Result<Bytes> sign(const Mechanism& mechanism, CK_OBJECT_HANDLE key, ByteView data);
  Result<void> sign_init(const Mechanism& mechanism, CK_OBJECT_HANDLE key);
  Result<void> sign_update(ByteView data);
  Result<Bytes> sign_final();

  /// Returns true for a valid signature and false for CKR_SIGNATURE_INVALID or
  /// CKR_SIGNATURE_LEN_RANGE; other codes are errors.
  Result<bool> verify(const Mechanism& mechanism, CK_OBJECT_HANDLE key, ByteView data,
                      ByteView signature);
  Result<void> verify_init(const Mechanism& mechanism, CK_OBJECT_HANDLE key);
  Result<void> verify_update(ByteView data);
  Result<bool> verify_final(ByteView signature);

  /// Encrypts in one call (AES-GCM appends the tag; RSA-OAEP).
  Result<Bytes> encrypt(const Mechanism& mechanism, CK_OBJECT_HANDLE key, ByteView plaintext);
  /// Decrypts in one call. A bad GCM tag is CKR_ENCRYPTED_DATA_INVALID by the
  /// standard; SoftHSM2 2.6 answers CKR_GENERAL_ERROR.
  Result<Bytes> decrypt(const Mechanism& mechanism, CK_OBJECT_HANDLE key, ByteView ciphertext);

  /// Digests in one call.
  Result<Bytes> digest(const Mechanism& mechanism, ByteView data);
  Result<void> digest_init(const Mechanism& mechanism);
  Result<void> digest_update(ByteView data);
  Result<Bytes> digest_final();

  /// Returns `length` random bytes.
  Result<Bytes> random(std::size_t length);

  /// C_GenerateKeyPair.
  Result<KeyPairHandles> generate_key_pair(const KeyPairTemplate& spec);
  /// C_GenerateKey.
  Result<CK_OBJECT_HANDLE> generate_key(const KeyTemplate& spec);
  /// C_CreateObject.
  Result<CK_OBJECT_HANDLE> create_object(const AttributeList& attributes);
  /// C_DestroyObject.
  Result<void> destroy_object(CK_OBJECT_HANDLE object);

  /// Returns the handles of every object matching `query` (at most `limit`, 0 = all).
  Result<std::vector<CK_OBJECT_HANDLE>> find_objects(const AttributeList& query,
                                                     std::size_t limit = 0);
  /// Reads the listed attributes. CKR_ATTRIBUTE_SENSITIVE and
  /// CKR_ATTRIBUTE_TYPE_INVALID are errors.
  Result<AttributeList> get_attributes(CK_OBJECT_HANDLE object,
                                       const std::vector<CK_ATTRIBUTE_TYPE>& types);
  /// Reads one attribute.
  Result<Bytes> get_attribute(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type);
  /// Reads a public key object (EC point and curve, or RSA modulus and exponent).
  Result<PublicKey> export_public_key(CK_OBJECT_HANDLE public_key);

 private:
  Error fail(CK_RV rv, const char* function, const char* operation) const;
  /// Returns `c_call()`, the one C_* call named `function`, and reports it to
  /// the observer if there is one. Defined and used in session.cpp only.
  template <class F>
  CK_RV call(const char* function, F&& c_call) const;

  CK_FUNCTION_LIST* functions_ = nullptr;
  CK_SESSION_HANDLE handle_ = CK_INVALID_HANDLE;
  CK_SLOT_ID slot_ = 0;
  CallObserver* observer_ = nullptr;
};

}  // namespace hsmactor::pkcs11
