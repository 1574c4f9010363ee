// The functional core of a session actor: runs one Job on one session.
//
// Plain synchronous code with no actors, so it is tested on its own. It
// resolves key references (using a cached handle only when it belongs to the
// current generation, and looking the key up again when the token says the
// handle is gone) and runs each Op as actors/operations.hpp describes it.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "actors/job.hpp"
#include "actors/operations.hpp"
#include "pkcs11/session.hpp"

namespace hsmactor {

/// Object handles this session found, by their query; valid for one generation.
class KeyCache {
 public:
  /// Returns the handle cached for `query`, or 0.
  CK_OBJECT_HANDLE find(const pkcs11::AttributeList& query) const;
  void remember(const pkcs11::AttributeList& query, CK_OBJECT_HANDLE handle);
  void forget(const pkcs11::AttributeList& query);
  void clear() { handles_.clear(); }

 private:
  static std::string key_of(const pkcs11::AttributeList& query);
  std::map<std::string, CK_OBJECT_HANDLE> handles_;
};

/// Returns a description of a key query for errors ("label=\"signer\"").
std::string describe_key(const pkcs11::AttributeList& query);

/// Returns the handle of the key `key` names, in `generation`.
Result<CK_OBJECT_HANDLE> resolve_key(pkcs11::Session& session, const KeyRef& key,
                                     std::uint64_t generation, KeyCache& cache);

/// Runs `job` on `session`. When a cached key handle turns out to be invalid
/// (CKR_KEY_HANDLE_INVALID / CKR_OBJECT_HANDLE_INVALID), looks the key up once
/// more and retries, so a stale handle is never used silently.
Result<JobResult> execute_job(pkcs11::Session& session, const Job& job, std::uint64_t generation,
                              KeyCache& cache);

}  // namespace hsmactor
