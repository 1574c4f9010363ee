// The three ways the signing server reaches the token, behind one interface,
// so the server, its test and its benchmark differ only in --mode:
//   hsmactor   async_sign through hsmactor's pool (asio/hsmactor_asio.hpp);
//              continuations batched onto the server's loop by a LoopExecutor,
//              or (--completion=pool) through hsmactor's completion pool.
//   sync-loop  baseline: C_Sign called synchronously on the loop thread, one
//              PKCS#11 session per loop thread (the loop stalls meanwhile).
//   raw-pool   baseline: a thread pool, each thread with its own raw session,
//              fed by a mutex-and-condition-variable queue; answers posted
//              back to the connection's executor.
// Every mode signs a SHA-256 digest with CKM_ECDSA and answers the raw r || s.
//
// Usage:
//   Result<std::unique_ptr<Signer>> signer = make_signer(config, io);
//   (*signer)->sign(digest, socket.get_executor(), [](std::error_code ec, Bytes sig, std::string why) {...});
//   ... io.run() returns ... (*signer)->stop();
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/io_context.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <system_error>

#include "hsmactor.hpp"

namespace hsmactor::sign_server {

/// Runs once on the executor passed to Signer::sign: the signature, or an
/// error code with a one-line reason (no secrets in it).
using SignDone = std::function<void(std::error_code, Bytes signature, std::string reason)>;

class Signer {
 public:
  virtual ~Signer() = default;
  /// Signs the 32-byte `digest`; `done` runs once on `executor` (inline for
  /// sync-loop, which is already there).
  virtual void sign(Bytes digest, const asio::any_io_executor& executor, SignDone done) = 0;
  /// Ends the work: call after the loop threads have returned.
  virtual void stop() = 0;
  /// Returns a line of counters for the log at exit, or "".
  virtual std::string stats() const { return {}; }
};

enum class Mode { hsmactor, sync_loop, raw_pool };

/// What make_signer needs.
struct SignerConfig {
  Mode mode = Mode::hsmactor;
  std::string module_path;
  std::string token_label;
  std::string key_label;
  Pin pin;
  /// hsmactor: max_sessions; raw-pool: worker threads (one session each).
  std::size_t sessions = 2;
  /// hsmactor only: run continuations on the loop through a LoopExecutor.
  bool loop_executor = true;
};

/// Opens the token for `config.mode` (loads and initialises the module, logs
/// in, finds the key); errors say what failed.
Result<std::unique_ptr<Signer>> make_signer(const SignerConfig& config, asio::io_context& io);

}  // namespace hsmactor::sign_server
