// Token: an open token with its session pool; the requests hsmactor serves.
//
// Every request returns at once with a Future (or takes a callback); the
// answer is a value or a typed Error (the CKR_* name where one exists), never
// a hang: a full queue answers `overloaded`, a late request
// `deadline_exceeded`, a closed token `shutting_down`.
//
// Limits (invalid_argument beyond them, before anything is queued):
//   random: 1 byte to kMaxRandomLength (1 MiB) per request;
//   batches: 1 to kMaxBatchItems items; random_many at most 16 MiB in all;
//   find_objects: 1 to kMaxFoundObjects handles per request;
//   deadlines: see TokenOptions::kMaxDeadline (longer ones are cut to it).
//
// Lifetime: copies share the pool. The pool closes (answering everything
// queued with shutting_down, closing its sessions, logging out a login it
// made) on close(), when the last copy goes (the closing then runs on
// hsmactor's completion pool, never on the releasing thread), or when the
// Hsm that opened it is destroyed. Release a Token by letting its last copy
// go out of scope, by `token = Token()`, or call close() to wait for it.
//
// Usage:
//   hsmactor::Token token = hsm.open_token(options).take();
//   auto signature = token.sign(token.private_key("signer"), Mechanism::ecdsa(), digest);
//   Result<Bytes> value = signature.get();
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "actors/future.hpp"
#include "actors/options.hpp"
#include "pkcs11/attributes.hpp"
#include "pkcs11/bytes.hpp"
#include "pkcs11/error.hpp"
#include "pkcs11/mechanism.hpp"
#include "pool/key.hpp"
#include "pool/metrics.hpp"
#include "pool/stream.hpp"

namespace hsmactor {

using pkcs11::Mechanism;

namespace internal {
class TokenCore;
struct TokenAccess;
}  // namespace internal

/// Receives trace events, one at a time and in order, on the token's executor
/// (never on a session thread, never under a lock of ours); it may block or
/// call the token, which only delays later events. The token holds a copy of
/// it until set_trace_sink() replaces it or the token closes: what the sink
/// captures must stay valid until then. set_trace_sink() and close() wait
/// for a call of the old sink in progress on another thread; when the last
/// Token copy simply goes, a call already running may still finish after.
using TraceSink = std::function<void(const TraceEvent&)>;

class Token {
 public:
  /// An empty token (valid() is false); requests on it answer invalid_argument.
  Token() = default;

  static constexpr std::size_t kMaxRandomLength = std::size_t{1} << 20;
  static constexpr std::size_t kMaxFoundObjects = 4096;
  static constexpr std::size_t kMaxBatchItems = 1024;
  static constexpr std::size_t kMaxRandomBatchBytes = std::size_t{16} << 20;

  // ---- keys and objects ----

  /// References to keys by label (looked up on first use, then cached).
  Key private_key(const std::string& label) const { return Key::private_key(label); }
  Key public_key(const std::string& label) const { return Key::public_key(label); }
  Key secret_key(const std::string& label) const { return Key::secret_key(label); }
  /// A reference to the object of `object_class` whose CKA_ID is `id`.
  Key key_by_id(CK_OBJECT_CLASS object_class, Bytes id) const {
    return Key::by_id(object_class, std::move(id));
  }
  /// Looks the key up now: resolves with `key` (its handle cached), or
  /// object_not_found.
  Future<Key> find_key(const Key& key) const;
  /// Returns the handles of up to `max_objects` objects matching `query`.
  Future<std::vector<std::uint64_t>> find_objects(const pkcs11::AttributeList& query,
                                                  std::size_t max_objects = 64) const;
  /// Reads attributes of the object `key` names (CKR_ATTRIBUTE_SENSITIVE for
  /// secrets the token will not reveal).
  Future<pkcs11::AttributeList> get_attributes(const Key& key,
                                               std::vector<CK_ATTRIBUTE_TYPE> types) const;
  /// Creates (imports) an object from its attributes; resolves with its handle.
  /// Not retried after a stale session (the object may exist already).
  Future<std::uint64_t> create_object(const pkcs11::AttributeList& attributes) const;
  /// Destroys the object `key` names.
  Future<bool> destroy(const Key& key) const;
  /// Generates a key pair; resolves with {public handle, private handle}.
  Future<pkcs11::KeyPairHandles> generate_key_pair(const pkcs11::KeyPairTemplate& spec) const;
  /// Generates a secret key; resolves with its handle.
  Future<std::uint64_t> generate_key(const pkcs11::KeyTemplate& spec) const;
  /// Reads a public key (EC point or RSA modulus and exponent).
  Future<pkcs11::PublicKey> export_public_key(const Key& public_key) const;

