#include "tools/bench/workload.hpp"

namespace hsmactor::bench {
namespace {

/// Returns `size` bytes of a fixed, non-trivial pattern.
Bytes pattern(std::size_t size) {
  Bytes bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<std::uint8_t>(i * 31 + 7);
  return bytes;
}

}  // namespace

Workload make_workload(Operation operation, const KeyHandles& keys) {
  Workload workload;
  workload.operation = operation;
  switch (operation) {
    case Operation::ecdsa:
      workload.mechanism = pkcs11::Mechanism::ecdsa();
      workload.data = pattern(32);
      workload.key = keys.ec256;
      workload.key_label = KeyLabels::ec256;
      break;
    case Operation::rsa:
      workload.mechanism = pkcs11::Mechanism::rsa_pkcs_sha256();
      workload.data = pattern(32);
      workload.key = keys.rsa2048;
      workload.key_label = KeyLabels::rsa2048;
      break;
    case Operation::hmac:
      workload.mechanism = pkcs11::Mechanism::hmac_sha256();
      workload.data = pattern(32);
      workload.key = keys.hmac;
      workload.key_label = KeyLabels::hmac;
      workload.key_class = CKO_SECRET_KEY;
      break;
    case Operation::random:
      workload.random_length = 32;
      break;
    case Operation::digest:
      workload.mechanism = pkcs11::Mechanism::sha256();
      workload.data = pattern(1024);
      break;
  }
  return workload;
}

std::string describe(Operation operation) {
  switch (operation) {
    case Operation::ecdsa: return "ECDSA P-256, CKM_ECDSA over a 32-byte digest";
    case Operation::rsa: return "RSA-2048, CKM_SHA256_RSA_PKCS over a 32-byte message";
    case Operation::hmac: return "HMAC-SHA256, CKM_SHA256_HMAC over a 32-byte message";
    case Operation::random: return "C_GenerateRandom, 32 bytes";
    case Operation::digest: return "SHA-256, CKM_SHA256 over 1 KiB";
  }
  return "?";
}

}  // namespace hsmactor::bench
