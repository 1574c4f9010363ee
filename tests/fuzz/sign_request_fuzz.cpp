// Fuzzes hsmactor-sign's record decoder: one input line to a SignRequest, and
// the answer lines written for it.
//
// Properties, for any line:
// - decode_record never throws and always names the record (its "id", else
//   its line number);
// - a rejected record is an invalid_argument / fix_input Error without a
//   CK_RV, and its error_line parses back to the same id, condition, category
//   and message;
// - an accepted record has a key label, a scheme whose name round-trips, and
//   the payload the rules in sign_request.hpp promise (ECDSA: a non-empty
//   digest, 32 bytes for ecdsa-sha256; RSA/HMAC: the decoded data);
// - its signature_line parses back to the same id and the same bytes.
#include "tools/sign/sign_request.hpp"

#include <string>

#include "pkcs11/bytes.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/fuzz_text.hpp"
#include "tools/sign/base64.hpp"
#include "tools/sign/json_lines.hpp"

namespace hsmactor::sign {
namespace {

constexpr std::uint64_t kLine = 7;

/// Checks that `answer` names the record the way `name` says.
void check_name(const JsonObject& answer, const RecordName& name) {
  if (name.id) {
    const JsonScalar* id = answer.find("id");
    FUZZ_CHECK(id != nullptr && id->kind == JsonScalar::Kind::string && id->text == *name.id,
               "the answer carries the record's id unchanged");
    FUZZ_CHECK(answer.find("line") == nullptr, "an answer with an id has no line");
  } else {
    const JsonScalar* line = answer.find("line");
    FUZZ_CHECK(line != nullptr && line->kind == JsonScalar::Kind::number &&
                   line->text == std::to_string(name.line),
               "an answer without an id carries the line number");
  }
}

void check_rejected(const RecordName& name, const Error& error) {
  FUZZ_CHECK(error.condition() == Condition::invalid_argument,
             "a bad record is invalid_argument");
  FUZZ_CHECK(error.category() == Category::fix_input, "a bad record is fix_input");
  FUZZ_CHECK(error.rv() == CKR_OK && error.rv_name().empty(), "a bad record has no CK_RV");
  const std::string message = error.message();
  FUZZ_CHECK(fuzz::starts_with(message, "invalid_argument in "), "the message says what and where");

  const std::string line = error_line(name, error);
  FUZZ_CHECK(line.find('\n') == std::string::npos, "an answer is one line");
  Result<JsonObject> answer = parse_json_object(line, 1);
  FUZZ_CHECK(answer.ok(), "error_line writes JSON the answer reader accepts");
  check_name(*answer, name);
  const JsonScalar* detail = answer->find("error");
  FUZZ_CHECK(detail != nullptr && detail->kind == JsonScalar::Kind::object,
             "error_line has an error object");
  const JsonObject& fields = *detail->object;
  FUZZ_CHECK(fields.find("code") == nullptr, "no code without a PKCS#11 failure");
  const JsonScalar* condition = fields.find("condition");
  const JsonScalar* category = fields.find("category");
  const JsonScalar* text = fields.find("message");
  FUZZ_CHECK(condition && condition->text == "invalid_argument", "the condition round-trips");
  FUZZ_CHECK(category && category->text == "fix_input", "the category round-trips");
  FUZZ_CHECK(text != nullptr, "error_line has a message");
  if (fuzz::is_utf8(message)) {
    FUZZ_CHECK(text->text == message, "the message round-trips");
  }
}

void check_accepted(const JsonObject& object, const RecordName& name,
                    const SignRequest& request) {
  const JsonScalar* key = object.find("key");
  FUZZ_CHECK(key != nullptr && !request.key_label.empty() && request.key_label == key->text,
             "the key label is the record's \"key\"");
  const JsonScalar* mechanism = object.find("mechanism");
  FUZZ_CHECK(mechanism != nullptr && mechanism->text == to_string(request.scheme),
             "the scheme is the record's \"mechanism\"");
  auto scheme = scheme_named(to_string(request.scheme));
  FUZZ_CHECK(scheme && *scheme == request.scheme, "scheme names round-trip");

  const bool ecdsa =
      request.scheme == Scheme::ecdsa || request.scheme == Scheme::ecdsa_sha256;
  const bool digest = object.find("digest") != nullptr || object.find("digest_hex") != nullptr;
  FUZZ_CHECK(!digest || ecdsa, "only ECDSA takes a digest");
  if (ecdsa) {
    FUZZ_CHECK(!request.payload.empty(), "ECDSA signs a non-empty digest");
    if (request.scheme == Scheme::ecdsa_sha256 || !digest) {
      FUZZ_CHECK(request.payload.size() == 32, "a SHA-256 digest has 32 bytes");
    }
  } else {
    std::optional<Bytes> data;
    if (const JsonScalar* hex = object.find("data_hex")) data = from_hex(hex->text);
    if (const JsonScalar* b64 = object.find("data")) data = from_base64(b64->text);
    FUZZ_CHECK(data && *data == request.payload, "RSA and HMAC sign the decoded data");
  }
  if (!ecdsa && !digest) {
    FUZZ_CHECK(key_class_for(request.scheme) ==
                   (request.scheme == Scheme::hmac_sha256 ? CKO_SECRET_KEY : CKO_PRIVATE_KEY),
               "HMAC signs with a secret key, the rest with a private key");
  }

  // The payload stands in for a signature: any bytes must survive the answer.
  const std::string line = signature_line(name, request.payload);
  Result<JsonObject> answer = parse_json_object(line, 1);
  FUZZ_CHECK(answer.ok(), "signature_line writes JSON");
  check_name(*answer, name);
  const JsonScalar* signature = answer->find("signature");
  FUZZ_CHECK(signature != nullptr, "signature_line has a signature");
  std::optional<Bytes> bytes = from_base64(signature->text);
  FUZZ_CHECK(bytes && *bytes == request.payload, "the signature's base64 round-trips");
}

}  // namespace
}  // namespace hsmactor::sign

HSMACTOR_FUZZ_ENTRY(line) {
  using namespace hsmactor;
  using namespace hsmactor::sign;
  DecodedRecord record = decode_record(line, kLine);
  FUZZ_CHECK(record.name.line == kLine, "the record keeps its line number");

  Result<JsonObject> object = parse_json_object(line);
  if (!object) {
    FUZZ_CHECK(!record.request.ok() && record.request.error() == object.error(),
               "a line that is not JSON is rejected with the parser's error");
    FUZZ_CHECK(!record.name.id, "a line that is not JSON has no id");
  } else {
    const JsonScalar* id = object->find("id");
    FUZZ_CHECK(id ? record.name.id && *record.name.id == id->text : !record.name.id,
               "the record is named by its \"id\" whenever it has one");
    if (!id) FUZZ_CHECK(!record.request.ok(), "a record without an id is rejected");
  }

  if (!record.request) {
    check_rejected(record.name, record.request.error());
  } else {
    FUZZ_CHECK(object.ok(), "only JSON is accepted");
    check_accepted(*object, record.name, *record.request);
  }
}
