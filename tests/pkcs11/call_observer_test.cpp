#include "pkcs11/call_observer.hpp"

#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "pkcs11/module.hpp"
#include "pkcs11/session.hpp"
#include "tests/pkcs11/catch_result.hpp"
#include "tests/pkcs11/shared_token.hpp"

// A CallObserver sees each PKCS#11 call a Session makes, one record per C_*
// invocation with the real CKR_* the module returned, and nothing else. Every
// story observes a session of its own, so the shared session stays unobserved.

namespace hsmactor::pkcs11 {
namespace {

using testing::error_of;
using testing::must;

/// Keeps every record it is given.
class Recorder : public CallObserver {
 public:
  void on_call(const CallRecord& record) noexcept override { records.push_back(record); }

  /// Returns the function names, in call order.
  std::vector<std::string> functions() const {
    std::vector<std::string> names;
    for (const CallRecord& record : records) names.emplace_back(record.function);
    return names;
  }

  std::vector<CallRecord> records;
};

Module& module() { return testing::shared_token().module(); }
CK_SLOT_ID slot() { return testing::shared_token().slot(); }
const testing::TestKeys& keys() { return testing::shared_token().keys(); }

/// Returns a new session on the shared token (logged in: login is per token).
Session observed_session(Recorder& recorder) {
  return must(module().open_session(slot(), SessionMode::read_write, &recorder));
}

using Strings = std::vector<std::string>;

TEST_CASE("an observed sign reports C_SignInit then C_Sign with the handle, slot and CKR_OK") {
  Recorder recorder;
  Session session = observed_session(recorder);
  recorder.records.clear();

  Bytes signature = must(session.sign(Mechanism::ecdsa(), keys().ec256.private_key, Bytes(32, 7)));
  CHECK(signature.size() == 64);

  REQUIRE(recorder.functions() == Strings{"C_SignInit", "C_Sign"});
  for (const CallRecord& record : recorder.records) {
    CHECK(record.session == session.handle());
    CHECK(record.slot == slot());
    CHECK(record.rv == CKR_OK);
    CHECK(record.duration.count() >= 0);
  }
}

TEST_CASE("every C_* call is reported once, including both of get_attributes") {
  Recorder recorder;
  Session session = observed_session(recorder);
  recorder.records.clear();

  REQUIRE(session.sign_init(Mechanism::hmac_sha256(), keys().hmac));
  REQUIRE(session.sign_update(bytes_of("part one")));
  REQUIRE(session.sign_update(bytes_of("part two")));
  must(session.sign_final());
  must(session.digest(Mechanism::sha256(), bytes_of("x")));
  must(session.random(16));
  must(session.get_attribute(keys().ec256.public_key, CKA_EC_POINT));
  must(session.find_objects(AttributeList().set_string(CKA_LABEL, testing::TestKeyLabels::aes)));

  CHECK(recorder.functions() ==
        Strings{"C_SignInit", "C_SignUpdate", "C_SignUpdate", "C_SignFinal", "C_DigestInit",
                "C_Digest", "C_GenerateRandom", "C_GetAttributeValue", "C_GetAttributeValue",
                "C_FindObjectsInit", "C_FindObjects", "C_FindObjects", "C_FindObjectsFinal"});
}

TEST_CASE("a sign with a key handle that does not exist reports the failed C_SignInit") {
  // The standard's answer is CKR_KEY_HANDLE_INVALID; SoftHSM2 2.6 says
  // CKR_OBJECT_HANDLE_INVALID. The observer sees whatever the module said.
  Recorder recorder;
  Session session = observed_session(recorder);
  recorder.records.clear();

  const CK_OBJECT_HANDLE no_such_key = 0x7ffffff0;
  CHECK(error_of(session.sign(Mechanism::ecdsa(), no_such_key, Bytes(32, 1))).rv() ==
        CKR_OBJECT_HANDLE_INVALID);

  REQUIRE(recorder.records.size() == 1);  // C_Sign never ran
  CHECK(std::string(recorder.records[0].function) == "C_SignInit");
  CHECK(recorder.records[0].rv == CKR_OBJECT_HANDLE_INVALID);
  CHECK(recorder.records[0].session == session.handle());
  CHECK(recorder.records[0].slot == slot());
}

TEST_CASE("a wrong PIN is reported as CKR_PIN_INCORRECT in a record that holds no PIN") {
  testing::shared_token();  // keeps SoftHSM2 initialised for the whole binary
  static const testing::TestToken logged_out = testing::create_test_token("observer login");
  CK_SLOT_ID login_slot = must(module().find_token(TokenSelector::by_label(logged_out.label)));
  Recorder recorder;
  Session session = must(module().open_session(login_slot, SessionMode::read_write, &recorder));

  CHECK(error_of(session.login(CKU_USER, Pin("9999-secret-77"))).rv() == CKR_PIN_INCORRECT);
  REQUIRE(session.login(CKU_USER, logged_out.user_pin));
  // Session::login counts CKR_USER_ALREADY_LOGGED_IN as success; the
  // observer still sees what the module said.
  REQUIRE(session.login(CKU_USER, logged_out.user_pin));
  REQUIRE(session.logout());

  REQUIRE(recorder.records.size() == 5);
  CHECK(recorder.functions() ==
        Strings{"C_OpenSession", "C_Login", "C_Login", "C_Login", "C_Logout"});
  CHECK(recorder.records[1].rv == CKR_PIN_INCORRECT);
  CHECK(recorder.records[2].rv == CKR_OK);
  CHECK(recorder.records[3].rv == CKR_USER_ALREADY_LOGGED_IN);
  CHECK(recorder.records[4].rv == CKR_OK);
  for (const CallRecord& record : recorder.records) CHECK(record.slot == login_slot);
}

TEST_CASE("Module::open_session reports C_OpenSession with the new handle, or 0 on failure") {
  Recorder recorder;
  Session session = observed_session(recorder);

  REQUIRE(recorder.records.size() == 1);
  const CallRecord& opened = recorder.records[0];
  CHECK(std::string(opened.function) == "C_OpenSession");
  CHECK(opened.session == session.handle());
  CHECK(opened.session != CK_INVALID_HANDLE);
  CHECK(opened.slot == slot());
  CHECK(opened.rv == CKR_OK);
  CHECK(opened.duration.count() >= 0);
  CHECK(session.observer() == &recorder);

  const CK_SLOT_ID no_such_slot = 0x7ffffff0;
  CHECK(error_of(module().open_session(no_such_slot, SessionMode::read_write, &recorder)).rv() ==
        CKR_SLOT_ID_INVALID);
  REQUIRE(recorder.records.size() == 2);
  CHECK(std::string(recorder.records[1].function) == "C_OpenSession");
  CHECK(recorder.records[1].session == CK_INVALID_HANDLE);
  CHECK(recorder.records[1].slot == no_such_slot);
  CHECK(recorder.records[1].rv == CKR_SLOT_ID_INVALID);
}

TEST_CASE("a session without an observer reports nothing, from the reset on") {
  Recorder recorder;
  Session unobserved = must(module().open_session(slot()));
  CHECK(unobserved.observer() == nullptr);

  Session session = observed_session(recorder);
  must(session.random(8));
  REQUIRE(recorder.records.size() == 2);

  session.set_observer(nullptr);
  CHECK(session.observer() == nullptr);
  must(session.random(8));
  must(session.sign(Mechanism::ecdsa(), keys().ec256.private_key, Bytes(32, 1)));
  REQUIRE(session.close());
  CHECK(recorder.records.size() == 2);
}

TEST_CASE("close reports C_CloseSession with the handle it closed") {
  Recorder recorder;
  Session session = observed_session(recorder);
  const CK_SESSION_HANDLE handle = session.handle();
  recorder.records.clear();

  REQUIRE(session.close());
  REQUIRE(recorder.records.size() == 1);
  CHECK(std::string(recorder.records[0].function) == "C_CloseSession");
  CHECK(recorder.records[0].session == handle);
  CHECK(recorder.records[0].rv == CKR_OK);

  REQUIRE(session.close());  // an empty session makes no call
  CHECK(recorder.records.size() == 1);
}

TEST_CASE("the observer moves with the session") {
  Recorder recorder;
  Session original = observed_session(recorder);
  const CK_SESSION_HANDLE handle = original.handle();
  recorder.records.clear();

  Session moved(std::move(original));
  CHECK(moved.observer() == &recorder);
  CHECK(original.observer() == nullptr);
  must(moved.random(8));
  REQUIRE(recorder.records.size() == 1);
  CHECK(recorder.records[0].session == handle);

  // Move-assignment closes the target's session, reported to the target's
  // own observer, then takes the source's.
  Recorder other;
  Session target = must(module().open_session(slot(), SessionMode::read_write, &other));
  const CK_SESSION_HANDLE target_handle = target.handle();
  target = std::move(moved);
  CHECK(target.observer() == &recorder);
  CHECK(moved.observer() == nullptr);
  CHECK(other.functions() == Strings{"C_OpenSession", "C_CloseSession"});
  CHECK(other.records[1].session == target_handle);

  must(target.random(8));
  REQUIRE(recorder.records.size() == 2);
  CHECK(std::string(recorder.records[1].function) == "C_GenerateRandom");
  CHECK(recorder.records[1].session == handle);
}

}  // namespace
}  // namespace hsmactor::pkcs11
