// Private SoftHSM2 tokens for tests, created through hsmactor's own pkcs11/.
//
// Each test process gets its own token directory under $TEST_TMPDIR and points
// SOFTHSM2_CONF at it before anything initialises SoftHSM2. A missing module or
// a failed set-up throws, so a test never passes vacuously.
//
// Usage:
//   TestToken token = create_test_token("signer");
//   LoggedInSession s(token);                       // module initialised, user logged in
//   TestKeys keys = create_test_keys(s.session());  // EC, RSA, HMAC, AES keys
#pragma once

#include <memory>
#include <string>

#include "pkcs11/module.hpp"
#include "pkcs11/pin.hpp"
#include "pkcs11/session.hpp"

namespace hsmactor::testing {

/// Returns SoftHSM2's path ($HSMACTOR_SOFTHSM2 or the Debian path); throws if missing.
std::string softhsm2_module_path();

/// Writes a SoftHSM2 config with a private token directory and sets
/// SOFTHSM2_CONF, once per process. Returns the config path.
std::string use_private_softhsm_config();

/// A token made for one test.
struct TestToken {
  std::string module_path;
  std::string label;
  Pin so_pin;
  Pin user_pin;
};

/// Initialises a new token labelled `label` with SO PIN "12345678" and user PIN
/// "1234" on the module at `module_path` (SoftHSM2 by default, or a module that
/// forwards to it). Leaves the module finalised if it found it so.
TestToken create_test_token(const std::string& label, const std::string& module_path = "");

/// As create_test_token, in the token directory SOFTHSM2_CONF already names
/// (for tools that choose it themselves); sets no configuration.
TestToken init_test_token(const std::string& label, const std::string& module_path = "");

/// A module initialised for the test and one user-logged-in session; finalises
/// on destruction if it initialised the module.
class LoggedInSession {
 public:
  explicit LoggedInSession(const TestToken& token);
  ~LoggedInSession();
  LoggedInSession(const LoggedInSession&) = delete;
  LoggedInSession& operator=(const LoggedInSession&) = delete;

  pkcs11::Module& module() { return *module_; }
  std::shared_ptr<pkcs11::Module> module_ptr() { return module_; }
  pkcs11::Session& session() { return session_; }
  CK_SLOT_ID slot() const { return slot_; }

 private:
  std::shared_ptr<pkcs11::Module> module_;
  pkcs11::Session session_;
  CK_SLOT_ID slot_ = 0;
  bool we_initialized_ = false;
};

/// Labels of the keys create_test_keys makes.
struct TestKeyLabels {
  static constexpr const char* ec256 = "ec256";
  static constexpr const char* ec384 = "ec384";
  static constexpr const char* rsa2048 = "rsa2048";
  static constexpr const char* hmac = "hmac";
  static constexpr const char* aes = "aes";
};

/// Handles of the standard test keys (persistent token objects).
struct TestKeys {
  pkcs11::KeyPairHandles ec256;
  pkcs11::KeyPairHandles ec384;
  pkcs11::KeyPairHandles rsa2048;
  CK_OBJECT_HANDLE hmac = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE aes = CK_INVALID_HANDLE;
  /// The known values of the imported secret keys, to check results outside the HSM.
  Bytes hmac_value;
  Bytes aes_value;
};

/// Generates EC P-256, P-384 and RSA-2048 key pairs and imports an HMAC and an
/// AES key of known value, labelled as in TestKeyLabels.
TestKeys create_test_keys(pkcs11::Session& session);

/// Returns the runfiles path of a file in this workspace ("tests/pkcs11/x.so").
std::string runfile(const std::string& workspace_relative_path);

}  // namespace hsmactor::testing
