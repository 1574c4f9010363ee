// hsmactor's public API: open a token, find keys, sign, verify, encrypt,
// decrypt, digest, generate keys, stream, and watch what the pool does.
//
// Every call returns at once with a Future (or takes a callback); the answer is
// a value or a typed Error (the CKR_* name where one exists), never a hang:
// full queues answer `overloaded`, late requests `deadline_exceeded`, closed
// tokens `shutting_down`.
//
// Usage:
//   hsmactor::Hsm hsm;
//   hsmactor::TokenOptions options;
//   options.module_path = "/usr/lib/softhsm/libsofthsm2.so";
//   options.label = "signer";
//   options.pin = hsmactor::Pin("1234");
//   auto token = hsm.open_token(options);               // Result<Token>
//   hsmactor::Key key = token->key("ec256");            // looked up lazily, cached
//   auto signature = token->sign(key, hsmactor::pkcs11::Mechanism::ecdsa(), digest).get();
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "actors/executor.hpp"
#include "actors/future.hpp"
#include "actors/library_registry.hpp"
#include "actors/protocol.hpp"
#include "actors/runtime.hpp"
#include "pkcs11/attributes.hpp"
#include "pkcs11/bytes.hpp"
#include "pkcs11/error.hpp"
#include "pkcs11/mechanism.hpp"
#include "pkcs11/pin.hpp"
#include "pool/metrics.hpp"

namespace caf {
class actor_system;
}

namespace hsmactor {

using pkcs11::Mechanism;

/// Which token to open and how to run its pool.
struct TokenOptions {
  /// The PKCS#11 module; may also come from the URI's module-path.
  std::string module_path;
  /// Select the token by label, by serial, or by an RFC 7512 pkcs11: URI
  /// (token=, serial=, module-path=, pin-value= are understood).
  std::string label;
  std::string serial;
  std::string uri;
  /// The user PIN; empty for tokens without login. Wiped when released.
  Pin pin;
  /// Sessions kept open at least / opened at most (never above the token's
  /// own limit, minus the one session that holds the login); 1 to kMaxSessions.
  std::size_t min_sessions = 1;
  std::size_t max_sessions = 4;
  /// Requests that may wait for a session; beyond it: `overloaded`.
  /// 1 to kMaxQueueLimit.
  std::size_t queue_limit = 1024;
  /// Deadline of a request that names none; more than 0, at most kMaxDeadline.
  std::chrono::milliseconds default_deadline{30000};
  /// Where continuations (Future::then), callbacks and the trace sink run;
  /// null: hsmactor's completion pool (see actors/executor.hpp).
  std::shared_ptr<Executor> executor;

  /// Bounds of the options above; open_token answers invalid_argument beyond.
  static constexpr std::size_t kMaxSessions = 1024;
  static constexpr std::size_t kMaxQueueLimit = std::size_t{1} << 20;
  static constexpr std::chrono::hours kMaxDeadline{24 * 366};
  /// Whether the module's last release calls C_Finalize (the open that
  /// starts the module decides; see FinalizePolicy). Default: never, since
  /// another consumer in the process may use the module through a path
  /// hsmactor cannot see (a wrapper module, p11-kit's proxy).
  FinalizePolicy finalize = FinalizePolicy::never;
};

/// Receives trace events, one at a time and in order, on the token's executor
/// (never on a session thread, never under a lock of ours); it may block or
/// call the token, which only delays later events.
using TraceSink = std::function<void(const TraceEvent&)>;

class Token;

/// A reference to a key by label and/or id and class; the object handle is
/// cached and revalidated after session or token resets.
class Key {
 public:
  Key() = default;
  /// Returns a reference to the private (or secret) key labelled `label`.
  static Key private_key(const std::string& label);
  static Key public_key(const std::string& label);
  static Key secret_key(const std::string& label);
  /// Returns a reference to the object of `object_class` with `id`.
  static Key by_id(CK_OBJECT_CLASS object_class, Bytes id);

  const pkcs11::AttributeList& query() const;
  /// Returns the current cache as a KeyRef for a Job.
  KeyRef ref() const;
  /// Records the handle a session resolved (for later requests).
  void remember(std::uint64_t handle, std::uint64_t generation) const;
  bool valid() const { return state_ != nullptr; }

 private:
  struct State;
  std::shared_ptr<State> state_;
};

/// A multi-part operation pinned to one session until finish() or abort().
class Stream {
 public:
  Stream() = default;
  ~Stream();
  Stream(Stream&&) noexcept;
  Stream& operator=(Stream&&) noexcept;

  /// Feeds the next chunk; the future resolves when the session has taken it.
  Future<std::uint64_t> update(ByteView chunk);
  /// Ends a sign or digest stream with its output.
  Future<Bytes> finish();
  /// Ends a verify stream; true for a valid signature.
  Future<bool> finish_verify(ByteView signature);
  /// Gives the session back; it is closed (never reused) if unfinished.
  void abort();

