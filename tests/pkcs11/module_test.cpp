#include "pkcs11/module.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <catch2/catch.hpp>

#include "tests/pkcs11/catch_result.hpp"
#include "tests/support/softhsm_token.hpp"

// Module tests initialise and finalise SoftHSM2 themselves, so none of them
// keeps the module initialised past its own end.

namespace hsmactor::pkcs11 {
namespace {

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using testing::must;

fs::path temp_dir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir && *dir ? fs::path(dir) : fs::temp_directory_path();
}

/// The token of this binary; made once (making it leaves SoftHSM2 finalised).
const testing::TestToken& module_token() {
  static const testing::TestToken token = testing::create_test_token("module tests");
  return token;
}

/// SoftHSM2 loaded and initialised for one test case, finalised at its end.
class InitializedModule {
 public:
  InitializedModule() : module_(must(Module::load(module_token().module_path))) {
    REQUIRE(must(module_->initialize()) == InitOutcome::initialized);
  }
  ~InitializedModule() { (void)module_->finalize(); }
  InitializedModule(const InitializedModule&) = delete;
  InitializedModule& operator=(const InitializedModule&) = delete;

  Module* operator->() { return module_.get(); }
  Module& operator*() { return *module_; }

 private:
  std::shared_ptr<Module> module_;
};

TEST_CASE("a module path that does not exist fails to load and names the path") {
  std::string missing = (temp_dir() / "no-such-pkcs11-module.so").string();
  auto loaded = Module::load(missing);

  Error error = testing::error_of(loaded);
  CHECK(error.condition() == Condition::module_load_failed);
  CHECK(error.category() == Category::give_up);
  CHECK(error.rv() == CKR_OK);
  CHECK_THAT(error.message(), Contains(missing) && Contains("No such file"));
}

TEST_CASE("an empty module path fails to load") {
  CHECK(testing::error_of(Module::load("")).condition() == Condition::module_load_failed);
}

TEST_CASE("a file that is not a shared library fails to load with dlopen's reason") {
  fs::path text = temp_dir() / "not-a-library.so";
  std::ofstream(text) << "this is a text file, not an ELF shared object\n";
  auto loaded = Module::load(text.string());

  Error error = testing::error_of(loaded);
  CHECK(error.condition() == Condition::module_load_failed);
  CHECK_THAT(error.message(),
             Contains(fs::canonical(text).string()) && Contains("not a loadable shared library"));
}

TEST_CASE("a real shared library without C_GetFunctionList is not a PKCS#11 module") {
  std::string library;
  for (const char* candidate : {"/usr/lib/x86_64-linux-gnu/libz.so.1",
                                "/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/libz.so.1"}) {
    if (fs::exists(candidate)) {
      library = candidate;
      break;
    }
  }
  REQUIRE_FALSE(library.empty());  // zlib is part of every Debian system
  auto loaded = Module::load(library);

  Error error = testing::error_of(loaded);
  CHECK(error.condition() == Condition::module_load_failed);
  CHECK_THAT(error.message(), Contains("has no C_GetFunctionList") &&
                                  Contains("not a PKCS#11 module") &&
                                  Contains(fs::canonical(library).string()));
}

TEST_CASE("two spellings of one module load as one real path") {
  fs::path link = temp_dir() / "softhsm-link.so";
  fs::remove(link);
  fs::create_symlink(module_token().module_path, link);

  auto through_link = must(Module::load(link.string()));
  auto direct = must(Module::load(module_token().module_path));
  CHECK(through_link->path() == direct->path());
  CHECK(through_link->path() == fs::canonical(module_token().module_path).string());
  CHECK(through_link->functions() == direct->functions());
  CHECK(must(Module::real_path(link.string())) == direct->path());
}

TEST_CASE("the first C_Initialize owns the module and a second one finds it initialised") {
  auto module = must(Module::load(module_token().module_path));
  CHECK(must(module->initialize()) == InitOutcome::initialized);
  CHECK(must(module->initialize()) == InitOutcome::already_initialized);
  CHECK(module->finalize());
  // Finalising a module nobody initialised counts as success.
  CHECK(module->finalize());
  CHECK(must(module->initialize()) == InitOutcome::initialized);
  CHECK(module->finalize());
}

TEST_CASE("calls before C_Initialize fail with CKR_CRYPTOKI_NOT_INITIALIZED, a stale code") {
  auto module = must(Module::load(module_token().module_path));
  Error error = testing::error_of(module->slots());
  CHECK(error.rv() == CKR_CRYPTOKI_NOT_INITIALIZED);
  CHECK(error.function() == "C_GetSlotList");
  CHECK(error.category() == Category::retry);
}

TEST_CASE("the slot list has the token's slot, and all slots include it") {
  InitializedModule module;
  CK_SLOT_ID slot = must(module->find_token(TokenSelector::by_label(module_token().label)));
  auto present = must(module->slots(true));
  auto all = must(module->slots(false));

  CHECK(std::count(present.begin(), present.end(), slot) == 1);
  CHECK(std::count(all.begin(), all.end(), slot) == 1);
  CHECK(all.size() >= present.size());
}

TEST_CASE("token info has trimmed labels, the token's state and no limit as no value") {
  InitializedModule module;
  CK_SLOT_ID slot = must(module->find_token(TokenSelector::by_label(module_token().label)));
  TokenInfo info = must(module->token_info(slot));

  CHECK(info.slot == slot);
  CHECK(info.label == "module tests");  // 32 blank-padded bytes on the token
  CHECK(info.manufacturer == "SoftHSM project");
  CHECK(info.model == "SoftHSM v2");
  CHECK(info.serial.size() == 16);
  CHECK(std::all_of(info.serial.begin(), info.serial.end(),
                    [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); }));
  CHECK(info.initialized());
  CHECK(info.user_pin_initialized());
  CHECK(info.login_required());
  // SoftHSM2 reports CK_EFFECTIVELY_INFINITE sessions: no limit, no value.
  CHECK_FALSE(info.max_sessions.has_value());
  CHECK_FALSE(info.max_rw_sessions.has_value());
  CHECK(info.min_pin_length == 4);
  CHECK(info.max_pin_length == 255);
}