  // ---- cryptography ----

  Future<Bytes> sign(const Key& key, const Mechanism& mechanism, ByteView data) const;
  Future<bool> verify(const Key& key, const Mechanism& mechanism, ByteView data,
                      ByteView signature) const;
  Future<Bytes> encrypt(const Key& key, const Mechanism& mechanism, ByteView plaintext) const;
  Future<Bytes> decrypt(const Key& key, const Mechanism& mechanism, ByteView ciphertext) const;
  Future<Bytes> digest(const Mechanism& mechanism, ByteView data) const;
  /// Returns `length` random bytes, 1 to kMaxRandomLength per request.
  Future<Bytes> random(std::size_t length) const;

  // ---- batches: many operations, one hand-off, one answer ----
  //
  // A batch runs its items back to back on one session and resolves once,
  // with one Result per item, in order: an item the module refused carries
  // its own CKR_* code ("C_Sign returned CKR_DATA_LEN_RANGE in sign_many")
  // while the others succeed. If the session goes stale (or the key handle
  // is gone) during a batch, the session is replaced and the whole batch runs
  // once more, as a single request would. Overload, deadline and shutdown
  // answer the batch as a whole.

  /// Signs (or MACs, with an HMAC mechanism) each input with `key`.
  Future<std::vector<Result<Bytes>>> sign_many(const Key& key, const Mechanism& mechanism,
                                               std::vector<Bytes> inputs) const;
  /// Verifies data[i] against signatures[i] (the two must be as long).
  Future<std::vector<Result<bool>>> verify_many(const Key& key, const Mechanism& mechanism,
                                                std::vector<Bytes> data,
                                                std::vector<Bytes> signatures) const;
  Future<std::vector<Result<Bytes>>> digest_many(const Mechanism& mechanism,
                                                 std::vector<Bytes> inputs) const;
  /// Returns `count` blocks of `length` random bytes.
  Future<std::vector<Result<Bytes>>> random_many(std::size_t length, std::size_t count) const;

  /// Callback forms (any other request: `request(...).then(done)`): `done`
  /// runs once, on the token's executor, or at once on this thread when the
  /// answer is already there (overloaded, shutting_down, invalid_argument);
  /// never on a session thread, so it may block.
  void sign(const Key& key, const Mechanism& mechanism, ByteView data,
            std::function<void(Result<Bytes>)> done) const;
  void verify(const Key& key, const Mechanism& mechanism, ByteView data, ByteView signature,
              std::function<void(Result<bool>)> done) const;

  /// Opens a multi-part sign, verify or digest stream pinned to one session.
  Future<Stream> open_stream(StreamKind kind, const Mechanism& mechanism,
                             const Key& key = Key()) const;

  /// Returns a handle on the same pool whose requests have `deadline` (from
  /// when each is made) instead of TokenOptions::default_deadline. Zero or
  /// negative: every request answers deadline_exceeded.
  Token with_deadline(std::chrono::nanoseconds deadline) const;
  /// Returns a handle on the same pool whose callbacks and then()
  /// continuations (also of streams it opens) run on `executor` (a
  /// CompletionQueue an event loop drains, say) instead of the token's; null:
  /// the token's again. Trace events stay on the token's executor.
  Token with_executor(std::shared_ptr<Executor> executor) const;

  // ---- the pool ----

  /// Returns a snapshot of the pool's metrics (shutting_down once closed).
  Result<PoolMetrics> metrics() const;
  /// Returns the token's label and the module's real path.
  const std::string& label() const;
  const std::string& module_path() const;
  /// Installs a trace sink (replacing any earlier one); nullptr removes it.
  void set_trace_sink(TraceSink sink) const;

  /// Answers every queued request with shutting_down, closes the sessions and
  /// logs out a login this token made. Idempotent; blocks until done (also
  /// when another thread is closing it), so do not call it from an actor's
  /// handler: there, let the last copy go instead.
  void close() const;

  bool valid() const { return core_ != nullptr; }

 private:
  friend struct internal::TokenAccess;
  std::shared_ptr<internal::TokenCore> core_;
  /// Deadline of this handle's requests; zero: the token's default.
  std::chrono::nanoseconds deadline_{0};
  /// Where this handle's continuations run; null: the token's executor.
  std::shared_ptr<Executor> executor_;
};

}  // namespace hsmactor