 public:
  struct State;  // defined in hsm.cpp

 private:
  friend class Token;
  std::shared_ptr<State> state_;
};

/// An open token with its session pool. Copies share the pool; the pool
/// closes (answering everything queued) when the last copy goes or close().
class Token {
 public:
  Token() = default;

  /// Returns a reference to a key; the lookup happens on first use.
  Key key(const std::string& label) const { return Key::private_key(label); }
  /// Looks the key up now: resolves with object_not_found if it is missing.
  Future<Key> find_key(const Key& key) const;

  Future<Bytes> sign(const Key& key, const Mechanism& mechanism, ByteView data) const;
  Future<bool> verify(const Key& key, const Mechanism& mechanism, ByteView data,
                      ByteView signature) const;
  Future<Bytes> encrypt(const Key& key, const Mechanism& mechanism, ByteView plaintext) const;
  Future<Bytes> decrypt(const Key& key, const Mechanism& mechanism, ByteView ciphertext) const;
  Future<Bytes> digest(const Mechanism& mechanism, ByteView data) const;
  /// Returns `length` random bytes, 1 to kMaxRandomLength (1 MiB) per request;
  /// beyond, invalid_argument.
  Future<Bytes> random(std::size_t length) const;
  static constexpr std::size_t kMaxRandomLength = std::size_t{1} << 20;
  /// Generates a key pair; resolves with {public handle, private handle}.
  Future<pkcs11::KeyPairHandles> generate_key_pair(const pkcs11::KeyPairTemplate& spec) const;
  /// Generates a secret key; resolves with its handle.
  Future<std::uint64_t> generate_key(const pkcs11::KeyTemplate& spec) const;
  /// Reads a public key (EC point or RSA modulus and exponent).
  Future<pkcs11::PublicKey> export_public_key(const Key& public_key) const;
  /// Destroys the object `key` names.
  Future<bool> destroy(const Key& key) const;

  /// Callback forms: `done` runs once, on the token's executor (or at once on
  /// this thread when the answer is already there, e.g. overloaded or
  /// shutting_down); never on a session thread, so it may block.
  void sign(const Key& key, const Mechanism& mechanism, ByteView data,
            std::function<void(Result<Bytes>)> done) const;
  void verify(const Key& key, const Mechanism& mechanism, ByteView data, ByteView signature,
              std::function<void(Result<bool>)> done) const;

  /// Runs any Job (the typed protocol) and resolves with its JobResult.
  Future<JobResult> submit(Job job) const;
  /// Callback form of submit.
  void submit(Job job, std::function<void(Result<JobResult>)> done) const;

  /// Opens a multi-part sign, verify or digest stream pinned to one session.
  Future<Stream> open_stream(StreamKind kind, const Mechanism& mechanism,
                             const Key& key = Key()) const;

  /// Returns the pool's typed actor handle, for callers that are actors
  /// (send run_atom + Job, get JobResult).
  caf::actor pool_handle() const;
  /// Returns a snapshot of the pool's metrics.
  Result<PoolMetrics> metrics() const;
  /// Returns the token's label and the module's real path.
  const std::string& label() const;
  const std::string& module_path() const;
  /// Installs a trace sink (replacing any earlier one); nullptr removes it.
  void set_trace_sink(TraceSink sink) const;

  /// Answers every queued request with shutting_down, closes the sessions and
  /// logs out if this was the token's last user. Idempotent. Blocks until
  /// done, except inside a callback on a CAF thread (where blocking would
  /// stall the answers it waits for): there the closing, like that of a last
  /// copy released in a callback, runs on a thread of its own.
  void close() const;

  bool valid() const { return core_ != nullptr; }

 private:
  friend class Hsm;
  friend class Stream;
  struct Core;
  std::shared_ptr<Core> core_;
};

/// The entry point: owns (or borrows) the actor system hsmactor runs on.
class Hsm {
 public:
  /// Runs on an actor system of its own.
  explicit Hsm(const RuntimeOptions& options = {});
  /// Runs on the application's actor system, which must outlive this Hsm.
  explicit Hsm(caf::actor_system& system);
  ~Hsm();
  Hsm(const Hsm&) = delete;
  Hsm& operator=(const Hsm&) = delete;

  /// Opens a token: loads and initialises the module (once per process), finds
  /// the token, logs in (once per token per process; CKR_PIN_INCORRECT on a
  /// wrong PIN) and starts its pool. Blocks; call it from a plain thread.
  Result<Token> open_token(const TokenOptions& options);

  const std::shared_ptr<Runtime>& runtime() const { return runtime_; }

 private:
  std::shared_ptr<Runtime> runtime_;
};

}  // namespace hsmactor