TEST_CASE("a token is found by label, by serial, by slot, and by all three together") {
  InitializedModule module;
  CK_SLOT_ID slot = must(module->find_token(TokenSelector::by_label(module_token().label)));
  std::string serial = must(module->token_info(slot)).serial;

  CHECK(must(module->find_token(TokenSelector::by_serial(serial))) == slot);
  CHECK(must(module->find_token(TokenSelector::by_slot(slot))) == slot);
  TokenSelector all;
  all.label = module_token().label;
  all.serial = serial;
  all.slot = slot;
  CHECK(must(module->find_token(all)) == slot);
}

TEST_CASE("an unknown token label is token_not_found naming the label") {
  InitializedModule module;
  Error error = testing::error_of(module->find_token(TokenSelector::by_label("no such token")));

  CHECK(error.condition() == Condition::token_not_found);
  CHECK(error.category() == Category::fix_input);
  CHECK(error.operation() == "find_token");
  CHECK_THAT(error.message(), Contains("label=\"no such token\""));
}

TEST_CASE("a selector matches only when every field it sets matches") {
  InitializedModule module;
  CK_SLOT_ID slot = must(module->find_token(TokenSelector::by_label(module_token().label)));
  TokenSelector mismatched = TokenSelector::by_label(module_token().label);
  mismatched.serial = "0000000000000000";

  Error error = testing::error_of(module->find_token(mismatched));
  CHECK(error.condition() == Condition::token_not_found);
  CHECK_THAT(error.message(), Contains("serial=\"0000000000000000\""));
  CHECK(testing::error_of(module->find_token(TokenSelector::by_slot(slot + 1000))).condition() ==
        Condition::token_not_found);
}

TEST_CASE("a selector describes itself for error messages") {
  CHECK(TokenSelector().describe() == "any token");
  TokenSelector selector = TokenSelector::by_label("signer");
  selector.serial = "abc";
  selector.slot = 3;
  CHECK(selector.describe() == "label=\"signer\", serial=\"abc\", slot=3");
}

TEST_CASE("the token offers the mechanisms hsmactor uses") {
  InitializedModule module;
  CK_SLOT_ID slot = must(module->find_token(TokenSelector::by_label(module_token().label)));
  auto mechanisms = must(module->mechanisms(slot));
  for (CK_MECHANISM_TYPE wanted :
       {CKM_ECDSA, CKM_SHA256_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS, CKM_RSA_PKCS_OAEP, CKM_SHA256_HMAC,
        CKM_SHA256, CKM_AES_GCM, CKM_EC_KEY_PAIR_GEN, CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_AES_KEY_GEN,
        CKM_GENERIC_SECRET_KEY_GEN}) {
    INFO(mechanism_name(wanted));
    CHECK(std::count(mechanisms.begin(), mechanisms.end(), wanted) == 1);
  }
}

TEST_CASE("sessions open read-only or read-write, and start logged out") {
  InitializedModule module;
  CK_SLOT_ID slot = must(module->find_token(TokenSelector::by_label(module_token().label)));
  Session read_only = must(module->open_session(slot, SessionMode::read_only));
  Session read_write = must(module->open_session(slot));

  SessionInfo ro = must(read_only.info());
  SessionInfo rw = must(read_write.info());
  CHECK(ro.slot == slot);
  CHECK(ro.state == CKS_RO_PUBLIC_SESSION);
  CHECK((ro.flags & CKF_RW_SESSION) == 0);
  CHECK(rw.state == CKS_RW_PUBLIC_SESSION);
  CHECK((rw.flags & CKF_RW_SESSION) != 0);
  CHECK_FALSE(rw.logged_in());
}

TEST_CASE("a login is the token's: every session of the process sees it, logout ends it") {
  InitializedModule module;
  CK_SLOT_ID slot = must(module->find_token(TokenSelector::by_label(module_token().label)));
  Session first = must(module->open_session(slot));
  Session second = must(module->open_session(slot, SessionMode::read_only));

  REQUIRE(first.login(CKU_USER, module_token().user_pin));
  CHECK(must(second.info()).state == CKS_RO_USER_FUNCTIONS);
  CHECK(must(first.info()).logged_in());

  REQUIRE(second.logout());
  CHECK_FALSE(must(first.info()).logged_in());
}

