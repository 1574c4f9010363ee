// The single-shot operations, each described once: its row in
// HSMACTOR_OPERATIONS (name, which key it takes, whether a stale session may
// be retried) and its run<Op::name>() below (how it runs on a session). The
// enum, the names, the dispatch (actors/session_core.cpp) and the metrics
// slots (pool/pool_recorder.hpp) all follow from these two.
//
// Adding an operation: a row, its run<>() here, and its Token method
// (pool/token.hpp and pool/token.cpp), plus its tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "actors/job.hpp"
#include "pkcs11/session.hpp"

namespace hsmactor {

/// Which key an operation takes.
enum class KeyUse : std::uint8_t {
  none,       ///< no key
  required,   ///< Job::key, resolved (and cached) on the session
  or_object,  ///< Job::object when set, else Job::key
};

/// Key generation and object creation are not retried after a stale session:
/// the first attempt may have created the object before the session died.
enum class StaleRetry : bool { no = false, yes = true };

//  name               key                 stale retry
#define HSMACTOR_OPERATIONS(X)                                 \
  X(sign,              KeyUse::required,  StaleRetry::yes)     \
  X(verify,            KeyUse::required,  StaleRetry::yes)     \
  X(encrypt,           KeyUse::required,  StaleRetry::yes)     \
  X(decrypt,           KeyUse::required,  StaleRetry::yes)     \
  X(digest,            KeyUse::none,      StaleRetry::yes)     \
  X(random,            KeyUse::none,      StaleRetry::yes)     \
  X(generate_key_pair, KeyUse::none,      StaleRetry::no)      \
  X(generate_key,      KeyUse::none,      StaleRetry::no)      \
  X(create_object,     KeyUse::none,      StaleRetry::no)      \
  X(destroy_object,    KeyUse::or_object, StaleRetry::no)      \
  X(find_objects,      KeyUse::none,      StaleRetry::yes)     \
  X(get_attributes,    KeyUse::or_object, StaleRetry::yes)     \
  X(export_public_key, KeyUse::or_object, StaleRetry::yes)     \
  X(login_check,       KeyUse::none,      StaleRetry::yes)     \
  X(sign_batch,        KeyUse::required,  StaleRetry::yes)     \
  X(verify_batch,      KeyUse::required,  StaleRetry::yes)     \
  X(digest_batch,      KeyUse::none,      StaleRetry::yes)     \
  X(random_batch,      KeyUse::none,      StaleRetry::yes)

enum class Op : std::uint8_t {
#define HSMACTOR_OPERATION_ENUM(name, key, retry) name,
  HSMACTOR_OPERATIONS(HSMACTOR_OPERATION_ENUM)
#undef HSMACTOR_OPERATION_ENUM
};

/// How many operations there are (Op values are 0 to kOperationCount - 1).
inline constexpr std::size_t kOperationCount = 0
#define HSMACTOR_OPERATION_COUNT(name, key, retry) +1
    HSMACTOR_OPERATIONS(HSMACTOR_OPERATION_COUNT)
#undef HSMACTOR_OPERATION_COUNT
    ;

/// Returns "sign", "verify", ... ("unknown" for a value outside the table).
const char* to_string(Op op);
/// Returns which key `op` takes.
KeyUse key_use(Op op);
/// Returns true when `op` may run again on a new session after a stale one.
bool may_retry_after_stale_session(Op op);

/// Largest random request a session serves (Token::kMaxRandomLength).
inline constexpr std::uint64_t kMaxRandomBytes = std::uint64_t{1} << 20;
/// Most items one batch carries (Token::kMaxBatchItems), and most random
/// bytes one random batch asks for in all.
inline constexpr std::uint64_t kMaxBatchItems = 1024;
inline constexpr std::uint64_t kMaxRandomBatchBytes = std::uint64_t{16} << 20;

/// What an operation runs with: the session, the job, the key handle
/// (CK_INVALID_HANDLE for KeyUse::none) and the result to fill in.
struct OperationCall {
  pkcs11::Session& session;
  const Job& job;
  CK_OBJECT_HANDLE key;
  JobResult& result;
};

/// How each operation runs on a session; one specialisation per row.
template <Op op>
Result<void> run(const OperationCall& call);

template <>
inline Result<void> run<Op::sign>(const OperationCall& c) {
  auto signature = c.session.sign(c.job.mechanism, c.key, c.job.data);
  if (!signature) return signature.error();
  c.result.bytes = std::move(*signature);
  return success();
}

template <>
inline Result<void> run<Op::verify>(const OperationCall& c) {
  auto valid = c.session.verify(c.job.mechanism, c.key, c.job.data, c.job.signature);
  if (!valid) return valid.error();
  c.result.verified = *valid;
  return success();
}

template <>
inline Result<void> run<Op::encrypt>(const OperationCall& c) {
  auto out = c.session.encrypt(c.job.mechanism, c.key, c.job.data);
  if (!out) return out.error();
  c.result.bytes = std::move(*out);
  return success();
}

template <>
inline Result<void> run<Op::decrypt>(const OperationCall& c) {
  auto out = c.session.decrypt(c.job.mechanism, c.key, c.job.data);
  if (!out) return out.error();
  c.result.bytes = std::move(*out);
  return success();
}

template <>
inline Result<void> run<Op::digest>(const OperationCall& c) {
  auto out = c.session.digest(c.job.mechanism, c.job.data);
  if (!out) return out.error();
  c.result.bytes = std::move(*out);
  return success();
}

template <>
inline Result<void> run<Op::random>(const OperationCall& c) {
  // Checked here too: a Job may come from an actor caller, not only a Token.
  if (c.job.length == 0 || c.job.length > kMaxRandomBytes) {
    return Error::make(Condition::invalid_argument, "random takes 1 byte to 1 MiB per request");
  }
  auto out = c.session.random(c.job.length);
  if (!out) return out.error();
  c.result.bytes = std::move(*out);
  return success();
}

template <>
inline Result<void> run<Op::generate_key_pair>(const OperationCall& c) {
  pkcs11::KeyPairTemplate spec{c.job.mechanism, c.job.attributes, c.job.private_attributes};
  auto pair = c.session.generate_key_pair(spec);
  if (!pair) return pair.error();
  c.result.handles = {pair->public_key, pair->private_key};
  return success();
}

template <>
inline Result<void> run<Op::generate_key>(const OperationCall& c) {
  pkcs11::KeyTemplate spec{c.job.mechanism, c.job.attributes};
  auto key = c.session.generate_key(spec);
  if (!key) return key.error();
  c.result.handles = {*key};
  return success();
}

template <>
inline Result<void> run<Op::create_object>(const OperationCall& c) {
  auto object = c.session.create_object(c.job.attributes);
  if (!object) return object.error();
  c.result.handles = {*object};
  return success();
}

template <>
inline Result<void> run<Op::destroy_object>(const OperationCall& c) {
  return c.session.destroy_object(c.key);
}

template <>
inline Result<void> run<Op::find_objects>(const OperationCall& c) {
  auto found = c.session.find_objects(c.job.attributes, c.job.length);
  if (!found) return found.error();
  c.result.handles.assign(found->begin(), found->end());
  return success();
}

template <>
inline Result<void> run<Op::get_attributes>(const OperationCall& c) {
  std::vector<CK_ATTRIBUTE_TYPE> types(c.job.attribute_types.begin(), c.job.attribute_types.end());
  auto attributes = c.session.get_attributes(c.key, types);
  if (!attributes) return attributes.error();
  c.result.attributes = std::move(*attributes);
  return success();
}

template <>
inline Result<void> run<Op::export_public_key>(const OperationCall& c) {
  auto public_key = c.session.export_public_key(c.key);
  if (!public_key) return public_key.error();
  c.result.public_key = std::move(*public_key);
  return success();
}

template <>
inline Result<void> run<Op::login_check>(const OperationCall& c) {
  // No work beyond proving the session usable.
  auto info = c.session.info();
  if (!info) return info.error();
  return success();
}

/// Whether an item's failure fails its whole batch: a code about the session
/// (stale) or the key handle (gone) is healed or looked up again by the
/// session actor and the batch runs again as a whole (its items are
/// single-shot, so running them twice is harmless, and nobody has seen the
/// first answers). Any other code is that item's own answer.
bool fails_whole_batch(CK_RV rv);

/// Runs `count` items back to back; `run_item(i)` returns the item's output
/// or its error. Results go to the call's item_outputs and item_rvs.
template <class RunItem>
Result<void> run_items(const OperationCall& c, std::size_t count, RunItem run_item) {
  if (count == 0 || count > kMaxBatchItems) {
    return Error::make(Condition::invalid_argument, "a batch takes 1 to 1024 items");
  }
  c.result.item_outputs.assign(count, Bytes());
  c.result.item_rvs.assign(count, CKR_OK);
  for (std::size_t i = 0; i < count; ++i) {
    Result<Bytes> output = run_item(i);
    if (output) {
      c.result.item_outputs[i] = std::move(*output);
      continue;
    }
    if (fails_whole_batch(output.error().rv())) return output.error();
    // A failure without a CKR_* code (never expected from a session call)
    // still must not read as success.
    c.result.item_rvs[i] = output.error().rv() != CKR_OK ? output.error().rv() : CKR_GENERAL_ERROR;
  }
  return success();
}

template <>
inline Result<void> run<Op::sign_batch>(const OperationCall& c) {
  return run_items(c, c.job.items.size(), [&](std::size_t i) {
    return c.session.sign(c.job.mechanism, c.key, c.job.items[i]);
  });
}

template <>
inline Result<void> run<Op::verify_batch>(const OperationCall& c) {
  if (c.job.items.size() != c.job.item_signatures.size()) {
    return Error::make(Condition::invalid_argument,
                       "a verify batch needs one signature per item");
  }
  c.result.item_verified.assign(c.job.items.size(), 0);
  return run_items(c, c.job.items.size(), [&](std::size_t i) -> Result<Bytes> {
    auto valid = c.session.verify(c.job.mechanism, c.key, c.job.items[i], c.job.item_signatures[i]);
    if (!valid) return valid.error();
    c.result.item_verified[i] = *valid ? 1 : 0;
    return Bytes();
  });
}

template <>
inline Result<void> run<Op::digest_batch>(const OperationCall& c) {
  return run_items(c, c.job.items.size(), [&](std::size_t i) {
    return c.session.digest(c.job.mechanism, c.job.items[i]);
  });
}

template <>
inline Result<void> run<Op::random_batch>(const OperationCall& c) {
  // Checked here too: a Job may come from an actor caller, not only a Token.
  if (c.job.length == 0 || c.job.length > kMaxRandomBytes ||
      c.job.count > kMaxRandomBatchBytes / c.job.length) {
    return Error::make(Condition::invalid_argument,
                       "random batches take 1 byte to 1 MiB per item and 16 MiB in all");
  }
  return run_items(c, c.job.count, [&](std::size_t) { return c.session.random(c.job.length); });
}

/// Runs `call.job.op` (dispatch through the table; internal_error outside it).
Result<void> run_operation(const OperationCall& call);

}  // namespace hsmactor
