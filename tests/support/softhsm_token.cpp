#include "tests/support/softhsm_token.hpp"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>

namespace hsmactor::testing {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error("test token set-up failed: " + what);
}

template <class T>
T must(Result<T> result, const std::string& what) {
  if (!result) fail(what + ": " + result.error().message());
  return std::move(result).value();
}

void must(Result<void> result, const std::string& what) {
  if (!result) fail(what + ": " + result.error().message());
}

}  // namespace

std::string softhsm2_module_path() {
  const char* configured = std::getenv("HSMACTOR_SOFTHSM2");
  std::string path = configured && *configured ? configured : "/usr/lib/softhsm/libsofthsm2.so";
  if (!fs::exists(path)) fail("SoftHSM2 module not found at " + path + " (install softhsm2)");
  return path;
}

std::string use_private_softhsm_config() {
  static std::once_flag once;
  static std::string config_path;
  std::call_once(once, [] {
    const char* tmp = std::getenv("TEST_TMPDIR");
    fs::path base = tmp && *tmp ? fs::path(tmp) : fs::temp_directory_path();
    fs::path dir = base / ("softhsm-" + std::to_string(::getpid()));
    fs::create_directories(dir / "tokens");
    config_path = (dir / "softhsm2.conf").string();
    std::ofstream conf(config_path);
    conf << "directories.tokendir = " << (dir / "tokens").string() << "\n"
         << "objectstore.backend = file\n"
         << "log.level = ERROR\n"
         << "slots.removable = false\n";
    if (!conf) fail("cannot write " + config_path);
    ::setenv("SOFTHSM2_CONF", config_path.c_str(), 1);
  });
  return config_path;
}

TestToken create_test_token(const std::string& label, const std::string& module_path) {
  use_private_softhsm_config();
  return init_test_token(label, module_path);
}

TestToken init_test_token(const std::string& label, const std::string& module_path) {
  TestToken token;
  token.module_path = module_path.empty() ? softhsm2_module_path() : module_path;
  token.label = label;
  token.so_pin = Pin("12345678");
  token.user_pin = Pin("1234");

  auto module = must(pkcs11::Module::load(token.module_path), "load module");
  auto outcome = must(module->initialize(), "C_Initialize");
  // SoftHSM2 always offers one free, uninitialised slot; use it.
  auto all_slots = must(module->slots(false), "C_GetSlotList");
  bool done = false;
  for (CK_SLOT_ID slot : all_slots) {
    auto info = module->token_info(slot);
    if (!info || info->initialized()) continue;
    must(module->init_token(slot, token.so_pin, label), "C_InitToken");
    // SoftHSM2 renumbers the slot after initialisation: find it by label.
    CK_SLOT_ID ready = must(module->find_token(pkcs11::TokenSelector::by_label(label)), "find token");
    auto session = must(module->open_session(ready), "C_OpenSession");
    must(session.login(CKU_SO, token.so_pin), "C_Login SO");
    must(session.init_pin(token.user_pin), "C_InitPIN");
    must(session.logout(), "C_Logout SO");
    done = true;
    break;
  }
  if (outcome == pkcs11::InitOutcome::initialized) must(module->finalize(), "C_Finalize");
  if (!done) fail("no free slot for token " + label);
  return token;
}

LoggedInSession::LoggedInSession(const TestToken& token) {
  module_ = must(pkcs11::Module::load(token.module_path), "load module");
  we_initialized_ = must(module_->initialize(), "C_Initialize") == pkcs11::InitOutcome::initialized;
  slot_ = must(module_->find_token(pkcs11::TokenSelector::by_label(token.label)), "find token");
  session_ = must(module_->open_session(slot_), "C_OpenSession");
  must(session_.login(CKU_USER, token.user_pin), "C_Login");
}

LoggedInSession::~LoggedInSession() {
  (void)session_.close();
  if (we_initialized_) (void)module_->finalize();
}

TestKeys create_test_keys(pkcs11::Session& session) {
  TestKeys keys;
  keys.ec256 = must(session.generate_key_pair(pkcs11::ec_key_pair_template(
                        pkcs11::EcCurve::p256, TestKeyLabels::ec256, bytes_of("ec256"))),
                    "generate EC P-256");
  keys.ec384 = must(session.generate_key_pair(pkcs11::ec_key_pair_template(
                        pkcs11::EcCurve::p384, TestKeyLabels::ec384, bytes_of("ec384"))),
                    "generate EC P-384");
  keys.rsa2048 = must(session.generate_key_pair(pkcs11::rsa_key_pair_template(
                          2048, TestKeyLabels::rsa2048, bytes_of("rsa2048"))),
                      "generate RSA-2048");
  keys.hmac_value = must(session.random(32), "random HMAC key");
  keys.hmac = must(session.create_object(pkcs11::secret_key_import_template(
                       CKK_GENERIC_SECRET, keys.hmac_value, TestKeyLabels::hmac, bytes_of("hmac"))),
                   "import HMAC key");
  keys.aes_value = must(session.random(32), "random AES key");
  keys.aes = must(session.create_object(pkcs11::secret_key_import_template(
                      CKK_AES, keys.aes_value, TestKeyLabels::aes, bytes_of("aes"))),
                  "import AES key");
  return keys;
}

std::string runfile(const std::string& workspace_relative_path) {
  for (const char* variable : {"TEST_SRCDIR", "RUNFILES_DIR"}) {
    const char* root = std::getenv(variable);
    if (root && *root) {
      fs::path candidate = fs::path(root) / "hsmactor" / workspace_relative_path;
      if (fs::exists(candidate)) return candidate.string();
    }
  }
  std::error_code ignored;
  fs::path self = fs::read_symlink("/proc/self/exe", ignored);
  fs::path candidate = fs::path(self.string() + ".runfiles") / "hsmactor" / workspace_relative_path;
  if (fs::exists(candidate)) return candidate.string();
  if (fs::exists(workspace_relative_path)) return fs::absolute(workspace_relative_path).string();
  fail("runfile not found: " + workspace_relative_path);
}

}  // namespace hsmactor::testing
