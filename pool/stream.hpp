// Stream: a multi-part sign, verify or digest operation pinned to one session
// from Token::open_stream until finish, abort, or the Stream going away.
//
// PKCS#11 cannot replay or cancel a multi-part operation: if its session goes
// stale the stream fails with stream_interrupted, and a stream that does not
// finish (aborted, failed, dropped) has its session closed, never shared.
//
// Usage:
//   auto stream = token.open_stream(StreamKind::sign, Mechanism::ecdsa_sha256(), key).get();
//   stream->update(part1).get();
//   stream->update(part2).get();
//   Result<Bytes> signature = stream->finish().get();
#pragma once

#include <cstdint>
#include <memory>

#include "actors/future.hpp"
#include "actors/options.hpp"
#include "pkcs11/bytes.hpp"

namespace hsmactor {

namespace internal {
struct StreamState;
struct StreamAccess;
}  // namespace internal

class Stream {
 public:
  /// An empty stream (valid() is false); every step answers invalid_argument.
  Stream() = default;
  /// Aborts an unfinished stream (its session is closed, not reused).
  ~Stream();
  Stream(Stream&&) noexcept;
  Stream& operator=(Stream&&) noexcept;

  /// Feeds the next chunk; resolves with the bytes fed so far once the session
  /// has taken it. After the token closed: shutting_down.
  Future<std::uint64_t> update(ByteView chunk);
  /// Ends a sign or digest stream with its output.
  Future<Bytes> finish();
  /// Ends a verify stream; true for a valid signature.
  Future<bool> finish_verify(ByteView signature);
  /// Gives the session back; it is closed (never reused) if unfinished.
  void abort();

  bool valid() const { return state_ != nullptr; }

 private:
  friend struct internal::StreamAccess;
  std::shared_ptr<internal::StreamState> state_;
};

}  // namespace hsmactor
