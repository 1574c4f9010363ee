// The fault module, driven through the raw PKCS#11 C API against a private
// SoftHSM2 token: every fault kind, the call counters and the thread tracker.
//
// The process loads libhsmactor_fault.so once (as the code under test would),
// initializes it with CKF_OS_LOCKING_OK, creates its own token under
// $TEST_TMPDIR and an EC P-256 key pair on it. Each test resets the faults,
// opens its own sessions, logs in when it needs to, and closes what it opened.
#include "testing/fault_control.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// Listeners (TeardownListener below) live behind this switch.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <catch2/catch.hpp>

#include "pkcs11/cryptoki.hpp"
#include "testing/fault_control.hpp"

namespace hsmactor::fault {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kSoftHsm = "/usr/lib/softhsm/libsofthsm2.so";
constexpr const char* kTokenLabel = "fault-test";
constexpr const char* kKeyLabel = "fault-test-ec";
const std::string kSoPin = "12345678";
const std::string kUserPin = "1234";

// DER of OID 1.2.840.10045.3.1.7 (prime256v1, NIST P-256).
const std::vector<CK_BYTE> kP256Params = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                          0xce, 0x3d, 0x03, 0x01, 0x07};

CK_UTF8CHAR_PTR utf8(const std::string& text) {
  return reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(text.data()));
}

/// Returns the token label as PKCS#11 stores it: 32 bytes, blank-padded.
std::string token_label() {
  std::string label(32, ' ');
  label.replace(0, std::strlen(kTokenLabel), kTokenLabel);
  return label;
}

/// Returns a private directory for this process's token.
std::string make_private_dir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string pattern = std::string(base != nullptr ? base : "/tmp") +
                        "/fault_module_test.XXXXXX";
  REQUIRE(mkdtemp(pattern.data()) != nullptr);
  return pattern;
}

/// The module under test with a private, initialized token and a key pair.
class Hsm {
 public:
  Hsm() {
    dir_ = make_private_dir();
    const std::string tokens = dir_ + "/tokens";
    std::filesystem::create_directories(tokens);
    const std::string conf = dir_ + "/softhsm2.conf";
    {
      std::ofstream out(conf);
      out << "directories.tokendir = " << tokens << "\n"
          << "objectstore.backend = file\n"
          << "log.level = ERROR\n";
      REQUIRE(out.good());
    }
    REQUIRE(setenv("SOFTHSM2_CONF", conf.c_str(), 1) == 0);

    // The module forwards to SoftHSM2; a missing target must fail here.
    const char* target = std::getenv("HSMACTOR_SOFTHSM2");
    REQUIRE(setenv("HSMACTOR_FAULT_TARGET",
                   target != nullptr ? target : kSoftHsm, 0) == 0);
    INFO("target module " << std::getenv("HSMACTOR_FAULT_TARGET"));
    REQUIRE(access(std::getenv("HSMACTOR_FAULT_TARGET"), R_OK) == 0);

    module_path_ = fault_module_path();
    INFO("fault module " << module_path_);
    module_ = dlopen(module_path_.c_str(), RTLD_NOW | RTLD_LOCAL);
    INFO((module_ == nullptr ? dlerror() : "loaded"));
    REQUIRE(module_ != nullptr);
    auto get_function_list = reinterpret_cast<CK_C_GetFunctionList>(
        dlsym(module_, "C_GetFunctionList"));
    REQUIRE(get_function_list != nullptr);
    REQUIRE(get_function_list(&p11_) == CKR_OK);
    REQUIRE(p11_ != nullptr);
    faults_ = std::make_unique<FaultControl>(module_path_);

    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    REQUIRE(p11_->C_Initialize(&args) == CKR_OK);
    init_token();
    create_user_and_key();
  }

  ~Hsm() {
    p11_->C_Finalize(nullptr);
    faults_.reset();
    dlclose(module_);
  }

  /// Finds the slot of our token by label. SoftHSM2 moves an initialized
  /// token to a lasting slot ID at the next C_Initialize.
  void find_slot() {
    const std::string label = token_label();
    CK_ULONG count = 0;
    REQUIRE(p11_->C_GetSlotList(CK_TRUE, nullptr, &count) == CKR_OK);
    std::vector<CK_SLOT_ID> slots(count);
    REQUIRE(p11_->C_GetSlotList(CK_TRUE, slots.data(), &count) == CKR_OK);
    bool found = false;
    for (CK_ULONG i = 0; i < count && !found; ++i) {
      CK_TOKEN_INFO info{};
      if (p11_->C_GetTokenInfo(slots[i], &info) != CKR_OK) continue;
      if ((info.flags & CKF_TOKEN_INITIALIZED) != 0 &&
          std::memcmp(info.label, label.data(), 32) == 0) {
        slot_ = slots[i];
        found = true;
      }
    }
    REQUIRE(found);
  }

  CK_FUNCTION_LIST& p11() const { return *p11_; }
  const FaultControl& faults() const { return *faults_; }
  CK_SLOT_ID slot() const { return slot_; }
  void* module() const { return module_; }
  const std::string& module_path() const { return module_path_; }
  const std::string& dir() const { return dir_; }

