// What identifies "this process, this module initialisation" for hsmactor:
// a fork generation and a process-unique epoch counter.
//
// Not part of the public API. Both are plain atomics, so they cost one load on
// the request path and are safe to read in a child after fork() (a child never
// touches a mutex a parent thread may have held at the fork).
//
// Usage:
//   const std::uint64_t born = fork_generation();
//   ... if (fork_generation() != born) answer Condition::forked ...
//   const std::uint64_t epoch = next_epoch();   // never 0, never repeats here
#pragma once

#include <cstdint>

namespace hsmactor {

/// Returns how many fork()s separate this process from the one that loaded
/// hsmactor: 0 there, 1 in its child, and so on. The pthread_atfork handler
/// behind it only increments a counter.
std::uint64_t fork_generation();

/// Returns a number no earlier call in this process returned, and never 0.
///
/// It names one module initialisation of one token (and each heal of it): an
/// object handle cached under one epoch is never used under another, so a
/// handle can never name another token's object or an object of an earlier
/// initialisation. A child process continues its parent's sequence, so the
/// epochs it hands out differ from every epoch inherited from the parent.
std::uint64_t next_epoch();

}  // namespace hsmactor
