#include "pkcs11/attributes.hpp"

#include <algorithm>
#include <cstring>

namespace hsmactor::pkcs11 {
namespace {

Bytes ulong_bytes(CK_ULONG value) {
  Bytes bytes(sizeof value);
  std::memcpy(bytes.data(), &value, sizeof value);
  return bytes;
}

}  // namespace

AttributeList& AttributeList::set_bytes(CK_ATTRIBUTE_TYPE type, Bytes value) {
  auto existing = std::find_if(items_.begin(), items_.end(),
                               [type](const Attribute& a) { return a.type == type; });
  if (existing != items_.end()) {
    existing->value = std::move(value);
  } else {
    items_.push_back(Attribute{type, std::move(value)});
  }
  return *this;
}

AttributeList& AttributeList::set_bool(CK_ATTRIBUTE_TYPE type, bool value) {
  return set_bytes(type, Bytes{static_cast<std::uint8_t>(value ? CK_TRUE : CK_FALSE)});
}

AttributeList& AttributeList::set_ulong(CK_ATTRIBUTE_TYPE type, CK_ULONG value) {
  return set_bytes(type, ulong_bytes(value));
}

AttributeList& AttributeList::set_string(CK_ATTRIBUTE_TYPE type, std::string_view value) {
  return set_bytes(type, bytes_of(value));
}

std::optional<Bytes> AttributeList::get(CK_ATTRIBUTE_TYPE type) const {
  for (const auto& item : items_) {
    if (item.type == type) return item.value;
  }
  return std::nullopt;
}

std::optional<CK_ULONG> AttributeList::get_ulong(CK_ATTRIBUTE_TYPE type) const {
  auto value = get(type);
  if (!value || value->size() != sizeof(CK_ULONG)) return std::nullopt;
  CK_ULONG result;
  std::memcpy(&result, value->data(), sizeof result);
  return result;
}

std::optional<bool> AttributeList::get_bool(CK_ATTRIBUTE_TYPE type) const {
  auto value = get(type);
  if (!value || value->size() != 1) return std::nullopt;
  return (*value)[0] != CK_FALSE;
}

CkTemplate::CkTemplate(const AttributeList& list) {
  attributes_.reserve(list.size());
  for (const auto& item : list.items()) {
    CK_ATTRIBUTE attribute{};
    attribute.type = item.type;
    // PKCS#11 takes non-const pointers to templates it only reads.
    attribute.pValue = item.value.empty() ? nullptr : const_cast<std::uint8_t*>(item.value.data());
    attribute.ulValueLen = item.value.size();
    attributes_.push_back(attribute);
  }
}

Bytes ec_params_der(EcCurve curve) {
  switch (curve) {
    case EcCurve::p256:  // 1.2.840.10045.3.1.7
      return {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    case EcCurve::p384:  // 1.3.132.0.34
      return {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
  }
  return {};
}

std::size_t ec_digest_size(EcCurve curve) { return curve == EcCurve::p384 ? 48 : 32; }

namespace {

void set_identity(AttributeList& list, std::string_view label, const Bytes& id) {
  if (!label.empty()) list.set_string(CKA_LABEL, label);
  if (!id.empty()) list.set_bytes(CKA_ID, id);
}

void set_private_options(AttributeList& list, const KeyOptions& options) {
  list.set_bool(CKA_TOKEN, options.persistent)
      .set_bool(CKA_PRIVATE, true)
      .set_bool(CKA_SENSITIVE, options.sensitive)
      .set_bool(CKA_EXTRACTABLE, options.extractable);
}

}  // namespace

KeyPairTemplate ec_key_pair_template(EcCurve curve, std::string_view label, Bytes id,
                                     KeyOptions options) {
  KeyPairTemplate spec;
  spec.mechanism = Mechanism::ec_key_pair_gen();
  spec.public_key.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY)
      .set_ulong(CKA_KEY_TYPE, CKK_EC)
      .set_bool(CKA_TOKEN, options.persistent)
      .set_bool(CKA_VERIFY, true)
      .set_bytes(CKA_EC_PARAMS, ec_params_der(curve));
  set_identity(spec.public_key, label, id);
  spec.private_key.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY).set_ulong(CKA_KEY_TYPE, CKK_EC).set_bool(
      CKA_SIGN, true);
  set_private_options(spec.private_key, options);
  set_identity(spec.private_key, label, id);
  return spec;
}

KeyPairTemplate rsa_key_pair_template(CK_ULONG modulus_bits, std::string_view label, Bytes id,
                                      KeyOptions options) {
  KeyPairTemplate spec;
  spec.mechanism = Mechanism::rsa_key_pair_gen();
  spec.public_key.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY)
      .set_ulong(CKA_KEY_TYPE, CKK_RSA)
      .set_bool(CKA_TOKEN, options.persistent)
      .set_bool(CKA_VERIFY, true)
      .set_bool(CKA_ENCRYPT, true)
      .set_ulong(CKA_MODULUS_BITS, modulus_bits)
      .set_bytes(CKA_PUBLIC_EXPONENT, Bytes{0x01, 0x00, 0x01});
  set_identity(spec.public_key, label, id);
  spec.private_key.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY)
      .set_ulong(CKA_KEY_TYPE, CKK_RSA)
      .set_bool(CKA_SIGN, true)
      .set_bool(CKA_DECRYPT, true);
  set_private_options(spec.private_key, options);
  set_identity(spec.private_key, label, id);
  return spec;
}

namespace {

KeyTemplate secret_key_template(Mechanism mechanism, CK_KEY_TYPE key_type, CK_ULONG length_bytes,
                                std::string_view label, Bytes id, const KeyOptions& options,
                                bool for_cipher) {
  KeyTemplate spec;
  spec.mechanism = std::move(mechanism);
  spec.key.set_ulong(CKA_CLASS, CKO_SECRET_KEY)
      .set_ulong(CKA_KEY_TYPE, key_type)
      .set_ulong(CKA_VALUE_LEN, length_bytes);
  if (for_cipher) {
    spec.key.set_bool(CKA_ENCRYPT, true).set_bool(CKA_DECRYPT, true);
  } else {
    spec.key.set_bool(CKA_SIGN, true).set_bool(CKA_VERIFY, true);
  }
  set_private_options(spec.key, options);
  set_identity(spec.key, label, id);
  return spec;
}

}  // namespace

KeyTemplate aes_key_template(CK_ULONG length_bytes, std::string_view label, Bytes id,
                             KeyOptions options) {
  return secret_key_template(Mechanism::aes_key_gen(), CKK_AES, length_bytes, label,
                             std::move(id), options, true);
}

KeyTemplate hmac_key_template(CK_ULONG length_bytes, std::string_view label, Bytes id,
                              KeyOptions options) {
  return secret_key_template(Mechanism::generic_secret_key_gen(), CKK_GENERIC_SECRET,
                             length_bytes, label, std::move(id), options, false);
}

AttributeList secret_key_import_template(CK_KEY_TYPE key_type, Bytes value,
                                         std::string_view label, Bytes id, KeyOptions options) {
  AttributeList list;
  list.set_ulong(CKA_CLASS, CKO_SECRET_KEY).set_ulong(CKA_KEY_TYPE, key_type);
  if (key_type == CKK_AES) {
    list.set_bool(CKA_ENCRYPT, true).set_bool(CKA_DECRYPT, true);
  } else {
    list.set_bool(CKA_SIGN, true).set_bool(CKA_VERIFY, true);
  }
  set_private_options(list, options);
  set_identity(list, label, id);
  list.set_bytes(CKA_VALUE, std::move(value));
  return list;
}

}  // namespace hsmactor::pkcs11
