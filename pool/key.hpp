// Key: a reference to a key (or any object) on a token, by its attributes.
//
// The object handle is looked up on first use and cached; the cache is bound
// to one token under one module initialisation (a process-unique epoch), so a
// handle is never used on another token or after a reset: there the key is
// looked up again. Copies share the cache.
//
// Usage:
//   hsmactor::Key key = token.private_key("signer");   // or Key::private_key
//   hsmactor::Key by_id = hsmactor::Key::by_id(CKO_PRIVATE_KEY, id);
#pragma once

#include <memory>
#include <string>

#include "pkcs11/attributes.hpp"
#include "pkcs11/bytes.hpp"
#include "pkcs11/cryptoki.hpp"

namespace hsmactor {

namespace internal {
struct KeyAccess;
}

class Key {
 public:
  /// An empty reference (valid() is false); requests with it answer
  /// invalid_argument.
  Key() = default;

  /// The private key labelled `label` (CKO_PRIVATE_KEY, CKA_LABEL).
  static Key private_key(const std::string& label);
  /// The public key labelled `label` (CKO_PUBLIC_KEY).
  static Key public_key(const std::string& label);
  /// The secret (symmetric or HMAC) key labelled `label` (CKO_SECRET_KEY).
  static Key secret_key(const std::string& label);
  /// The object of `object_class` whose CKA_ID is `id`.
  static Key by_id(CK_OBJECT_CLASS object_class, Bytes id);
  /// The first object matching `query` (any attributes, e.g. class + label + id).
  static Key matching(pkcs11::AttributeList query);

  /// Returns the attributes the key is looked up by.
  const pkcs11::AttributeList& query() const;
  bool valid() const { return state_ != nullptr; }

 private:
  friend struct internal::KeyAccess;
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace hsmactor