 private:
  void init_token() {
    CK_ULONG count = 0;
    REQUIRE(p11_->C_GetSlotList(CK_FALSE, nullptr, &count) == CKR_OK);
    REQUIRE(count > 0);
    std::vector<CK_SLOT_ID> slots(count);
    REQUIRE(p11_->C_GetSlotList(CK_FALSE, slots.data(), &count) == CKR_OK);
    std::string label = token_label();
    REQUIRE(p11_->C_InitToken(slots[0], utf8(kSoPin), kSoPin.size(),
                              utf8(label)) == CKR_OK);
    find_slot();
  }

  void create_user_and_key() {
    CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
    REQUIRE(p11_->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                nullptr, nullptr, &session) == CKR_OK);
    REQUIRE(p11_->C_Login(session, CKU_SO, utf8(kSoPin), kSoPin.size()) ==
            CKR_OK);
    REQUIRE(p11_->C_InitPIN(session, utf8(kUserPin), kUserPin.size()) ==
            CKR_OK);
    REQUIRE(p11_->C_Logout(session) == CKR_OK);
    REQUIRE(p11_->C_Login(session, CKU_USER, utf8(kUserPin),
                          kUserPin.size()) == CKR_OK);

    CK_BBOOL yes = CK_TRUE;
    std::string label = kKeyLabel;
    std::vector<CK_BYTE> params = kP256Params;
    CK_ATTRIBUTE public_template[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_VERIFY, &yes, sizeof(yes)},
        {CKA_EC_PARAMS, params.data(), params.size()},
        {CKA_LABEL, label.data(), label.size()},
    };
    CK_ATTRIBUTE private_template[] = {
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_SIGN, &yes, sizeof(yes)},
        {CKA_LABEL, label.data(), label.size()},
    };
    CK_MECHANISM mechanism{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
    CK_OBJECT_HANDLE public_key = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE private_key = CK_INVALID_HANDLE;
    REQUIRE(p11_->C_GenerateKeyPair(session, &mechanism, public_template, 4,
                                    private_template, 5, &public_key,
                                    &private_key) == CKR_OK);
    REQUIRE(p11_->C_CloseSession(session) == CKR_OK);
  }

  std::string dir_;
  std::string module_path_;
  void* module_ = nullptr;
  CK_FUNCTION_LIST* p11_ = nullptr;
  std::unique_ptr<FaultControl> faults_;
  CK_SLOT_ID slot_ = 0;
};

std::unique_ptr<Hsm> g_hsm;

/// Returns the process's module and token, setting them up on first use.
Hsm& hsm() {
  if (!g_hsm) g_hsm = std::make_unique<Hsm>();
  return *g_hsm;
}

/// Returns the module with every fault cleared, for the start of a test.
Hsm& fresh_hsm() {
  Hsm& h = hsm();
  h.faults().reset();
  return h;
}

