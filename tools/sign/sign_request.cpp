#include "tools/sign/sign_request.hpp"

#include <openssl/evp.h>

#include "tools/sign/base64.hpp"
#include "tools/sign/json_lines.hpp"

namespace hsmactor::sign {
namespace {

constexpr std::size_t kSha256Size = 32;

struct SchemeName {
  Scheme scheme;
  const char* name;
};

constexpr SchemeName kSchemes[] = {
    {Scheme::ecdsa, "ecdsa"},
    {Scheme::ecdsa_sha256, "ecdsa-sha256"},
    {Scheme::rsa_pkcs_sha256, "rsa-pkcs-sha256"},
    {Scheme::rsa_pss_sha256, "rsa-pss-sha256"},
    {Scheme::hmac_sha256, "hmac-sha256"},
};

constexpr const char* kMembers[] = {"id", "key", "mechanism", "data", "data_hex", "digest",
                                    "digest_hex"};

Error bad_record(std::string detail) {
  return Error::make(Condition::invalid_argument, std::move(detail), "sign");
}

bool is_ecdsa(Scheme scheme) { return scheme == Scheme::ecdsa || scheme == Scheme::ecdsa_sha256; }

std::string known_schemes() {
  std::string names;
  for (const auto& entry : kSchemes) {
    if (!names.empty()) names += ", ";
    names += entry.name;
  }
  return names;
}

/// Returns the request in `object`, whose name is already taken from it.
Result<SignRequest> request_of(const JsonObject& object) {
  for (const auto& [name, value] : object.members()) {
    bool known = false;
    for (const char* member : kMembers) known = known || name == member;
    if (!known) return bad_record("unknown member \"" + name + "\"");
    if (name != "id" && value.kind != JsonScalar::Kind::string) {
      return bad_record("\"" + name + "\" must be a string");
    }
  }

  SignRequest request;
  const JsonScalar* key = object.find("key");
  if (key == nullptr || key->text.empty()) return bad_record("missing \"key\" (a key label)");
  request.key_label = key->text;

  const JsonScalar* mechanism = object.find("mechanism");
  if (mechanism == nullptr) return bad_record("missing \"mechanism\" (" + known_schemes() + ")");
  auto scheme = scheme_named(mechanism->text);
  if (!scheme) {
    return bad_record("unknown mechanism \"" + mechanism->text + "\" (expected one of " +
                      known_schemes() + ")");
  }
  request.scheme = *scheme;

  const char* payload_name = nullptr;
  for (const char* candidate : {"data", "data_hex", "digest", "digest_hex"}) {
    if (object.find(candidate) == nullptr) continue;
    if (payload_name != nullptr) {
      return bad_record(std::string("both \"") + payload_name + "\" and \"" + candidate +
                        "\": give exactly one payload");
    }
    payload_name = candidate;
  }
  if (payload_name == nullptr) {
    return bad_record("missing payload: give one of \"data\", \"data_hex\", \"digest\", "
                      "\"digest_hex\"");
  }
  std::string_view payload_name_view = payload_name;
  const std::string& text = object.find(payload_name)->text;
  bool hex = payload_name_view.size() > 4 &&
             payload_name_view.substr(payload_name_view.size() - 4) == "_hex";
  std::optional<Bytes> bytes = hex ? from_hex(text) : from_base64(text);
  if (!bytes) {
    return bad_record("\"" + std::string(payload_name) + "\" is not valid " +
                      (hex ? "hex" : "base64"));
  }

  bool digest = payload_name_view.substr(0, 6) == "digest";
  if (digest) {
    if (!is_ecdsa(request.scheme)) {
      return bad_record(std::string("\"") + payload_name + "\" is only for ecdsa and "
                        "ecdsa-sha256; " + to_string(request.scheme) +
                        " hashes in the token, so give \"data\" or \"data_hex\"");
    }
    if (bytes->empty()) return bad_record("the digest is empty");
    if (request.scheme == Scheme::ecdsa_sha256 && bytes->size() != kSha256Size) {
      return bad_record("an ecdsa-sha256 digest has 32 bytes, not " +
                        std::to_string(bytes->size()));
    }
    request.payload = std::move(*bytes);
  } else if (is_ecdsa(request.scheme)) {
    auto digest_of_data = sha256(*bytes);
    if (!digest_of_data) return digest_of_data.error();
    request.payload = std::move(*digest_of_data);
  } else {
    request.payload = std::move(*bytes);
  }
  return request;
}

}  // namespace

std::optional<Scheme> scheme_named(std::string_view name) {
  for (const auto& entry : kSchemes) {
    if (name == entry.name) return entry.scheme;
  }
  return std::nullopt;
}

const char* to_string(Scheme scheme) {
  for (const auto& entry : kSchemes) {
    if (entry.scheme == scheme) return entry.name;
  }
  return "unknown";
}

pkcs11::Mechanism mechanism_for(Scheme scheme) {
  switch (scheme) {
    case Scheme::ecdsa:
    case Scheme::ecdsa_sha256:
      return pkcs11::Mechanism::ecdsa();
    case Scheme::rsa_pkcs_sha256:
      return pkcs11::Mechanism::rsa_pkcs_sha256();
    case Scheme::rsa_pss_sha256:
      return pkcs11::Mechanism::rsa_pss_sha256();
    case Scheme::hmac_sha256:
      return pkcs11::Mechanism::hmac_sha256();
  }
  return pkcs11::Mechanism::ecdsa();
}

CK_OBJECT_CLASS key_class_for(Scheme scheme) {
  return scheme == Scheme::hmac_sha256 ? CKO_SECRET_KEY : CKO_PRIVATE_KEY;
}

DecodedRecord decode_record(std::string_view line, std::uint64_t line_number) {
  RecordName name;
  name.line = line_number;
  Result<JsonObject> object = parse_json_object(line);
  if (!object) return DecodedRecord{name, object.error()};
  // Name the answer by id as soon as there is one, even if the rest is wrong,
  // so the caller can match every answer to its request.
  if (const JsonScalar* id = object->find("id")) name.id = id->text;
  if (!name.id) return DecodedRecord{name, bad_record("missing \"id\"")};
  return DecodedRecord{name, request_of(*object)};
}

Result<Bytes> sha256(ByteView data) {
  Bytes digest(kSha256Size);
  unsigned int length = 0;
  if (EVP_Digest(data.data, data.size, digest.data(), &length, EVP_sha256(), nullptr) != 1 ||
      length != kSha256Size) {
    return Error::make(Condition::internal_error, "OpenSSL could not compute SHA-256",
                       "sign");
  }
  return digest;
}

std::string signature_line(const RecordName& name, ByteView signature) {
  JsonLine line;
  if (name.id) {
    line.add("id", *name.id);
  } else {
    line.add_number("line", name.line);
  }
  return line.add("signature", to_base64(signature)).str();
}

std::string error_line(const RecordName& name, const Error& error) {
  JsonLine detail;
  std::string code = error.rv_name();
  if (!code.empty()) detail.add("code", code);
  detail.add("condition", to_string(error.condition()))
      .add("category", to_string(error.category()))
      .add("message", error.message());
  JsonLine line;
  if (name.id) {
    line.add("id", *name.id);
  } else {
    line.add_number("line", name.line);
  }
  return line.add_object("error", detail).str();
}

}  // namespace hsmactor::sign
