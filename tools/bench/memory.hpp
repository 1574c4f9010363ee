// Resident memory: what opening sessions costs the process.
//
// RSS comes from /proc/self/statm, sampled before and after opening N sessions
// (or N hsmactor session actors) and divided by N. It therefore includes
// everything those sessions made the process touch: the module's own
// per-session state, and for actors their thread stacks and allocator arenas.
//
// Usage:
//   MemoryMeasurement raw = measure_raw_sessions(module, slot, 64);
//   raw.per_session_bytes();
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "pkcs11/cryptoki.hpp"
#include "pkcs11/module.hpp"

namespace hsmactor::bench {

/// Returns the process's resident set size in bytes, or 0 if unknown.
std::int64_t resident_bytes();

/// RSS growth for opening a number of sessions.
struct MemoryMeasurement {
  std::size_t sessions = 0;
  std::int64_t rss_before = 0;
  std::int64_t rss_after = 0;
  /// Empty when measured; otherwise why not.
  std::string note;

  bool measured() const { return note.empty() && sessions > 0; }
  double per_session_bytes() const {
    return sessions == 0 ? 0 : static_cast<double>(rss_after - rss_before) / sessions;
  }
};

/// Opens `count` plain PKCS#11 sessions on `slot`, samples RSS, closes them:
/// the module's own memory per session.
MemoryMeasurement measure_raw_sessions(pkcs11::Module& module, CK_SLOT_ID slot,
                                       std::size_t count);

}  // namespace hsmactor::bench
