// The request each operation sends: mechanism, key and payload, the same for
// every strategy so that all of them do identical work.
//
// Usage:
//   Workload ecdsa = make_workload(Operation::ecdsa, keys);
//   session.sign(ecdsa.mechanism, ecdsa.key, ecdsa.data);
#pragma once

#include <cstddef>
#include <string>

#include "pkcs11/bytes.hpp"
#include "pkcs11/cryptoki.hpp"
#include "pkcs11/mechanism.hpp"
#include "tools/bench/cell.hpp"

namespace hsmactor::bench {

/// Labels of the benchmark's keys on the token.
struct KeyLabels {
  static constexpr const char* ec256 = "ec256";
  static constexpr const char* rsa2048 = "rsa2048";
  static constexpr const char* hmac = "hmac";
};

/// Object handles of the benchmark's keys (valid in every session of the
/// process that found them).
struct KeyHandles {
  CK_OBJECT_HANDLE ec256 = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE rsa2048 = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE hmac = CK_INVALID_HANDLE;
};

/// One operation's request.
struct Workload {
  Operation operation = Operation::ecdsa;
  pkcs11::Mechanism mechanism;
  /// The digest to sign (ecdsa), the message (rsa, hmac) or the input (digest);
  /// empty for random.
  Bytes data;
  /// Bytes asked of C_GenerateRandom.
  std::size_t random_length = 0;
  /// The key for raw PKCS#11, or CK_INVALID_HANDLE for keyless operations.
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
  /// The key's label and class, for strategies that look keys up themselves.
  std::string key_label;
  CK_OBJECT_CLASS key_class = CKO_PRIVATE_KEY;
};

/// Returns the request for `operation` using `keys`.
Workload make_workload(Operation operation, const KeyHandles& keys);

/// Returns a short description of the request ("CKM_ECDSA over a 32-byte digest").
std::string describe(Operation operation);

}  // namespace hsmactor::bench
