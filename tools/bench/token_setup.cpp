#include "tools/bench/token_setup.hpp"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

namespace hsmactor::bench {
namespace {

namespace fs = std::filesystem;

// The SO PIN of tokens this tool creates; the benchmark never logs in as SO
// after creating the token.
constexpr const char* kSoPin = "12345678";

Error setup_error(const std::string& detail) {
  return Error::make(Condition::invalid_argument, detail, "prepare_token");
}

/// Returns a fresh directory under $TMPDIR (or /tmp).
Result<std::string> make_temp_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/hsmactor-bench-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (::mkdtemp(buffer.data()) == nullptr) {
    return setup_error("cannot create a directory like " + pattern);
  }
  return std::string(buffer.data());
}

/// Writes `dir`/softhsm2.conf with its token store in `dir`/tokens and points
/// SOFTHSM2_CONF at it.
Result<void> use_softhsm_dir(const std::string& dir) {
  std::error_code error;
  fs::create_directories(fs::path(dir) / "tokens", error);
  if (error) return setup_error("cannot create " + dir + "/tokens: " + error.message());
  std::string config = (fs::path(dir) / "softhsm2.conf").string();
  std::ofstream out(config);
  out << "directories.tokendir = " << (fs::path(dir) / "tokens").string() << "\n"
      << "objectstore.backend = file\n"
      << "log.level = ERROR\n"
      << "slots.removable = false\n";
  out.close();
  if (!out) return setup_error("cannot write " + config);
  ::setenv("SOFTHSM2_CONF", config.c_str(), 1);
  return success();
}

/// Initialises the first uninitialised slot as a token labelled `label` and
/// sets its user PIN; returns the token's slot.
Result<CK_SLOT_ID> create_token(pkcs11::Module& module, const std::string& label,
                                const Pin& user_pin) {
  auto slots = module.slots(false);
  if (!slots) return slots.error();
  Pin so_pin(kSoPin);
  for (CK_SLOT_ID slot : *slots) {
    auto info = module.token_info(slot);
    if (!info || info->initialized()) continue;
    if (auto made = module.init_token(slot, so_pin, label); !made) return made.error();
    // SoftHSM2 moves a token to a new slot id once it is initialised.
    auto ready = module.find_token(pkcs11::TokenSelector::by_label(label));
    if (!ready) return ready.error();
    auto session = module.open_session(*ready);
    if (!session) return session.error();
    if (auto in = session->login(CKU_SO, so_pin); !in) return in.error();
    if (auto pin = session->init_pin(user_pin); !pin) return pin.error();
    if (auto out = session->logout(); !out) return out.error();
    return *ready;
  }
  return setup_error("no free slot to create token \"" + label + "\" in");
}

Result<CK_OBJECT_HANDLE> find_key(pkcs11::Session& session, CK_OBJECT_CLASS object_class,
                                  const char* label) {
  pkcs11::AttributeList query;
  query.set_ulong(CKA_CLASS, object_class).set_string(CKA_LABEL, label);
  auto found = session.find_objects(query, 1);
  if (!found) return found.error();
  return found->empty() ? CK_INVALID_HANDLE : found->front();
}

/// Finds the benchmark's keys, generating any that are missing.
Result<KeyHandles> ensure_keys(pkcs11::Session& session) {
  KeyHandles keys;
  auto ec = find_key(session, CKO_PRIVATE_KEY, KeyLabels::ec256);
  if (!ec) return ec.error();
  keys.ec256 = *ec;
  if (keys.ec256 == CK_INVALID_HANDLE) {
    auto pair = session.generate_key_pair(pkcs11::ec_key_pair_template(
        pkcs11::EcCurve::p256, KeyLabels::ec256, bytes_of(KeyLabels::ec256)));
    if (!pair) return pair.error();
    keys.ec256 = pair->private_key;
  }
  auto rsa = find_key(session, CKO_PRIVATE_KEY, KeyLabels::rsa2048);
  if (!rsa) return rsa.error();
  keys.rsa2048 = *rsa;
  if (keys.rsa2048 == CK_INVALID_HANDLE) {
    auto pair = session.generate_key_pair(pkcs11::rsa_key_pair_template(
        2048, KeyLabels::rsa2048, bytes_of(KeyLabels::rsa2048)));
    if (!pair) return pair.error();
    keys.rsa2048 = pair->private_key;
  }
  auto hmac = find_key(session, CKO_SECRET_KEY, KeyLabels::hmac);
  if (!hmac) return hmac.error();
  keys.hmac = *hmac;
  if (keys.hmac == CK_INVALID_HANDLE) {
    auto made = session.generate_key(
        pkcs11::hmac_key_template(32, KeyLabels::hmac, bytes_of(KeyLabels::hmac)));
    if (!made) return made.error();
    keys.hmac = *made;
  }
  return keys;
}

}  // namespace

Result<std::unique_ptr<BenchToken>> BenchToken::prepare(const TokenConfig& config) {
  std::unique_ptr<BenchToken> token(new BenchToken());
  token->label_ = config.label;
  token->pin_ = config.user_pin;
  if (config.token_dir.empty()) {
    auto dir = make_temp_dir();
    if (!dir) return dir.error();
    token->token_dir_ = *dir;
    token->throwaway_dir_ = true;
  } else {
    token->token_dir_ = config.token_dir;
  }
  // Set before the module is loaded: SoftHSM2 reads it in C_Initialize.
  if (auto used = use_softhsm_dir(token->token_dir_); !used) return used.error();

  auto module = pkcs11::Module::load(config.module_path);
  if (!module) return module.error();
  token->module_ = *module;
  auto outcome = token->module_->initialize();
  if (!outcome) return outcome.error();
  token->we_initialized_ = *outcome == pkcs11::InitOutcome::initialized;

  auto slot = token->module_->find_token(pkcs11::TokenSelector::by_label(config.label));
  if (!slot && slot.error().condition() == Condition::token_not_found) {
    slot = create_token(*token->module_, config.label, config.user_pin);
  }
  if (!slot) return slot.error();
  token->slot_ = *slot;
  auto info = token->module_->token_info(token->slot_);
  if (!info) return info.error();
  token->max_sessions_ = info->max_sessions;

  auto session = token->module_->open_session(token->slot_);
  if (!session) return session.error();
  token->login_session_ = std::move(*session);
  if (auto in = token->login_session_.login(CKU_USER, config.user_pin); !in) return in.error();
  auto keys = ensure_keys(token->login_session_);
  if (!keys) return keys.error();
  token->keys_ = *keys;
  return token;
}

void BenchToken::release_login() {
  if (login_session_.is_open()) (void)login_session_.close();
}

Result<void> BenchToken::restore_login() {
  if (login_session_.is_open()) return success();
  auto session = module_->open_session(slot_);
  if (!session) return session.error();
  // CKR_USER_ALREADY_LOGGED_IN counts as success: someone else's login is as good.
  if (auto in = session->login(CKU_USER, pin_); !in) return in.error();
  login_session_ = std::move(*session);
  return success();
}

BenchToken::~BenchToken() {
  if (login_session_.is_open()) (void)login_session_.close();
  if (module_ && we_initialized_) (void)module_->finalize();
  if (throwaway_dir_) {
    std::error_code ignored;
    fs::remove_all(token_dir_, ignored);
  }
}

}  // namespace hsmactor::bench
