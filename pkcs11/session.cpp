#include "pkcs11/session.hpp"

#include <chrono>
#include <utility>

#include "pkcs11/fork_gate.hpp"

namespace hsmactor::pkcs11 {
namespace {

// An empty input still gets a real pointer: an empty message is legitimate
// (SHA-256 of "", an HMAC over nothing), but modules such as SoftHSM2 answer a
// null pointer with CKR_ARGUMENTS_BAD whatever the length, and SoftHSM2 then
// even leaves the operation active. An empty Bytes has a null data().
const CK_BYTE kEmptyInput[1] = {0};

// PKCS#11 takes non-const pointers to inputs it only reads.
CK_BYTE_PTR in(ByteView view) {
  return const_cast<CK_BYTE_PTR>(view.data != nullptr ? view.data : kEmptyInput);
}

// Runs `call` with an output buffer of `guess` bytes and grows it when the
// module answers CKR_BUFFER_TOO_SMALL (which, by the standard, leaves the
// operation active). One call in the common case instead of the two of the
// length-query convention.
template <class Call>
CK_RV call_with_output(std::size_t guess, Bytes& out, Call&& call) {
  out.resize(guess == 0 ? 1 : guess);
  CK_ULONG length = out.size();
  CK_RV rv = call(out.data(), &length);
  for (int attempt = 0; rv == CKR_BUFFER_TOO_SMALL && attempt < 4; ++attempt) {
    // A module that does not report the needed size gets a doubled buffer.
    out.resize(length > out.size() ? length : out.size() * 2);
    length = out.size();
    rv = call(out.data(), &length);
  }
  if (rv == CKR_OK) out.resize(length);
  return rv;
}

constexpr std::size_t kSignatureGuess = 1024;  // RSA-8192 fits
constexpr std::size_t kDigestGuess = 64;       // SHA-512 fits
constexpr std::size_t kCipherSlack = 64;       // block padding and tags

// Returns the content of a DER OCTET STRING, or the input if it is not one
// (some modules return the bare point).
Bytes unwrap_octet_string(const Bytes& der) {
  if (der.size() < 2 || der[0] != 0x04) return der;
  std::size_t length = der[1];
  std::size_t header = 2;
  if (length & 0x80) {
    std::size_t count = length & 0x7f;
    if (count == 0 || count > 2 || der.size() < 2 + count) return der;
    length = 0;
    for (std::size_t i = 0; i < count; ++i) length = length << 8 | der[2 + i];
    header += count;
  }
  if (header + length != der.size()) return der;
  return Bytes(der.begin() + static_cast<std::ptrdiff_t>(header), der.end());
}

}  // namespace

template <class F>
CK_RV Session::call(const char* function, F&& c_call) const {
  auto gated_call = [&] {
    ForkGateScope gate;  // see fork_gate.hpp
    return c_call();
  };
  if (observer_ == nullptr) return gated_call();
  // The handle is read before the call: C_CloseSession forgets it inside.
  const CK_SESSION_HANDLE session = handle_;
  const auto start = std::chrono::steady_clock::now();
  const CK_RV rv = gated_call();
  const auto duration = std::chrono::steady_clock::now() - start;
  observer_->on_call(CallRecord{function, session, slot_,
                                std::chrono::duration_cast<std::chrono::nanoseconds>(duration),
                                rv});
  return rv;
}

Session::Session(CK_FUNCTION_LIST* functions, CK_SESSION_HANDLE handle, CK_SLOT_ID slot)
    : functions_(functions), handle_(handle), slot_(slot) {}

Session::Session(Session&& other) noexcept
    : functions_(other.functions_),
      handle_(other.release()),
      slot_(other.slot_),
      observer_(std::exchange(other.observer_, nullptr)) {}

Session& Session::operator=(Session&& other) noexcept {
  if (this != &other) {
    (void)close();
    functions_ = other.functions_;
    slot_ = other.slot_;
    handle_ = other.release();
    observer_ = std::exchange(other.observer_, nullptr);
  }
  return *this;
}

Session::~Session() { (void)close(); }

CK_SESSION_HANDLE Session::release() { return std::exchange(handle_, CK_INVALID_HANDLE); }

void Session::abandon() { handle_ = CK_INVALID_HANDLE; }

Result<void> Session::close() {
  if (handle_ == CK_INVALID_HANDLE) return success();
  CK_RV rv = call("C_CloseSession", [&] {
    return functions_->C_CloseSession(std::exchange(handle_, CK_INVALID_HANDLE));
  });
  if (rv != CKR_OK) return fail(rv, "C_CloseSession", "close_session");
  return success();
}

Error Session::fail(CK_RV rv, const char* function, const char* operation) const {
  return Error::from_rv(rv, function, operation);
}

Result<SessionInfo> Session::info() const {
  CK_SESSION_INFO raw{};
  CK_RV rv = call("C_GetSessionInfo", [&] { return functions_->C_GetSessionInfo(handle_, &raw); });
  if (rv != CKR_OK) return fail(rv, "C_GetSessionInfo", "session_info");
  return SessionInfo{raw.slotID, raw.state, raw.flags, raw.ulDeviceError};
}

Result<void> Session::login(CK_USER_TYPE user_type, const Pin& pin) {
  auto made = login_made_here(user_type, pin);
  if (!made) return made.error();
  return success();
}

Result<bool> Session::login_made_here(CK_USER_TYPE user_type, const Pin& pin) {
  CK_RV rv = call("C_Login", [&] {
    return functions_->C_Login(handle_, user_type, const_cast<CK_UTF8CHAR_PTR>(pin.data()),
                               pin.size());
  });
  if (rv == CKR_USER_ALREADY_LOGGED_IN) return false;
  if (rv != CKR_OK) return fail(rv, "C_Login", "login");
  return true;
}

Result<void> Session::logout() {
  CK_RV rv = call("C_Logout", [&] { return functions_->C_Logout(handle_); });
  if (rv != CKR_OK && rv != CKR_USER_NOT_LOGGED_IN) return fail(rv, "C_Logout", "logout");
  return success();
}

Result<void> Session::init_pin(const Pin& user_pin) {
  CK_RV rv = call("C_InitPIN", [&] {
    return functions_->C_InitPIN(handle_, const_cast<CK_UTF8CHAR_PTR>(user_pin.data()),
                                 user_pin.size());
  });
  if (rv != CKR_OK) return fail(rv, "C_InitPIN", "init_pin");
  return success();
}

Result<Bytes> Session::sign(const Mechanism& mechanism, CK_OBJECT_HANDLE key, ByteView data) {
  CkMechanism ck(mechanism);
  CK_RV rv = call("C_SignInit", [&] { return functions_->C_SignInit(handle_, ck.get(), key); });
  if (rv != CKR_OK) return fail(rv, "C_SignInit", "sign");
  Bytes signature;
  rv = call_with_output(kSignatureGuess, signature, [&](CK_BYTE_PTR out, CK_ULONG_PTR length) {
    return call("C_Sign",
                [&] { return functions_->C_Sign(handle_, in(data), data.size, out, length); });
  });
  if (rv != CKR_OK) return fail(rv, "C_Sign", "sign");
  return signature;
}

Result<void> Session::sign_init(const Mechanism& mechanism, CK_OBJECT_HANDLE key) {
  CkMechanism ck(mechanism);
  CK_RV rv = call("C_SignInit", [&] { return functions_->C_SignInit(handle_, ck.get(), key); });
  if (rv != CKR_OK) return fail(rv, "C_SignInit", "sign_init");
  return success();
}

Result<void> Session::sign_update(ByteView data) {
  CK_RV rv =
      call("C_SignUpdate", [&] { return functions_->C_SignUpdate(handle_, in(data), data.size); });
  if (rv != CKR_OK) return fail(rv, "C_SignUpdate", "sign_update");
  return success();
}

Result<Bytes> Session::sign_final() {
  Bytes signature;
  CK_RV rv = call_with_output(kSignatureGuess, signature, [&](CK_BYTE_PTR out, CK_ULONG_PTR length) {
    return call("C_SignFinal", [&] { return functions_->C_SignFinal(handle_, out, length); });
  });
  if (rv != CKR_OK) return fail(rv, "C_SignFinal", "sign_final");
  return signature;
}

Result<bool> Session::verify(const Mechanism& mechanism, CK_OBJECT_HANDLE key, ByteView data,
                             ByteView signature) {
  CkMechanism ck(mechanism);
  CK_RV rv = call("C_VerifyInit", [&] { return functions_->C_VerifyInit(handle_, ck.get(), key); });
  if (rv != CKR_OK) return fail(rv, "C_VerifyInit", "verify");
  rv = call("C_Verify", [&] {
    return functions_->C_Verify(handle_, in(data), data.size, in(signature), signature.size);
  });
  if (rv == CKR_OK) return true;
  if (rv == CKR_SIGNATURE_INVALID || rv == CKR_SIGNATURE_LEN_RANGE) return false;
  return fail(rv, "C_Verify", "verify");
}

Result<void> Session::verify_init(const Mechanism& mechanism, CK_OBJECT_HANDLE key) {
  CkMechanism ck(mechanism);
  CK_RV rv = call("C_VerifyInit", [&] { return functions_->C_VerifyInit(handle_, ck.get(), key); });
  if (rv != CKR_OK) return fail(rv, "C_VerifyInit", "verify_init");
  return success();
}

Result<void> Session::verify_update(ByteView data) {
  CK_RV rv = call("C_VerifyUpdate", [&] {
    return functions_->C_VerifyUpdate(handle_, in(data), data.size);
  });
  if (rv != CKR_OK) return fail(rv, "C_VerifyUpdate", "verify_update");
  return success();
}

Result<bool> Session::verify_final(ByteView signature) {
  CK_RV rv = call("C_VerifyFinal", [&] {
    return functions_->C_VerifyFinal(handle_, in(signature), signature.size);
  });
  if (rv == CKR_OK) return true;
  if (rv == CKR_SIGNATURE_INVALID || rv == CKR_SIGNATURE_LEN_RANGE) return false;
  return fail(rv, "C_VerifyFinal", "verify_final");
}

Result<Bytes> Session::encrypt(const Mechanism& mechanism, CK_OBJECT_HANDLE key,
                               ByteView plaintext) {
  CkMechanism ck(mechanism);
  CK_RV rv =
      call("C_EncryptInit", [&] { return functions_->C_EncryptInit(handle_, ck.get(), key); });
  if (rv != CKR_OK) return fail(rv, "C_EncryptInit", "encrypt");
  Bytes ciphertext;
  // RSA outputs a modulus-sized block whatever the input size.
  std::size_t guess = plaintext.size + kCipherSlack < kSignatureGuess
                          ? kSignatureGuess
                          : plaintext.size + kCipherSlack;
  rv = call_with_output(guess, ciphertext, [&](CK_BYTE_PTR out, CK_ULONG_PTR length) {
    return call("C_Encrypt", [&] {
      return functions_->C_Encrypt(handle_, in(plaintext), plaintext.size, out, length);
    });
  });
  if (rv != CKR_OK) return fail(rv, "C_Encrypt", "encrypt");
  return ciphertext;
}

Result<Bytes> Session::decrypt(const Mechanism& mechanism, CK_OBJECT_HANDLE key,
                               ByteView ciphertext) {
  CkMechanism ck(mechanism);
  CK_RV rv =
      call("C_DecryptInit", [&] { return functions_->C_DecryptInit(handle_, ck.get(), key); });
  if (rv != CKR_OK) return fail(rv, "C_DecryptInit", "decrypt");
  Bytes plaintext;
  rv = call_with_output(ciphertext.size + kCipherSlack, plaintext,
                        [&](CK_BYTE_PTR out, CK_ULONG_PTR length) {
                          return call("C_Decrypt", [&] {
                            return functions_->C_Decrypt(handle_, in(ciphertext), ciphertext.size,
                                                         out, length);
                          });
                        });
  if (rv != CKR_OK) return fail(rv, "C_Decrypt", "decrypt");
  return plaintext;
}

Result<Bytes> Session::digest(const Mechanism& mechanism, ByteView data) {
  CkMechanism ck(mechanism);
  CK_RV rv = call("C_DigestInit", [&] { return functions_->C_DigestInit(handle_, ck.get()); });
  if (rv != CKR_OK) return fail(rv, "C_DigestInit", "digest");
  Bytes out;
  rv = call_with_output(kDigestGuess, out, [&](CK_BYTE_PTR buffer, CK_ULONG_PTR length) {
    return call("C_Digest", [&] {
      return functions_->C_Digest(handle_, in(data), data.size, buffer, length);
    });
  });
  if (rv != CKR_OK) return fail(rv, "C_Digest", "digest");
  return out;
}

Result<void> Session::digest_init(const Mechanism& mechanism) {
  CkMechanism ck(mechanism);
  CK_RV rv = call("C_DigestInit", [&] { return functions_->C_DigestInit(handle_, ck.get()); });
  if (rv != CKR_OK) return fail(rv, "C_DigestInit", "digest_init");
  return success();
}

Result<void> Session::digest_update(ByteView data) {
  CK_RV rv = call("C_DigestUpdate", [&] {
    return functions_->C_DigestUpdate(handle_, in(data), data.size);
  });
  if (rv != CKR_OK) return fail(rv, "C_DigestUpdate", "digest_update");
  return success();
}

Result<Bytes> Session::digest_final() {
  Bytes out;
  CK_RV rv = call_with_output(kDigestGuess, out, [&](CK_BYTE_PTR buffer, CK_ULONG_PTR length) {
    return call("C_DigestFinal",
                [&] { return functions_->C_DigestFinal(handle_, buffer, length); });
  });
  if (rv != CKR_OK) return fail(rv, "C_DigestFinal", "digest_final");
  return out;
}

Result<Bytes> Session::random(std::size_t length) {
  Bytes out(length);
  if (length == 0) return out;
  CK_RV rv = call("C_GenerateRandom",
                  [&] { return functions_->C_GenerateRandom(handle_, out.data(), length); });
  if (rv != CKR_OK) return fail(rv, "C_GenerateRandom", "random");
  return out;
}

Result<KeyPairHandles> Session::generate_key_pair(const KeyPairTemplate& spec) {
  CkMechanism ck(spec.mechanism);
  CkTemplate public_template(spec.public_key);
  CkTemplate private_template(spec.private_key);
  KeyPairHandles handles;
  CK_RV rv = call("C_GenerateKeyPair", [&] {
    return functions_->C_GenerateKeyPair(handle_, ck.get(), public_template.data(),
                                         public_template.size(), private_template.data(),
                                         private_template.size(), &handles.public_key,
                                         &handles.private_key);
  });
  if (rv != CKR_OK) return fail(rv, "C_GenerateKeyPair", "generate_key_pair");
  return handles;
}

Result<CK_OBJECT_HANDLE> Session::generate_key(const KeyTemplate& spec) {
  CkMechanism ck(spec.mechanism);
  CkTemplate key_template(spec.key);
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  CK_RV rv = call("C_GenerateKey", [&] {
    return functions_->C_GenerateKey(handle_, ck.get(), key_template.data(), key_template.size(),
                                     &key);
  });
  if (rv != CKR_OK) return fail(rv, "C_GenerateKey", "generate_key");
  return key;
}

Result<CK_OBJECT_HANDLE> Session::create_object(const AttributeList& attributes) {
  CkTemplate object_template(attributes);
  CK_OBJECT_HANDLE object = CK_INVALID_HANDLE;
  CK_RV rv = call("C_CreateObject", [&] {
    return functions_->C_CreateObject(handle_, object_template.data(), object_template.size(),
                                      &object);
  });
  if (rv != CKR_OK) return fail(rv, "C_CreateObject", "create_object");
  return object;
}

Result<void> Session::destroy_object(CK_OBJECT_HANDLE object) {
  CK_RV rv = call("C_DestroyObject", [&] { return functions_->C_DestroyObject(handle_, object); });
  if (rv != CKR_OK) return fail(rv, "C_DestroyObject", "destroy_object");
  return success();
}

Result<std::vector<CK_OBJECT_HANDLE>> Session::find_objects(const AttributeList& query,
                                                            std::size_t limit) {
  CkTemplate query_template(query);
  CK_RV rv = call("C_FindObjectsInit", [&] {
    return functions_->C_FindObjectsInit(handle_, query_template.data(), query_template.size());
  });
  if (rv != CKR_OK) return fail(rv, "C_FindObjectsInit", "find_objects");
  std::vector<CK_OBJECT_HANDLE> found;
  CK_OBJECT_HANDLE batch[64];
  for (;;) {
    CK_ULONG count = 0;
    rv = call("C_FindObjects",
              [&] { return functions_->C_FindObjects(handle_, batch, 64, &count); });
    if (rv != CKR_OK) break;
    found.insert(found.end(), batch, batch + count);
    if (count == 0 || (limit != 0 && found.size() >= limit)) break;
  }
  // The search must be ended even after a failure, or the session stays busy.
  CK_RV final_rv =
      call("C_FindObjectsFinal", [&] { return functions_->C_FindObjectsFinal(handle_); });
  if (rv != CKR_OK) return fail(rv, "C_FindObjects", "find_objects");
  if (final_rv != CKR_OK) return fail(final_rv, "C_FindObjectsFinal", "find_objects");
  if (limit != 0 && found.size() > limit) found.resize(limit);
  return found;
}

Result<AttributeList> Session::get_attributes(CK_OBJECT_HANDLE object,
                                              const std::vector<CK_ATTRIBUTE_TYPE>& types) {
  std::vector<CK_ATTRIBUTE> query(types.size());
  for (std::size_t i = 0; i < types.size(); ++i) query[i].type = types[i];
  CK_RV rv = call("C_GetAttributeValue", [&] {
    return functions_->C_GetAttributeValue(handle_, object, query.data(), query.size());
  });
  if (rv != CKR_OK) return fail(rv, "C_GetAttributeValue", "get_attributes");
  std::vector<Bytes> values(types.size());
  for (std::size_t i = 0; i < types.size(); ++i) {
    values[i].resize(query[i].ulValueLen);
    query[i].pValue = values[i].empty() ? nullptr : values[i].data();
  }
  rv = call("C_GetAttributeValue", [&] {
    return functions_->C_GetAttributeValue(handle_, object, query.data(), query.size());
  });
  if (rv != CKR_OK) return fail(rv, "C_GetAttributeValue", "get_attributes");
  AttributeList list;
  for (std::size_t i = 0; i < types.size(); ++i) {
    values[i].resize(query[i].ulValueLen);
    list.set_bytes(types[i], std::move(values[i]));
  }
  return list;
}

Result<Bytes> Session::get_attribute(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type) {
  auto list = get_attributes(object, {type});
  if (!list) return list.error();
  return *list->get(type);
}

Result<PublicKey> Session::export_public_key(CK_OBJECT_HANDLE public_key) {
  auto key_type = get_attributes(public_key, {CKA_KEY_TYPE});
  if (!key_type) return key_type.error().in_operation("export_public_key");
  PublicKey key;
  key.key_type = key_type->get_ulong(CKA_KEY_TYPE).value_or(CKK_VENDOR_DEFINED);
  if (key.key_type == CKK_EC) {
    auto values = get_attributes(public_key, {CKA_EC_PARAMS, CKA_EC_POINT});
    if (!values) return values.error();
    key.ec_params = *values->get(CKA_EC_PARAMS);
    key.ec_point_der = *values->get(CKA_EC_POINT);
    key.ec_point = unwrap_octet_string(key.ec_point_der);
  } else if (key.key_type == CKK_RSA) {
    auto values = get_attributes(public_key, {CKA_MODULUS, CKA_PUBLIC_EXPONENT});
    if (!values) return values.error();
    key.modulus = *values->get(CKA_MODULUS);
    key.public_exponent = *values->get(CKA_PUBLIC_EXPONENT);
  } else {
    return Error::make(Condition::invalid_argument, "not an EC or RSA public key",
                       "export_public_key");
  }
  return key;
}

}  // namespace hsmactor::pkcs11
