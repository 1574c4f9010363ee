// The choices a user makes about hsmactor's actors, free of CAF: how an actor
// system of hsmactor's own runs, and whether a module is finalised.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace hsmactor {

/// How an owned actor system is configured, and how long shutting it down
/// may take.
struct RuntimeOptions {
  /// Scheduler worker threads; 0 keeps CAF's default (max(cores, 4)).
  std::size_t scheduler_threads = 0;
  /// "sharing" (hsmactor's default for an actor system of its own) or
  /// "stealing" (CAF's default).
  std::string scheduler_policy;
  /// How long ~Hsm waits for its tokens to close and its actors to stop. A
  /// PKCS#11 call that never returns would otherwise block it forever: past
  /// this bound ~Hsm returns and leaves the stuck actors (and their threads)
  /// running, never destroyed. At least 1 ms.
  std::chrono::milliseconds shutdown_timeout{30000};
};

/// Whether the last release of a module calls C_Finalize. The acquisition
/// that starts a module (the first, or the first after a last release)
/// decides; acquisitions that join a running module do not change it.
enum class FinalizePolicy {
  /// Never (the default). The process's exit cleans up; on the last release
  /// the sessions are closed and a login we made is logged out anyway. Safe
  /// when something else in the process reaches the same module, e.g. through
  /// a wrapper module: finalising under it would pull the module from under
  /// its calls. A later acquisition knows the module is still ours.
  never,
  /// On the last release of a module we initialised. Only for processes in
  /// which nothing else uses the module, by any path. Never in a child for a
  /// module the parent had initialised.
  on_last_release,
};

/// The kinds of multi-part streams.
enum class StreamKind : std::uint8_t { sign, verify, digest };

}  // namespace hsmactor
