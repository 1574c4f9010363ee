#include "actors/session_core.hpp"

namespace hsmactor {
namespace {

bool is_invalid_handle(const Error& error) {
  return error.rv() == CKR_KEY_HANDLE_INVALID || error.rv() == CKR_OBJECT_HANDLE_INVALID;
}

// Runs `job` with `key` (CK_INVALID_HANDLE for operations without one).
Result<JobResult> run_with(pkcs11::Session& session, const Job& job, CK_OBJECT_HANDLE key) {
  JobResult result;
  result.key_handle = key;
  auto ran = run_operation(OperationCall{session, job, key, result});
  if (!ran) return ran.error();
  return result;
}

}  // namespace

std::string KeyCache::key_of(const pkcs11::AttributeList& query) {
  std::string key;
  for (const auto& item : query.items()) {
    key += std::to_string(item.type) + ':' + to_hex(item.value) + ';';
  }
  return key;
}

CK_OBJECT_HANDLE KeyCache::find(const pkcs11::AttributeList& query) const {
  auto it = handles_.find(key_of(query));
  return it == handles_.end() ? CK_INVALID_HANDLE : it->second;
}

void KeyCache::remember(const pkcs11::AttributeList& query, CK_OBJECT_HANDLE handle) {
  handles_[key_of(query)] = handle;
}

void KeyCache::forget(const pkcs11::AttributeList& query) { handles_.erase(key_of(query)); }

std::string describe_key(const pkcs11::AttributeList& query) {
  std::string text;
  if (auto label = query.get(CKA_LABEL)) {
    text += "label=\"" + std::string(label->begin(), label->end()) + "\"";
  }
  if (auto id = query.get(CKA_ID)) {
    if (!text.empty()) text += ", ";
    text += "id=" + to_hex(*id);
  }
  return text.empty() ? "an unnamed key" : text;
}

Result<CK_OBJECT_HANDLE> resolve_key(pkcs11::Session& session, const KeyRef& key,
                                     std::uint64_t generation, KeyCache& cache) {
  if (key.handle != 0 && key.generation == generation) return key.handle;
  if (key.query.empty()) {
    return Error::make(Condition::invalid_argument, "the request names no key");
  }
  if (CK_OBJECT_HANDLE cached = cache.find(key.query)) return cached;
  auto found = session.find_objects(key.query, 1);
  if (!found) return found.error();
  if (found->empty()) {
    return Error::make(Condition::object_not_found, "no key with " + describe_key(key.query));
  }
  cache.remember(key.query, found->front());
  return found->front();
}

Result<JobResult> execute_job(pkcs11::Session& session, const Job& job, std::uint64_t generation,
                              KeyCache& cache) {
  const char* operation = to_string(job.op);
  const KeyUse use = key_use(job.op);
  if (use == KeyUse::none || (use == KeyUse::or_object && job.object != 0)) {
    auto result = run_with(session, job, use == KeyUse::none ? CK_INVALID_HANDLE : job.object);
    if (!result) return result.error().in_operation(operation);
    // find_objects results are cached by callers: bind them to this epoch too.
    if (use == KeyUse::none) result->key_generation = generation;
    return result;
  }
  auto key = resolve_key(session, job.key, generation, cache);
  if (!key) return key.error().in_operation(operation);
  auto result = run_with(session, job, *key);
  if (!result && is_invalid_handle(result.error())) {
    // The handle was cached (by us or by the caller) and the token no longer
    // knows it: look the key up again, once.
    cache.forget(job.key.query);
    KeyRef fresh = job.key;
    fresh.handle = 0;
    key = resolve_key(session, fresh, generation, cache);
    if (!key) return key.error().in_operation(operation);
    result = run_with(session, job, *key);
  }
  if (!result) return result.error().in_operation(operation);
  result->key_generation = generation;
  return result;
}

}  // namespace hsmactor
