// What the library reads and writes of a Key's cache (not public API).
#pragma once

#include <cstdint>

#include "actors/job.hpp"
#include "pool/key.hpp"

namespace hsmactor::internal {

struct KeyAccess {
  /// Returns the key's query and its cached handle, for a Job.
  static KeyRef ref(const Key& key);
  /// Records the handle a session resolved in `generation`.
  static void remember(const Key& key, std::uint64_t handle, std::uint64_t generation);
};

}  // namespace hsmactor::internal
