// A loaded PKCS#11 module: its function list, slots, tokens and sessions.
//
// Loading resolves the path to its real path first, so two spellings of one
// module are recognisably one module. Modules stay mapped until the process
// ends: many vendor modules (and SoftHSM2 with OpenSSL) do not survive
// dlclose() and a later reload.
//
// A Module does not decide who calls C_Initialize; the actor layer's library
// supervisor does, once per process.
//
// Usage:
//   auto module = Module::load("/usr/lib/softhsm/libsofthsm2.so");
//   (*module)->initialize();
//   auto slot = (*module)->find_token(TokenSelector::by_label("signer"));
//   auto session = (*module)->open_session(*slot);
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pkcs11/call_observer.hpp"
#include "pkcs11/cryptoki.hpp"
#include "pkcs11/error.hpp"
#include "pkcs11/pin.hpp"
#include "pkcs11/session.hpp"

namespace hsmactor::pkcs11 {

/// What C_Initialize found.
enum class InitOutcome {
  /// We initialised the module; we must finalise it when done.
  initialized,
  /// CKR_CRYPTOKI_ALREADY_INITIALIZED: another consumer in this process owns
  /// the module; use it and never finalise it.
  already_initialized,
};

/// What C_GetTokenInfo says, with blank-padded strings trimmed.
struct TokenInfo {
  CK_SLOT_ID slot = 0;
  std::string label;
  std::string manufacturer;
  std::string model;
  std::string serial;
  CK_FLAGS flags = 0;
  /// Sessions the token allows at once; nothing when it reports no limit
  /// (CK_EFFECTIVELY_INFINITE) or does not know (CK_UNAVAILABLE_INFORMATION).
  std::optional<CK_ULONG> max_sessions;
  std::optional<CK_ULONG> max_rw_sessions;
  /// Sessions open now, as reported; CK_UNAVAILABLE_INFORMATION when the
  /// module does not say (SoftHSM2 does not).
  CK_ULONG session_count = 0;
  CK_ULONG rw_session_count = 0;
  CK_ULONG min_pin_length = 0;
  CK_ULONG max_pin_length = 0;

  bool initialized() const { return flags & CKF_TOKEN_INITIALIZED; }
  bool user_pin_initialized() const { return flags & CKF_USER_PIN_INITIALIZED; }
  bool login_required() const { return flags & CKF_LOGIN_REQUIRED; }
};

/// Which token to use: every field that is set must match.
struct TokenSelector {
  std::optional<std::string> label;
  std::optional<std::string> serial;
  std::optional<CK_SLOT_ID> slot;

  static TokenSelector by_label(std::string label);
  static TokenSelector by_serial(std::string serial);
  static TokenSelector by_slot(CK_SLOT_ID slot);
  /// Returns "label=..., serial=..." for error messages (no secrets here).
  std::string describe() const;
};

/// Read-only or read-write sessions.
enum class SessionMode { read_only, read_write };

/// A loaded module.
class Module {
 public:
  /// Loads the module at `path`. Errors (Condition::module_load_failed): the
  /// file does not exist, is not a shared library, or has no
  /// C_GetFunctionList; C_GetFunctionList's own failure is a pkcs11_error.
  static Result<std::shared_ptr<Module>> load(const std::string& path);

  /// Returns the canonical path of `path` (symlinks resolved), or an error if
  /// it does not exist.
  static Result<std::string> real_path(const std::string& path);

  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  /// Returns the real path the module was loaded from.
  const std::string& path() const { return path_; }
  /// Returns the module's function list.
  CK_FUNCTION_LIST* functions() const { return functions_; }

  /// Calls C_Initialize with CKF_OS_LOCKING_OK. CKR_CRYPTOKI_ALREADY_INITIALIZED
  /// is reported as InitOutcome::already_initialized; CKR_CANT_LOCK (the module
  /// cannot lock for itself) is an error.
  Result<InitOutcome> initialize();
  /// Calls C_Finalize. CKR_CRYPTOKI_NOT_INITIALIZED counts as success.
  Result<void> finalize();

  /// Returns the slots, only those with a token present when `token_present`.
  Result<std::vector<CK_SLOT_ID>> slots(bool token_present = true);
  /// Returns the token in `slot`. CKR_TOKEN_NOT_PRESENT when it is out.
  Result<TokenInfo> token_info(CK_SLOT_ID slot);
  /// Returns the slot of the first token that matches (Condition::token_not_found).
  Result<CK_SLOT_ID> find_token(const TokenSelector& selector);
  /// Returns the mechanisms the token in `slot` supports.
  Result<std::vector<CK_MECHANISM_TYPE>> mechanisms(CK_SLOT_ID slot);

  /// Initialises (erases) the token in `slot` with an SO PIN and a label.
  Result<void> init_token(CK_SLOT_ID slot, const Pin& so_pin, const std::string& label);
  /// Opens a session. CKR_SESSION_COUNT when the token has no more. With an
  /// `observer`, reports C_OpenSession to it (session 0 when that fails) and
  /// sets it on the new session, so it sees every call from the first on.
  Result<Session> open_session(CK_SLOT_ID slot, SessionMode mode = SessionMode::read_write,
                               CallObserver* observer = nullptr);
  /// Closes every session of this process on `slot` (this also ends the login).
  Result<void> close_all_sessions(CK_SLOT_ID slot);

 private:
  Module(std::string path, CK_FUNCTION_LIST* functions);

  std::string path_;
  CK_FUNCTION_LIST* functions_;
};

}  // namespace hsmactor::pkcs11
