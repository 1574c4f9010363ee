#include "tools/sign/sign_request.hpp"

#include <catch2/catch.hpp>

#include "tools/sign/json_lines.hpp"

namespace hsmactor::sign {
namespace {

// SHA-256("abc"), FIPS 180-2 appendix B.1.
constexpr const char* kAbcSha256 =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

SignRequest good(std::string_view line) {
  DecodedRecord record = decode_record(line, 1);
  INFO(line);
  if (!record.request) FAIL(record.request.error().message());
  return *record.request;
}

Error bad(std::string_view line, std::optional<std::string> expected_id = std::nullopt) {
  DecodedRecord record = decode_record(line, 9);
  INFO(line);
  REQUIRE_FALSE(record.request.ok());
  CHECK(record.name.id == expected_id);
  CHECK(record.name.line == 9);
  CHECK(record.request.error().condition() == Condition::invalid_argument);
  CHECK(record.request.error().category() == Category::fix_input);
  return record.request.error();
}

TEST_CASE("every scheme name maps to its mechanism and key class") {
  for (const char* name : {"ecdsa", "ecdsa-sha256", "rsa-pkcs-sha256", "rsa-pss-sha256",
                           "hmac-sha256"}) {
    auto scheme = scheme_named(name);
    REQUIRE(scheme);
    CHECK(std::string(to_string(*scheme)) == name);
  }
  CHECK_FALSE(scheme_named("ECDSA"));
  CHECK_FALSE(scheme_named("rsa"));
  CHECK(mechanism_for(Scheme::ecdsa_sha256).type == CKM_ECDSA);
  CHECK(mechanism_for(Scheme::rsa_pkcs_sha256).type == CKM_SHA256_RSA_PKCS);
  CHECK(mechanism_for(Scheme::rsa_pss_sha256).type == CKM_SHA256_RSA_PKCS_PSS);
  CHECK(mechanism_for(Scheme::hmac_sha256).type == CKM_SHA256_HMAC);
  CHECK(key_class_for(Scheme::hmac_sha256) == CKO_SECRET_KEY);
  CHECK(key_class_for(Scheme::rsa_pss_sha256) == CKO_PRIVATE_KEY);
}

TEST_CASE("ecdsa over data signs SHA-256 of the data, hashed on the host") {
  SignRequest request = good(R"({"id":"1","key":"ec","mechanism":"ecdsa","data":"YWJj"})");
  CHECK(request.key_label == "ec");
  CHECK(request.scheme == Scheme::ecdsa);
  CHECK(to_hex(request.payload) == kAbcSha256);
  CHECK(good(R"({"id":"1","key":"ec","mechanism":"ecdsa-sha256","data_hex":"616263"})").payload ==
        request.payload);
}

TEST_CASE("a given digest is signed as it is") {
  std::string hex48(96, 'a');
  CHECK(to_hex(good(R"({"id":"1","key":"ec","mechanism":"ecdsa","digest_hex":")" + hex48 +
                    "\"}")
                   .payload) == hex48);
  CHECK(to_hex(good(std::string(R"({"id":"1","key":"ec","mechanism":"ecdsa-sha256","digest_hex":")") +
                    kAbcSha256 + "\"}")
                   .payload) == kAbcSha256);
}

TEST_CASE("RSA and HMAC take the data itself: the token hashes it") {
  for (const char* mechanism : {"rsa-pkcs-sha256", "rsa-pss-sha256", "hmac-sha256"}) {
    std::string line = std::string(R"({"key":"k","data":"YWJj","id":"x","mechanism":")") +
                       mechanism + "\"}";
    CHECK(good(line).payload == bytes_of("abc"));
  }
}

TEST_CASE("a numeric id is accepted and answered as a string") {
  DecodedRecord record = decode_record(R"({"id":17,"key":"k","mechanism":"ecdsa","data":""})", 3);
  REQUIRE(record.request.ok());
  CHECK(record.name.id == std::optional<std::string>("17"));
  CHECK(signature_line(record.name, bytes_of("sig")) == R"({"id":"17","signature":"c2ln"})");
}

TEST_CASE("a bad record names itself by id when it has one, else by line") {
  bad("not json");
  bad(R"({"key":"k","mechanism":"ecdsa","data":"YWJj"})");
  CHECK(bad(R"({"id":"7","key":"k","mechanism":"ecdsa","data":"YWJj","extra":"x"})", "7")
            .detail() == "unknown member \"extra\"");
}

TEST_CASE("each kind of bad record gets a reason that says what to fix") {
  auto detail = [](std::string_view line) { return bad(line, "i").detail(); };
  CHECK(detail(R"({"id":"i","mechanism":"ecdsa","data":"YWJj"})") == "missing \"key\" (a key label)");
  CHECK(detail(R"({"id":"i","key":"k","data":"YWJj"})").rfind("missing \"mechanism\"", 0) == 0);
  CHECK(detail(R"({"id":"i","key":"k","mechanism":"dsa","data":"YWJj"})")
            .rfind("unknown mechanism \"dsa\" (expected one of ecdsa, ecdsa-sha256", 0) == 0);
  CHECK(detail(R"({"id":"i","key":"k","mechanism":"ecdsa"})").rfind("missing payload", 0) == 0);
  CHECK(detail(R"({"id":"i","key":"k","mechanism":"ecdsa","data":"YWJj","data_hex":"00"})") ==
        "both \"data\" and \"data_hex\": give exactly one payload");
  CHECK(detail(R"({"id":"i","key":"k","mechanism":"ecdsa","data":"Y!Jj"})") ==
        "\"data\" is not valid base64");
  CHECK(detail(R"({"id":"i","key":"k","mechanism":"ecdsa","digest_hex":"abc"})") ==
        "\"digest_hex\" is not valid hex");
  CHECK(detail(R"({"id":"i","key":"k","mechanism":"ecdsa","digest":""})") == "the digest is empty");
  CHECK(detail(R"({"id":"i","key":"k","mechanism":"ecdsa-sha256","digest_hex":"0011"})") ==
        "an ecdsa-sha256 digest has 32 bytes, not 2");
  CHECK(detail(R"({"id":"i","key":"k","mechanism":"hmac-sha256","digest_hex":"0011"})")
            .rfind("\"digest_hex\" is only for ecdsa", 0) == 0);
  CHECK(detail(R"({"id":"i","key":1,"mechanism":"ecdsa","data":""})") == "\"key\" must be a string");
}

TEST_CASE("an error line carries code, condition, category and message") {
  RecordName by_id{std::string("a\"1"), 4};
  Error pkcs11 = Error::from_rv(CKR_KEY_TYPE_INCONSISTENT, "C_SignInit", "sign");
  auto line = parse_json_object(error_line(by_id, pkcs11), 1);
  REQUIRE(line.ok());
  CHECK(line->find("id")->text == "a\"1");
  CHECK(line->find("line") == nullptr);
  REQUIRE(line->find("error")->object);
  CHECK(line->find("error")->object->find("code")->text == "CKR_KEY_TYPE_INCONSISTENT");
  CHECK(error_line(by_id, pkcs11) ==
        "{\"id\":\"a\\\"1\",\"error\":{\"code\":\"CKR_KEY_TYPE_INCONSISTENT\","
        "\"condition\":\"pkcs11_error\",\"category\":\"fix_input\",\"message\":\"" +
            pkcs11.message() + "\"}}");

  RecordName by_line{std::nullopt, 12};
  Error input = Error::make(Condition::invalid_argument, "missing \"id\"", "sign");
  CHECK(error_line(by_line, input) ==
        R"({"line":12,"error":{"condition":"invalid_argument","category":"fix_input",)"
        R"("message":"invalid_argument in sign: missing \"id\""}})");
}

}  // namespace
}  // namespace hsmactor::sign