/// A read-write session through the module, closed when it goes out of scope
/// (whatever the close answers: some tests invalidate it on purpose).
class Session {
 public:
  Session() {
    REQUIRE(hsm().p11().C_OpenSession(hsm().slot(),
                                      CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                      nullptr, nullptr, &handle_) == CKR_OK);
  }
  ~Session() {
    if (handle_ != CK_INVALID_HANDLE) hsm().p11().C_CloseSession(handle_);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  CK_SESSION_HANDLE handle() const { return handle_; }
  /// Closes the session now and returns what C_CloseSession answered.
  CK_RV close() {
    const CK_RV rv = hsm().p11().C_CloseSession(handle_);
    handle_ = CK_INVALID_HANDLE;
    return rv;
  }

 private:
  CK_SESSION_HANDLE handle_ = CK_INVALID_HANDLE;
};

/// Logs the (token-wide) user in, unless another session already did.
void login_user(CK_SESSION_HANDLE session) {
  const CK_RV rv = hsm().p11().C_Login(session, CKU_USER, utf8(kUserPin),
                                       kUserPin.size());
  REQUIRE((rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN));
}

/// Returns the handle of the test key of class `key_class` (needs login for
/// the private key).
CK_OBJECT_HANDLE find_key(CK_SESSION_HANDLE session,
                          CK_OBJECT_CLASS key_class) {
  CK_FUNCTION_LIST& p11 = hsm().p11();
  std::string label = kKeyLabel;
  CK_ATTRIBUTE query[] = {
      {CKA_CLASS, &key_class, sizeof(key_class)},
      {CKA_LABEL, label.data(), label.size()},
  };
  REQUIRE(p11.C_FindObjectsInit(session, query, 2) == CKR_OK);
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  CK_ULONG found = 0;
  REQUIRE(p11.C_FindObjects(session, &key, 1, &found) == CKR_OK);
  REQUIRE(p11.C_FindObjectsFinal(session) == CKR_OK);
  REQUIRE(found == 1);
  return key;
}

/// A 32-byte stand-in for a SHA-256 digest.
std::array<CK_BYTE, 32> digest_of(int seed) {
  std::array<CK_BYTE, 32> digest{};
  for (std::size_t i = 0; i < digest.size(); ++i) {
    digest[i] = static_cast<CK_BYTE>(seed * 31 + static_cast<int>(i));
  }
  return digest;
}

CK_RV sign_init(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key) {
  CK_MECHANISM mechanism{CKM_ECDSA, nullptr, 0};
  return hsm().p11().C_SignInit(session, &mechanism, key);
}

/// Calls C_Sign on an initialized ECDSA operation; stores the signature.
CK_RV sign(CK_SESSION_HANDLE session, int seed,
           std::vector<CK_BYTE>* signature = nullptr) {
  std::array<CK_BYTE, 32> digest = digest_of(seed);
  std::vector<CK_BYTE> buffer(64);
  CK_ULONG length = buffer.size();
  const CK_RV rv = hsm().p11().C_Sign(session, digest.data(), digest.size(),
                                      buffer.data(), &length);
  buffer.resize(length);
  if (signature != nullptr) *signature = buffer;
  return rv;
}

/// Returns the first failure of C_SignInit + C_Sign, or CKR_OK.
CK_RV sign_digest(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key, int seed,
                  std::vector<CK_BYTE>* signature = nullptr) {
  const CK_RV rv = sign_init(session, key);
  return rv != CKR_OK ? rv : sign(session, seed, signature);
}

/// Returns what C_VerifyInit + C_Verify say about `signature`.
CK_RV verify_digest(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key, int seed,
                    std::vector<CK_BYTE> signature) {
  CK_MECHANISM mechanism{CKM_ECDSA, nullptr, 0};
  CK_RV rv = hsm().p11().C_VerifyInit(session, &mechanism, key);
  if (rv != CKR_OK) return rv;
  std::array<CK_BYTE, 32> digest = digest_of(seed);
  return hsm().p11().C_Verify(session, digest.data(), digest.size(),
                              signature.data(), signature.size());
}

/// Returns what C_GenerateKeyPair answers for a private P-256 session key.
CK_RV generate_private_session_key(CK_SESSION_HANDLE session) {
  CK_BBOOL yes = CK_TRUE;
  CK_BBOOL no = CK_FALSE;
  std::vector<CK_BYTE> params = kP256Params;
  CK_ATTRIBUTE public_template[] = {
      {CKA_TOKEN, &no, sizeof(no)},
      {CKA_EC_PARAMS, params.data(), params.size()},
  };
  CK_ATTRIBUTE private_template[] = {
      {CKA_TOKEN, &no, sizeof(no)},
      {CKA_PRIVATE, &yes, sizeof(yes)},
      {CKA_SIGN, &yes, sizeof(yes)},
  };
  CK_MECHANISM mechanism{CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  CK_OBJECT_HANDLE public_key = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE private_key = CK_INVALID_HANDLE;
  const CK_RV rv = hsm().p11().C_GenerateKeyPair(
      session, &mechanism, public_template, 2, private_template, 3,
      &public_key, &private_key);
  if (rv == CKR_OK) {
    hsm().p11().C_DestroyObject(session, private_key);
    hsm().p11().C_DestroyObject(session, public_key);
  }
  return rv;
}

CK_RV generate_random(CK_SESSION_HANDLE session) {
  std::array<CK_BYTE, 16> bytes{};
  return hsm().p11().C_GenerateRandom(session, bytes.data(), bytes.size());
}

CK_RV session_info(CK_SESSION_HANDLE session, CK_SESSION_INFO* info = nullptr) {
  CK_SESSION_INFO ignored{};
  return hsm().p11().C_GetSessionInfo(session, info ? info : &ignored);
}

CK_RV open_session(CK_SESSION_HANDLE* session) {
  return hsm().p11().C_OpenSession(hsm().slot(),
                                   CKF_SERIAL_SESSION | CKF_RW_SESSION,
                                   nullptr, nullptr, session);
}

std::vector<CK_SLOT_ID> slot_list(CK_BBOOL token_present) {
  CK_ULONG count = 0;
  REQUIRE(hsm().p11().C_GetSlotList(token_present, nullptr, &count) ==
          CKR_OK);
  std::vector<CK_SLOT_ID> slots(count);
  if (count > 0) {
    REQUIRE(hsm().p11().C_GetSlotList(token_present, slots.data(), &count) ==
            CKR_OK);
  }
  slots.resize(count);
  return slots;
}

bool contains(const std::vector<CK_SLOT_ID>& slots, CK_SLOT_ID slot) {
  return std::find(slots.begin(), slots.end(), slot) != slots.end();
}

/// Returns how long `action` took.
Clock::duration time_of(const std::function<void()>& action) {
  const Clock::time_point start = Clock::now();
  action();
  return Clock::now() - start;
}

/// Waits until `condition` holds; false if it did not within 10 s.
bool wait_until(const std::function<bool()>& condition) {
  const Clock::time_point deadline = Clock::now() + 10s;
  while (!condition()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(100us);
  }
  return true;
}

/// Copies the fault module to a new file, so dlopen() loads a fresh
/// instance that reads its environment again.
std::string copy_of_module(const std::string& name) {
  const std::string copy = hsm().dir() + "/" + name;
  std::filesystem::copy_file(
      hsm().module_path(), copy,
      std::filesystem::copy_options::overwrite_existing);
  return copy;
}

// ---------------------------------------------------------------------------

TEST_CASE("the module exports C_GetFunctionList and a full 2.40 list") {
  Hsm& h = fresh_hsm();

  CHECK(dlsym(h.module(), "C_GetFunctionList") != nullptr);
  for (const char* hidden : {"C_Initialize", "C_Sign", "C_OpenSession"}) {
    INFO(hidden);
    CHECK(dlsym(h.module(), hidden) == nullptr);
  }

  CK_FUNCTION_LIST* list = nullptr;
  REQUIRE(h.p11().C_GetFunctionList(&list) == CKR_OK);
  CHECK(list == &h.p11());
  CHECK(list->version.major == 2);
  CHECK(list->version.minor == 40);
  std::array<void (*)(), 68> functions{};
  std::memcpy(functions.data(),
              reinterpret_cast<const char*>(list) +
                  offsetof(CK_FUNCTION_LIST, C_Initialize),
              sizeof(functions));
  for (std::size_t i = 0; i < functions.size(); ++i) {
    INFO("function " << i);
    CHECK(functions[i] != nullptr);
  }

  CK_INFO info{};
  REQUIRE(h.p11().C_GetInfo(&info) == CKR_OK);
  CHECK(std::string(reinterpret_cast<char*>(info.manufacturerID), 32)
            .find("SoftHSM") != std::string::npos);
}

TEST_CASE("a rule fails the chosen function after N calls for M calls") {
  Hsm& h = fresh_hsm();
  Session session;
  login_user(session.handle());
  const CK_OBJECT_HANDLE key = find_key(session.handle(), CKO_PRIVATE_KEY);

  h.faults().add_rule("C_Sign", CKR_DEVICE_REMOVED, /*after=*/2, /*times=*/1);
  CHECK(sign_digest(session.handle(), key, 1) == CKR_OK);
  CHECK(sign_digest(session.handle(), key, 2) == CKR_OK);
  REQUIRE(sign_init(session.handle(), key) == CKR_OK);
  CHECK(sign(session.handle(), 3) == CKR_DEVICE_REMOVED);

  // As in a real module, the failed C_Sign ended the operation (the fault
  // module ends SoftHSM2's too), so a new one starts.
  CHECK(sign(session.handle(), 3) == CKR_OPERATION_NOT_INITIALIZED);
  CHECK(sign_init(session.handle(), key) == CKR_OK);
  CHECK(sign(session.handle(), 3) == CKR_OK);
  CHECK(sign_digest(session.handle(), key, 4) == CKR_OK);
  CHECK(h.faults().call_count("C_Sign") == 6);
}

TEST_CASE("an injected CKR_BUFFER_TOO_SMALL leaves the operation active as a real one does") {
  // PKCS#11 2.40, 5.2 (C_Sign, and alike C_Encrypt, C_Decrypt, C_Digest):
  // the call ends the operation unless it returns CKR_BUFFER_TOO_SMALL, so
  // the caller retries with a larger buffer (pkcs11/session.cpp does).
  Hsm& h = fresh_hsm();
  Session session;
  login_user(session.handle());
  const CK_OBJECT_HANDLE key = find_key(session.handle(), CKO_PRIVATE_KEY);

  h.faults().add_rule("C_Sign", CKR_BUFFER_TOO_SMALL, /*after=*/0, /*times=*/1);
  REQUIRE(sign_init(session.handle(), key) == CKR_OK);
  CHECK(sign(session.handle(), 1) == CKR_BUFFER_TOO_SMALL);
  std::vector<CK_BYTE> signature;
  CHECK(sign(session.handle(), 1, &signature) == CKR_OK);
  CHECK(verify_digest(session.handle(), find_key(session.handle(), CKO_PUBLIC_KEY), 1,
                      signature) == CKR_OK);

  h.faults().add_rule("C_Digest", CKR_BUFFER_TOO_SMALL, /*after=*/0, /*times=*/1);
  CK_MECHANISM sha256{CKM_SHA256, nullptr, 0};
  REQUIRE(h.p11().C_DigestInit(session.handle(), &sha256) == CKR_OK);
  std::array<CK_BYTE, 32> data = digest_of(2);
  std::vector<CK_BYTE> digest(32);
  CK_ULONG length = digest.size();
  CHECK(h.p11().C_Digest(session.handle(), data.data(), data.size(), digest.data(), &length) ==
        CKR_BUFFER_TOO_SMALL);
  length = digest.size();
  CHECK(h.p11().C_Digest(session.handle(), data.data(), data.size(), digest.data(), &length) ==
        CKR_OK);
  CHECK(length == 32);
}

TEST_CASE("a rule with times=0 fails every call until reset") {
  Hsm& h = fresh_hsm();
  Session session;

  h.faults().add_rule("C_GenerateRandom", CKR_DEVICE_ERROR, /*after=*/1,
                      /*times=*/0);
  CHECK(generate_random(session.handle()) == CKR_OK);
  for (int i = 0; i < 5; ++i) {
    CHECK(generate_random(session.handle()) == CKR_DEVICE_ERROR);
  }
  h.faults().reset();
  CHECK(generate_random(session.handle()) == CKR_OK);
}

TEST_CASE("a plan installs rules by CKR_ name or number") {
  Hsm& h = fresh_hsm();
  Session session;

  SECTION("the HSMACTOR_FAULT_PLAN example") {
    h.faults().load_plan(
        "C_Sign: rv=CKR_DEVICE_REMOVED after=2 times=1; "
        "C_Login: rv=CKR_PIN_INCORRECT");
    CHECK(h.p11().C_Login(session.handle(), CKU_USER, utf8(kUserPin),
                          kUserPin.size()) == CKR_PIN_INCORRECT);
    login_user(session.handle());
    const CK_OBJECT_HANDLE key = find_key(session.handle(), CKO_PRIVATE_KEY);
    CHECK(sign_digest(session.handle(), key, 1) == CKR_OK);
    CHECK(sign_digest(session.handle(), key, 2) == CKR_OK);
    REQUIRE(sign_init(session.handle(), key) == CKR_OK);
    CHECK(sign(session.handle(), 3) == CKR_DEVICE_REMOVED);
    CHECK(sign(session.handle(), 3) == CKR_OPERATION_NOT_INITIALIZED);
  }

  SECTION("numeric return values and spacing") {
    h.faults().load_plan("  C_GenerateRandom :rv=0x30   times=2 ;; ");
    CHECK(generate_random(session.handle()) == CKR_DEVICE_ERROR);
    CHECK(generate_random(session.handle()) == CKR_DEVICE_ERROR);
    CHECK(generate_random(session.handle()) == CKR_OK);
  }

  SECTION("a malformed plan is refused whole") {
    const char* bad_plans[] = {
        "C_GenerateRandom: rv=CKR_DEVICE_ERROR; C_Sgin: rv=CKR_OK",
        "C_GenerateRandom: rv=CKR_DEVICE_ERROR; C_Sign: rv=CKR_NO_SUCH_CODE",
        "C_GenerateRandom: rv=CKR_DEVICE_ERROR; C_Sign rv=CKR_GENERAL_ERROR",
        "C_GenerateRandom: rv=CKR_DEVICE_ERROR; C_Sign: after=2",
        "C_GenerateRandom: rv=CKR_DEVICE_ERROR; C_Sign: rv=6 after=two",
        "C_GenerateRandom: rv=CKR_DEVICE_ERROR; C_Sign: rv=6 bogus=1",
        "C_GenerateRandom: rv=CKR_DEVICE_ERROR; *: rv=CKR_GENERAL_ERROR",
    };
    for (const char* plan : bad_plans) {
      INFO(plan);
      CHECK_THROWS_AS(h.faults().load_plan(plan), std::invalid_argument);
    }
    CHECK(generate_random(session.handle()) == CKR_OK);
  }
}

TEST_CASE("HSMACTOR_FAULT_PLAN is read when the module loads") {
  Hsm& h = fresh_hsm();

  SECTION("a valid plan faults the fresh instance only") {
    const std::string copy = copy_of_module("libfault_with_plan.so");
    REQUIRE(setenv("HSMACTOR_FAULT_PLAN",
                   "C_GenerateRandom: rv=CKR_DEVICE_MEMORY", 1) == 0);
    void* module = dlopen(copy.c_str(), RTLD_NOW | RTLD_LOCAL);
    unsetenv("HSMACTOR_FAULT_PLAN");
    REQUIRE(module != nullptr);
    auto get_function_list = reinterpret_cast<CK_C_GetFunctionList>(
        dlsym(module, "C_GetFunctionList"));
    REQUIRE(get_function_list != nullptr);
    CK_FUNCTION_LIST* p11 = nullptr;
    REQUIRE(get_function_list(&p11) == CKR_OK);

    {
      FaultControl copy_faults(copy);
      // SoftHSM2 is shared with the first instance, which initialized it.
      CK_C_INITIALIZE_ARGS args{};
      args.flags = CKF_OS_LOCKING_OK;
      CHECK(p11->C_Initialize(&args) == CKR_CRYPTOKI_ALREADY_INITIALIZED);
      CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
      REQUIRE(p11->C_OpenSession(h.slot(), CKF_SERIAL_SESSION, nullptr,
                                 nullptr, &session) == CKR_OK);
      std::array<CK_BYTE, 8> bytes{};
      CHECK(p11->C_GenerateRandom(session, bytes.data(), bytes.size()) ==
            CKR_DEVICE_MEMORY);
      CHECK(p11->C_GenerateRandom(session, bytes.data(), bytes.size()) ==
            CKR_OK);
      CHECK(p11->C_CloseSession(session) == CKR_OK);
      CHECK(copy_faults.call_count("C_GenerateRandom") == 2);
      CHECK(h.faults().call_count("C_GenerateRandom") == 0);
    }
    dlclose(module);
  }

  SECTION("a malformed plan makes C_GetFunctionList fail") {
    const std::string copy = copy_of_module("libfault_with_bad_plan.so");
    REQUIRE(setenv("HSMACTOR_FAULT_PLAN", "C_Sign: rv=CKR_NOT_A_CODE", 1) ==
            0);
    void* module = dlopen(copy.c_str(), RTLD_NOW | RTLD_LOCAL);
    REQUIRE(module != nullptr);
    auto get_function_list = reinterpret_cast<CK_C_GetFunctionList>(
        dlsym(module, "C_GetFunctionList"));
    REQUIRE(get_function_list != nullptr);
    CK_FUNCTION_LIST* p11 = nullptr;
    CHECK(get_function_list(&p11) == CKR_GENERAL_ERROR);
    unsetenv("HSMACTOR_FAULT_PLAN");
    dlclose(module);
  }
}

TEST_CASE("invalidating all sessions closes them in the target") {
  Hsm& h = fresh_hsm();
  REQUIRE(h.faults().open_sessions() == 0);
  Session a;
  Session b;
  login_user(a.handle());
  REQUIRE(h.faults().open_sessions() == 2);

  h.faults().invalidate_all_sessions();

  CHECK(session_info(a.handle()) == CKR_SESSION_HANDLE_INVALID);
  CHECK(session_info(b.handle()) == CKR_SESSION_HANDLE_INVALID);
  CHECK(generate_random(b.handle()) == CKR_SESSION_HANDLE_INVALID);
  CHECK(a.close() == CKR_SESSION_HANDLE_INVALID);
  CHECK(h.faults().open_sessions() == 0);

  // The target's sessions are really gone: with them went the login.
  Session c;
  CK_SESSION_INFO info{};
  REQUIRE(session_info(c.handle(), &info) == CKR_OK);
  CHECK(info.state == CKS_RW_PUBLIC_SESSION);
}

TEST_CASE("invalidating one session leaves the others working") {
  Hsm& h = fresh_hsm();
  Session a;
  Session b;

  h.faults().invalidate_session(a.handle());

  CHECK(session_info(a.handle()) == CKR_SESSION_HANDLE_INVALID);
  CHECK(generate_random(a.handle()) == CKR_SESSION_HANDLE_INVALID);
  CHECK(session_info(b.handle()) == CKR_OK);
  CHECK(h.faults().open_sessions() == 1);
  CHECK(a.close() == CKR_SESSION_HANDLE_INVALID);

  // The module never hands out a handle twice, even if the target does.
  Session c;
  CHECK(c.handle() != a.handle());
  CHECK(session_info(c.handle()) == CKR_OK);
  CHECK(b.close() == CKR_OK);
}

TEST_CASE("a session invalidated while a thread is inside it is closed when "
          "that thread leaves") {
  Hsm& h = fresh_hsm();
  auto session = std::make_unique<Session>();
  login_user(session->handle());
  CK_MECHANISM sha256{CKM_SHA256, nullptr, 0};
  REQUIRE(h.p11().C_DigestInit(session->handle(), &sha256) == CKR_OK);
  h.faults().set_latency("C_DigestUpdate", 300ms);

  std::atomic<CK_RV> update_rv{CKR_GENERAL_ERROR};
  std::thread inside([&] {
    std::array<CK_BYTE, 4> part{1, 2, 3, 4};
    update_rv = h.p11().C_DigestUpdate(session->handle(), part.data(),
                                       part.size());
  });
  REQUIRE(wait_until([&] { return h.faults().threads_inside() == 1; }));
  h.faults().invalidate_session(session->handle());
  CHECK(h.faults().open_sessions() == 0);
  inside.join();

  // The call already inside finished on the target's session ...
  CHECK(update_rv == CKR_OK);
  CHECK(session_info(session->handle()) == CKR_SESSION_HANDLE_INVALID);
  CHECK(session->close() == CKR_SESSION_HANDLE_INVALID);
  session.reset();
  // ... which was closed as it left: it was the last, so the login went too.
  Session next;
  CK_SESSION_INFO info{};
  REQUIRE(session_info(next.handle(), &info) == CKR_OK);
  CHECK(info.state == CKS_RW_PUBLIC_SESSION);
}

TEST_CASE("a removed token answers DEVICE_REMOVED and TOKEN_NOT_PRESENT; "
          "after reinsertion old sessions are invalid and login is gone") {
  Hsm& h = fresh_hsm();
  Session old_session;
  login_user(old_session.handle());
  const CK_OBJECT_HANDLE key = find_key(old_session.handle(), CKO_PRIVATE_KEY);
  REQUIRE(sign_digest(old_session.handle(), key, 1) == CKR_OK);

  h.faults().remove_token();

  CHECK(session_info(old_session.handle()) == CKR_DEVICE_REMOVED);
  CHECK(sign_init(old_session.handle(), key) == CKR_DEVICE_REMOVED);
  CHECK(h.p11().C_Login(old_session.handle(), CKU_USER, utf8(kUserPin),
                        kUserPin.size()) == CKR_DEVICE_REMOVED);
  CK_SESSION_HANDLE refused = CK_INVALID_HANDLE;
  CHECK(open_session(&refused) == CKR_TOKEN_NOT_PRESENT);
  CK_TOKEN_INFO token{};
  CHECK(h.p11().C_GetTokenInfo(h.slot(), &token) == CKR_TOKEN_NOT_PRESENT);
  CHECK_FALSE(contains(slot_list(CK_TRUE), h.slot()));
  CHECK(contains(slot_list(CK_FALSE), h.slot()));
  CK_SLOT_INFO slot_info{};
  REQUIRE(h.p11().C_GetSlotInfo(h.slot(), &slot_info) == CKR_OK);
  CHECK((slot_info.flags & CKF_TOKEN_PRESENT) == 0);
  CHECK(h.faults().open_sessions() == 0);

  h.faults().insert_token();

  CHECK(session_info(old_session.handle()) == CKR_SESSION_HANDLE_INVALID);
  CHECK(old_session.close() == CKR_SESSION_HANDLE_INVALID);
  CHECK(h.p11().C_GetTokenInfo(h.slot(), &token) == CKR_OK);
  CHECK(contains(slot_list(CK_TRUE), h.slot()));
  REQUIRE(h.p11().C_GetSlotInfo(h.slot(), &slot_info) == CKR_OK);
  CHECK((slot_info.flags & CKF_TOKEN_PRESENT) != 0);

  // The target logged out with its last session. SoftHSM2 drops the handles
  // of private objects at logout, so the key handle cached before the
  // removal is gone, the key is invisible until login, and work that needs
  // login is refused.
  Session fresh;
  CK_SESSION_INFO info{};
  REQUIRE(session_info(fresh.handle(), &info) == CKR_OK);
  CHECK(info.state == CKS_RW_PUBLIC_SESSION);
  CHECK(sign_init(fresh.handle(), key) == CKR_OBJECT_HANDLE_INVALID);
  CHECK(generate_private_session_key(fresh.handle()) == CKR_USER_NOT_LOGGED_IN);
  login_user(fresh.handle());
  const CK_OBJECT_HANDLE same_key = find_key(fresh.handle(), CKO_PRIVATE_KEY);
  CHECK(sign_digest(fresh.handle(), same_key, 2) == CKR_OK);
}

TEST_CASE("a session cap is reported and enforced") {
  Hsm& h = fresh_hsm();
  REQUIRE(h.faults().open_sessions() == 0);

  h.faults().set_max_sessions(2);
  CK_TOKEN_INFO token{};
  REQUIRE(h.p11().C_GetTokenInfo(h.slot(), &token) == CKR_OK);
  CHECK(token.ulMaxSessionCount == 2);
  CHECK(token.ulMaxRwSessionCount == 2);

  auto a = std::make_unique<Session>();
  Session b;
  CK_SESSION_HANDLE third = CK_INVALID_HANDLE;
  CHECK(open_session(&third) == CKR_SESSION_COUNT);

  CHECK(a->close() == CKR_OK);
  a.reset();
  Session c;
  CHECK(open_session(&third) == CKR_SESSION_COUNT);

  h.faults().set_max_sessions(0);
  REQUIRE(open_session(&third) == CKR_OK);
  CHECK(h.faults().open_sessions() == 3);
  CHECK(h.p11().C_CloseSession(third) == CKR_OK);
}

TEST_CASE("latency delays a function by at least the set amount") {
  Hsm& h = fresh_hsm();
  Session session;

  SECTION("one function") {
    h.faults().set_latency("C_GenerateRandom", 50ms);
    const auto took = time_of([&] {
      CHECK(generate_random(session.handle()) == CKR_OK);
    });
    CHECK(took >= 50ms);
  }

  SECTION("every function") {
    h.faults().set_latency_all(20ms);
    const auto took = time_of([&] {
      CK_INFO info{};
      CHECK(h.p11().C_GetInfo(&info) == CKR_OK);
    });
    CHECK(took >= 20ms);
  }

  SECTION("from a plan") {
    h.faults().load_plan("C_GetSessionInfo: latency_us=30000");
    const auto took =
        time_of([&] { CHECK(session_info(session.handle()) == CKR_OK); });
    CHECK(took >= 30ms);
  }

  SECTION("faulted calls wait too") {
    h.faults().set_latency("C_GenerateRandom", 40ms);
    h.faults().add_rule("C_GenerateRandom", CKR_DEVICE_ERROR);
    const auto took = time_of([&] {
      CHECK(generate_random(session.handle()) == CKR_DEVICE_ERROR);
    });
    CHECK(took >= 40ms);
  }
  h.faults().reset();
}

TEST_CASE("calls are counted per function, faulted ones included") {
  Hsm& h = fresh_hsm();
  CK_INFO info{};
  for (int i = 0; i < 3; ++i) REQUIRE(h.p11().C_GetInfo(&info) == CKR_OK);
  CHECK(h.faults().call_count("C_GetInfo") == 3);

  h.faults().add_rule("C_GetInfo", CKR_GENERAL_ERROR);
  CHECK(h.p11().C_GetInfo(&info) == CKR_GENERAL_ERROR);
  CHECK(h.faults().call_count("C_GetInfo") == 4);

  {
    Session session;
    CHECK(h.faults().call_count("C_OpenSession") == 1);
    CHECK(session_info(session.handle()) == CKR_OK);
  }
  CHECK(h.faults().call_count("C_GetSessionInfo") == 1);
  CHECK(h.faults().call_count("C_CloseSession") == 1);
  CHECK(h.faults().call_count("C_Sign") == 0);

  CK_FUNCTION_LIST* list = nullptr;
  REQUIRE(h.p11().C_GetFunctionList(&list) == CKR_OK);
  CHECK(h.faults().call_count("C_GetFunctionList") == 1);

  h.faults().reset_counts();
  CHECK(h.faults().call_count("C_GetInfo") == 0);
  CHECK_THROWS_AS(h.faults().call_count("C_Bogus"), std::invalid_argument);
}

TEST_CASE("two threads inside one session are reported as a violation") {
  Hsm& h = fresh_hsm();
  Session session;
  CK_MECHANISM sha256{CKM_SHA256, nullptr, 0};
  REQUIRE(h.p11().C_DigestInit(session.handle(), &sha256) == CKR_OK);
  h.faults().set_latency("C_DigestUpdate", 1s);
  h.faults().reset_counts();

  std::atomic<CK_RV> update_rv{CKR_GENERAL_ERROR};
  std::thread slow([&] {
    std::array<CK_BYTE, 4> part{1, 2, 3, 4};
    update_rv = h.p11().C_DigestUpdate(session.handle(), part.data(),
                                       part.size());
  });
  // The other thread now sleeps inside C_DigestUpdate on the session.
  REQUIRE(wait_until([&] { return h.faults().threads_inside() == 1; }));
  CHECK(session_info(session.handle()) == CKR_OK);
  slow.join();

  CHECK(update_rv == CKR_OK);
  CHECK(h.faults().violations() == 1);
  const std::string violation = h.faults().last_violation();
  INFO(violation);
  CHECK(violation.find("C_GetSessionInfo on session " +
                       std::to_string(session.handle())) == 0);
  CHECK(violation.find("is inside C_DigestUpdate") != std::string::npos);
  CHECK(h.faults().max_concurrency() == 2);
}

TEST_CASE("two threads on two sessions run in parallel without violations") {
  Hsm& h = fresh_hsm();
  Session first;
  Session second;
  CK_MECHANISM sha256{CKM_SHA256, nullptr, 0};
  REQUIRE(h.p11().C_DigestInit(first.handle(), &sha256) == CKR_OK);
  REQUIRE(h.p11().C_DigestInit(second.handle(), &sha256) == CKR_OK);
  h.faults().set_latency("C_DigestUpdate", 1s);
  h.faults().reset_counts();

  std::array<CK_BYTE, 4> part{1, 2, 3, 4};
  std::atomic<CK_RV> update_rv{CKR_GENERAL_ERROR};
  std::thread other([&] {
    update_rv =
        h.p11().C_DigestUpdate(first.handle(), part.data(), part.size());
  });
  REQUIRE(wait_until([&] { return h.faults().threads_inside() == 1; }));
  CHECK(h.p11().C_DigestUpdate(second.handle(), part.data(), part.size()) ==
        CKR_OK);
  other.join();

  CHECK(update_rv == CKR_OK);
  CHECK(h.faults().violations() == 0);
  CHECK(h.faults().last_violation().empty());
  CHECK(h.faults().max_concurrency() == 2);
}

TEST_CASE("many threads sign on their own sessions; every signature verifies") {
  Hsm& h = fresh_hsm();
  REQUIRE(h.faults().open_sessions() == 0);
  h.faults().set_latency("C_Sign", 1ms);
  constexpr int kThreads = 4;
  constexpr int kSignatures = 25;

  std::atomic<int> verified{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      CK_SESSION_HANDLE session = CK_INVALID_HANDLE;
      if (open_session(&session) != CKR_OK) return;
      const CK_RV login = h.p11().C_Login(session, CKU_USER, utf8(kUserPin),
                                          kUserPin.size());
      if (login == CKR_OK || login == CKR_USER_ALREADY_LOGGED_IN) {
        CK_OBJECT_HANDLE keys[2] = {CK_INVALID_HANDLE, CK_INVALID_HANDLE};
        CK_OBJECT_CLASS classes[2] = {CKO_PRIVATE_KEY, CKO_PUBLIC_KEY};
        std::string label = kKeyLabel;
        for (int k = 0; k < 2; ++k) {
          CK_ATTRIBUTE query[] = {
              {CKA_CLASS, &classes[k], sizeof(classes[k])},
              {CKA_LABEL, label.data(), label.size()},
          };
          CK_ULONG found = 0;
          h.p11().C_FindObjectsInit(session, query, 2);
          h.p11().C_FindObjects(session, &keys[k], 1, &found);
          h.p11().C_FindObjectsFinal(session);
        }
        for (int i = 0; i < kSignatures; ++i) {
          std::vector<CK_BYTE> signature;
          const int seed = t * 1000 + i;
          if (sign_digest(session, keys[0], seed, &signature) == CKR_OK &&
              verify_digest(session, keys[1], seed, signature) == CKR_OK) {
            ++verified;
          }
        }
      }
      h.p11().C_CloseSession(session);
    });
  }
  for (std::thread& thread : threads) thread.join();

