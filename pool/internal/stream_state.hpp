// What a Stream holds (not public API). Its steps go straight to the pinned
// session actor; its end (finish, failure, give-up, or the last Stream handle
// going) goes to the pool, which alone decides the session's fate: aborted
// (closed) on its own thread before anyone else may pin it, or given back
// when the stream finished.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "actors/protocol.hpp"
#include "pkcs11/mechanism.hpp"
#include "pool/key.hpp"
#include "pool/stream.hpp"

namespace hsmactor::internal {

class TokenCore;

struct StreamState {
  std::shared_ptr<TokenCore> core;
  /// Weak: a Stream kept after its token closed must not keep the session
  /// actor (or its actor system) alive.
  caf::actor_addr session;
  std::uint64_t stream_id = 0;
  std::chrono::milliseconds deadline{30000};
  /// Where the steps' continuations run: the handle's executor that opened
  /// the stream, else the token's.
  std::shared_ptr<Executor> executor;
  std::atomic<bool> done{false};

  /// Gives the session back to the pool exactly once; `tainted`: the
  /// operation may still be active in the module, so the session is closed.
  void end(bool tainted);
  static void release(TokenCore& core, std::uint64_t stream_id, bool tainted);
  /// The answer a step gets once the stream is over.
  Error finished_error(const char* operation) const;
  /// Why a step cannot go at all (empty, closed, finished), if it cannot.
  static std::optional<Error> refuse(const StreamState* state, const char* operation);
  /// The error a failed step answers: shutting_down once the token closed.
  Error step_error(const Error& error, const char* operation) const;
};

/// Opens a stream on `core`'s pool (Token::open_stream); a zero
/// `deadline_override` means the token's default deadline, a null
/// `executor` the token's executor.
Future<Stream> open_stream(const std::shared_ptr<TokenCore>& core, StreamKind kind,
                           const pkcs11::Mechanism& mechanism, const Key& key,
                           std::chrono::nanoseconds deadline_override,
                           std::shared_ptr<Executor> executor);

struct StreamAccess {
  static Stream make(std::shared_ptr<StreamState> state) {
    Stream stream;
    stream.state_ = std::move(state);
    return stream;
  }
};

}  // namespace hsmactor::internal
