// Job and JobResult: what a single-shot request to a session carries, and
// what comes back; StreamSpec opens a multi-part stream. Free of CAF (the
// message protocol in actors/protocol.hpp adds their inspect() functions).
#pragma once

#include <cstdint>
#include <vector>

#include "actors/options.hpp"
#include "pkcs11/attributes.hpp"
#include "pkcs11/bytes.hpp"
#include "pkcs11/mechanism.hpp"

namespace hsmactor {

/// The single-shot operations; listed, named and described once, in
/// actors/operations.hpp.
enum class Op : std::uint8_t;

/// A key, as found by its attributes, with the handle found last time.
struct KeyRef {
  /// What identifies the key (CKA_CLASS plus CKA_LABEL and/or CKA_ID).
  pkcs11::AttributeList query;
  /// The handle found earlier, valid only in `generation`; 0 = not resolved.
  std::uint64_t handle = 0;
  /// The token generation (a process-unique epoch) the handle belongs to.
  std::uint64_t generation = 0;
};

/// One single-shot request to a session.
struct Job {
  Op op{};
  pkcs11::Mechanism mechanism;
  KeyRef key;
  Bytes data;
  /// verify: the signature.
  Bytes signature;
  /// random: how many bytes; find_objects: the limit.
  std::uint64_t length = 0;
  /// generate_key_pair: public, private; generate_key / create_object /
  /// find_objects: the first.
  pkcs11::AttributeList attributes;
  pkcs11::AttributeList private_attributes;
  /// get_attributes: which ones.
  std::vector<std::uint64_t> attribute_types;
  /// destroy_object / get_attributes / export_public_key may name an object
  /// by handle instead of `key`.
  std::uint64_t object = 0;
  /// Batches (sign_batch, verify_batch, digest_batch): one input per item;
  /// verify_batch: one signature per item beside them. random_batch: `count`
  /// items of `length` bytes.
  std::vector<Bytes> items;
  std::vector<Bytes> item_signatures;
  std::uint64_t count = 0;
  /// steady_clock time (ns since its epoch) after which the job is not started.
  std::int64_t deadline_ns = 0;
};

/// The answer to a Job; which fields are set depends on the operation.
struct JobResult {
  Bytes bytes;                          ///< sign/encrypt/decrypt/digest/random
  bool verified = false;                ///< verify
  std::vector<std::uint64_t> handles;   ///< find_objects; key pair: public, private
  pkcs11::AttributeList attributes;     ///< get_attributes
  pkcs11::PublicKey public_key;         ///< export_public_key
  std::uint64_t key_handle = 0;         ///< the key handle used, for caches
  std::uint64_t key_generation = 0;     ///< the generation it is valid in
  std::uint32_t attempts = 1;           ///< 2 when the job was retried on a new session
  /// Batches, one entry per item, in order: the output (sign, digest,
  /// random), the verdict (verify: 1 valid, 0 not), and the item's CKR_*
  /// code (CKR_OK when it succeeded).
  std::vector<Bytes> item_outputs;
  std::vector<std::uint8_t> item_verified;
  std::vector<std::uint64_t> item_rvs;
};

/// Opens a multi-part stream on a session actor.
struct StreamSpec {
  StreamKind kind = StreamKind::digest;
  pkcs11::Mechanism mechanism;
  KeyRef key;
  std::int64_t deadline_ns = 0;
  /// Process-unique (next_epoch()), chosen by the caller: every later step
  /// names it, so a step of an abandoned stream never touches the next one,
  /// and the caller can give the stream up before it knows its session.
  std::uint64_t stream_id = 0;
};

}  // namespace hsmactor
