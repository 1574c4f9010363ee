// Test-only hooks into a token's pool (the soak tool, fault tests); never part
// of the public API.
#pragma once

#include "actors/future.hpp"
#include "actors/operations.hpp"
#include "pool/token.hpp"

namespace hsmactor::testing_hooks {

/// Kills one of the token's session actors, whatever it is doing; the pool
/// replaces it as for any session that dies.
void kill_one_session(const Token& token);

/// Runs any Job through the token's one admission (as the public requests
/// do), for tests that build Jobs of every kind; a Job without a deadline
/// gets the token's default.
Future<JobResult> submit(const Token& token, Job job);

}  // namespace hsmactor::testing_hooks
