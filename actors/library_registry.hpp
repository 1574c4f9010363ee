// The process-wide registry of PKCS#11 modules, keyed by real path.
//
// The first acquisition of a module loads it and starts its LibrarySupervisor
// (which calls C_Initialize once); later acquisitions share it; the last
// release stops the supervisor, which closes every session, logs out a login
// it made and, under FinalizePolicy::on_last_release, finalises the module if
// we initialised it. Concurrent first acquisitions initialise exactly once:
// the others wait for the first, outside the registry's lock. An acquisition
// that follows a last release waits until that release's stop is done.
//
// Locking: the registry's mutex guards only its maps; nothing that can block
// (C_Initialize, a supervisor's stop, waiting for another thread) runs under
// it, so a fork() from any thread never leaves a child waiting on it.
//
// Fork: the registry belongs to one fork generation. A child's first use
// builds a fresh, empty registry (the parent's, with its actors and mutex, is
// left untouched and leaked); leases from the parent release nothing. Modules
// the parent had initialised stay initialised in the child (their state is a
// copy of the parent's): the child never finalises them.
//
// Usage:
//   auto lease = acquire_library(runtime, "/usr/lib/softhsm/libsofthsm2.so");
//   if (lease) (*lease)->supervisor();   // released when the last copy goes
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "actors/options.hpp"
#include "actors/protocol.hpp"
#include "actors/runtime.hpp"
#include "pkcs11/module.hpp"

namespace hsmactor {

struct LibraryEntry;

/// One user's hold on a module; the module is released when this is destroyed.
class LibraryLease {
 public:
  explicit LibraryLease(std::shared_ptr<LibraryEntry> entry);
  ~LibraryLease();
  LibraryLease(const LibraryLease&) = delete;
  LibraryLease& operator=(const LibraryLease&) = delete;

  /// Returns the module's supervisor.
  const supervisor_actor& supervisor() const;
  /// Returns the loaded module.
  const std::shared_ptr<pkcs11::Module>& module() const;
  /// Returns the runtime the supervisor lives in.
  const std::shared_ptr<Runtime>& runtime() const;
  /// Returns the module's real path.
  const std::string& path() const;

 private:
  std::shared_ptr<LibraryEntry> entry_;
};

/// Acquires the module at `path`, starting it on `runtime` if no one in this
/// process holds it yet (else the existing supervisor is shared, whichever
/// runtime it lives in). Blocks until C_Initialize is done (or, for a waiting
/// acquisition, until `timeout`: deadline_exceeded); call it from a plain
/// thread, not from inside an actor. `finalize` applies when this acquisition
/// starts the module.
Result<std::shared_ptr<LibraryLease>> acquire_library(
    const std::shared_ptr<Runtime>& runtime, const std::string& path,
    std::chrono::nanoseconds timeout = std::chrono::seconds(30),
    FinalizePolicy finalize = FinalizePolicy::never);

/// Returns how many leases hold the module at `path` in this process.
std::size_t library_users(const std::string& path);

}  // namespace hsmactor