  CHECK(verified == kThreads * kSignatures);
  CHECK(h.faults().violations() == 0);
  CHECK(h.faults().call_count("C_Sign") == kThreads * kSignatures);
  CHECK(h.faults().open_sessions() == 0);
}

TEST_CASE("C_Finalize forgets every session and C_Initialize starts afresh") {
  Hsm& h = fresh_hsm();
  Session session;
  REQUIRE(h.faults().open_sessions() == 1);

  REQUIRE(h.p11().C_Finalize(nullptr) == CKR_OK);
  CHECK(h.faults().open_sessions() == 0);
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  REQUIRE(h.p11().C_Initialize(&args) == CKR_OK);
  // SoftHSM2 gives an initialized token its lasting slot ID at C_Initialize.
  h.find_slot();

  CHECK(session_info(session.handle()) == CKR_SESSION_HANDLE_INVALID);
  Session next;
  CHECK(session_info(next.handle()) == CKR_OK);
}

/// Finalizes and unloads the module after the last test, while everything
/// is still alive, so its unload path (closing the target) runs under the
/// sanitizers too.
class TeardownListener : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;
  void testRunEnded(const Catch::TestRunStats&) override { g_hsm.reset(); }
};
CATCH_REGISTER_LISTENER(TeardownListener)

}  // namespace
}  // namespace hsmactor::fault
