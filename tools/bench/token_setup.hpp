// The benchmark's token: a SoftHSM2 token in a private directory (throwaway by
// default), the module initialised, the user logged in, and the keys ec256,
// rsa2048 and hmac present, all made through hsmactor's own pkcs11/ layer.
//
// SOFTHSM2_CONF is pointed at the directory before C_Initialize. The login is
// held by one session kept open for the whole run: in PKCS#11 the login belongs
// to the application and ends when its last session on the token closes, so
// raw strategies that open and close sessions would otherwise log it out.
//
// Usage:
//   TokenConfig config{kDefaultModulePath, "", "hsmactor-bench", Pin("1234")};
//   auto token = BenchToken::prepare(config);       // Result<std::unique_ptr<BenchToken>>
//   auto session = (*token)->module().open_session((*token)->slot());
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "pkcs11/error.hpp"
#include "pkcs11/module.hpp"
#include "pkcs11/pin.hpp"
#include "pkcs11/session.hpp"
#include "tools/bench/workload.hpp"

namespace hsmactor::bench {

/// Which token to prepare.
struct TokenConfig {
  std::string module_path;
  /// SoftHSM2 token directory, created or reused; empty: a throwaway one.
  std::string token_dir;
  std::string label;
  Pin user_pin;
};

/// A prepared token; owns the module's initialisation and the login session.
class BenchToken {
 public:
  /// Sets SOFTHSM2_CONF, initialises the module, finds or creates the token,
  /// logs in and finds or generates the keys. Blocks (RSA generation takes a
  /// moment).
  static Result<std::unique_ptr<BenchToken>> prepare(const TokenConfig& config);

  /// Closes the login session, finalises the module if this object initialised
  /// it, and removes a throwaway directory.
  ~BenchToken();
  BenchToken(const BenchToken&) = delete;
  BenchToken& operator=(const BenchToken&) = delete;

  pkcs11::Module& module() { return *module_; }
  const std::shared_ptr<pkcs11::Module>& module_ptr() const { return module_; }
  CK_SLOT_ID slot() const { return slot_; }
  const KeyHandles& keys() const { return keys_; }
  const std::string& label() const { return label_; }
  const Pin& pin() const { return pin_; }
  /// Returns the token directory (SoftHSM2), for the report.
  const std::string& token_dir() const { return token_dir_; }
  /// Returns the token's session limit, if it reports one.
  std::optional<CK_ULONG> max_sessions() const { return max_sessions_; }

  /// Closes the session holding the login, so that another consumer in the
  /// process can have every session of a capped token (the network scenario
  /// gives hsmactor's pool and its login session all of them). With no other
  /// session open the module ends the login; restore_login() makes it again.
  void release_login();
  /// Opens the login session again and logs in, if release_login() closed it.
  Result<void> restore_login();

 private:
  BenchToken() = default;

  std::shared_ptr<pkcs11::Module> module_;
  pkcs11::Session login_session_;
  CK_SLOT_ID slot_ = 0;
  KeyHandles keys_;
  std::string label_;
  Pin pin_;
  std::string token_dir_;
  bool throwaway_dir_ = false;
  bool we_initialized_ = false;
  std::optional<CK_ULONG> max_sessions_;
};

}  // namespace hsmactor::bench