TEST_CASE("after close_all_sessions a session's calls fail with a stale-session code") {
  InitializedModule module;
  CK_SLOT_ID slot = must(module->find_token(TokenSelector::by_label(module_token().label)));
  Session session = must(module->open_session(slot));
  REQUIRE(module->close_all_sessions(slot));

  Error error = testing::error_of(session.random(8));
  CHECK(error.rv() == CKR_SESSION_HANDLE_INVALID);
  CHECK(error.category() == Category::retry);
  // Closing it again reports the handle as gone; the destructor ignores that.
  CHECK(testing::error_of(session.close()).rv() == CKR_SESSION_HANDLE_INVALID);
  CHECK_FALSE(session.is_open());
}

TEST_CASE("a session moves, and release() hands the handle to the caller to close") {
  InitializedModule module;
  CK_SLOT_ID slot = must(module->find_token(TokenSelector::by_label(module_token().label)));
  Session original = must(module->open_session(slot));
  CK_SESSION_HANDLE handle = original.handle();

  Session moved = std::move(original);
  CHECK_FALSE(original.is_open());  // NOLINT: checking the moved-from state on purpose
  CHECK(moved.handle() == handle);
  CHECK(moved.info());

  CK_SESSION_HANDLE released = moved.release();
  CHECK(released == handle);
  CHECK_FALSE(moved.is_open());
  // Still open in the module until the new owner closes it.
  Session owner(moved.functions(), released, slot);
  CHECK(owner.info());
  CHECK(owner.close());
  CHECK_FALSE(owner.is_open());
}

TEST_CASE("an abandoned session forgets its handle without closing it") {
  InitializedModule module;
  CK_SLOT_ID slot = must(module->find_token(TokenSelector::by_label(module_token().label)));
  Session session = must(module->open_session(slot));
  CK_SESSION_HANDLE handle = session.handle();
  session.abandon();
  CHECK_FALSE(session.is_open());

  Session still_open(module->functions(), handle, slot);
  CHECK(still_open.info());
}

// --- A fake module, for what SoftHSM2 never does ----------------------------

std::string fake_module_path() { return testing::runfile("tests/pkcs11/libfake_pkcs11.so"); }

/// Makes the fake module behave as `mode` for one test case.
class FakeModuleMode {
 public:
  explicit FakeModuleMode(const char* mode) { ::setenv("HSMACTOR_FAKE_PKCS11", mode, 1); }
  ~FakeModuleMode() { ::unsetenv("HSMACTOR_FAKE_PKCS11"); }
  FakeModuleMode(const FakeModuleMode&) = delete;
  FakeModuleMode& operator=(const FakeModuleMode&) = delete;
};

TEST_CASE("token info cuts a field at a NUL and trims the blanks before it") {
  auto module = must(Module::load(fake_module_path()));
  REQUIRE(module->initialize());
  TokenInfo info = must(module->token_info(7));

  CHECK(info.label == "fake");  // "fake  \0" and blanks on the token
  CHECK(info.manufacturer == "Fake Inc");
  CHECK(info.model.empty());
  CHECK(info.serial == "0123456789abcdef");  // a full field, no padding at all
  CHECK(must(module->find_token(TokenSelector::by_label("fake"))) == 7);
}

TEST_CASE("a session limit the token states is a value, an unknown one is none") {
  auto module = must(Module::load(fake_module_path()));
  REQUIRE(module->initialize());
  TokenInfo info = must(module->token_info(7));

  CHECK_FALSE(info.max_sessions.has_value());  // CK_UNAVAILABLE_INFORMATION
  CHECK(info.max_rw_sessions == CK_ULONG{5});
  CHECK(info.min_pin_length == 6);
  CHECK(info.max_pin_length == 64);
}

TEST_CASE("a module whose C_GetFunctionList fails is a PKCS#11 error naming that call") {
  FakeModuleMode mode("fails");
  Error error = testing::error_of(Module::load(fake_module_path()));

  CHECK(error.condition() == Condition::pkcs11_error);
  CHECK(error.rv() == CKR_HOST_MEMORY);
  CHECK(error.function() == "C_GetFunctionList");
  CHECK(error.operation() == "load_module");
}

TEST_CASE("a module that hands out no function list fails to load") {
  FakeModuleMode mode("no_list");
  Error error = testing::error_of(Module::load(fake_module_path()));

  CHECK(error.condition() == Condition::module_load_failed);
  CHECK_THAT(error.message(), Contains("no function list"));
}

TEST_CASE("a function list of another Cryptoki major version is refused") {
  FakeModuleMode mode("version3");
  Error error = testing::error_of(Module::load(fake_module_path()));

  CHECK(error.condition() == Condition::module_load_failed);
  CHECK_THAT(error.message(), Contains("unsupported Cryptoki version 3.0"));
}

}  // namespace
}  // namespace hsmactor::pkcs11
