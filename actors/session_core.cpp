#include "actors/session_core.hpp"

namespace hsmactor {
namespace {

bool is_invalid_handle(const Error& error) {
  return error.rv() == CKR_KEY_HANDLE_INVALID || error.rv() == CKR_OBJECT_HANDLE_INVALID;
}

bool needs_key(Op op) {
  switch (op) {
    case Op::sign:
    case Op::verify:
    case Op::encrypt:
    case Op::decrypt:
      return true;
    case Op::destroy_object:
    case Op::get_attributes:
    case Op::export_public_key:
      return true;  // unless the job names an object handle
    default:
      return false;
  }
}

Result<JobResult> run_with_key(pkcs11::Session& session, const Job& job, CK_OBJECT_HANDLE key) {
  JobResult result;
  result.key_handle = key;
  switch (job.op) {
    case Op::sign: {
      auto signature = session.sign(job.mechanism, key, job.data);
      if (!signature) return signature.error();
      result.bytes = std::move(*signature);
      return result;
    }
    case Op::verify: {
      auto valid = session.verify(job.mechanism, key, job.data, job.signature);
      if (!valid) return valid.error();
      result.verified = *valid;
      return result;
    }
    case Op::encrypt: {
      auto out = session.encrypt(job.mechanism, key, job.data);
      if (!out) return out.error();
      result.bytes = std::move(*out);
      return result;
    }
    case Op::decrypt: {
      auto out = session.decrypt(job.mechanism, key, job.data);
      if (!out) return out.error();
      result.bytes = std::move(*out);
      return result;
    }
    case Op::destroy_object: {
      auto done = session.destroy_object(key);
      if (!done) return done.error();
      return result;
    }
    case Op::get_attributes: {
      std::vector<CK_ATTRIBUTE_TYPE> types(job.attribute_types.begin(), job.attribute_types.end());
      auto attributes = session.get_attributes(key, types);
      if (!attributes) return attributes.error();
      result.attributes = std::move(*attributes);
      return result;
    }
    case Op::export_public_key: {
      auto public_key = session.export_public_key(key);
      if (!public_key) return public_key.error();
      result.public_key = std::move(*public_key);
      return result;
    }
    default:
      return Error::make(Condition::internal_error, "operation does not take a key",
                         to_string(job.op));
  }
}

constexpr std::uint64_t kMaxRandomLength = std::uint64_t{1} << 20;

Result<JobResult> run_without_key(pkcs11::Session& session, const Job& job) {
  JobResult result;
  switch (job.op) {
    case Op::digest: {
      auto out = session.digest(job.mechanism, job.data);
      if (!out) return out.error();
      result.bytes = std::move(*out);
      return result;
    }
    case Op::random: {
      if (job.length == 0 || job.length > kMaxRandomLength) {
        return Error::make(Condition::invalid_argument,
                           "random takes 1 byte to 1 MiB per request", "random");
      }
      auto out = session.random(job.length);
      if (!out) return out.error();
      result.bytes = std::move(*out);
      return result;
    }
    case Op::generate_key_pair: {
      pkcs11::KeyPairTemplate spec{job.mechanism, job.attributes, job.private_attributes};
      auto pair = session.generate_key_pair(spec);
      if (!pair) return pair.error();
      result.handles = {pair->public_key, pair->private_key};
      return result;
    }
    case Op::generate_key: {
      pkcs11::KeyTemplate spec{job.mechanism, job.attributes};
      auto key = session.generate_key(spec);
      if (!key) return key.error();
      result.handles = {*key};
      return result;
    }
    case Op::create_object: {
      auto object = session.create_object(job.attributes);
      if (!object) return object.error();
      result.handles = {*object};
      return result;
    }
    case Op::find_objects: {
      auto found = session.find_objects(job.attributes, job.length);
      if (!found) return found.error();
      result.handles.assign(found->begin(), found->end());
      return result;
    }
    case Op::login_check: {
      auto info = session.info();
      if (!info) return info.error();
      return result;
    }
    default:
      return Error::make(Condition::internal_error, "operation needs a key", to_string(job.op));
  }
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
  if (!needs_key(job.op)) {
    auto result = run_without_key(session, job);
    if (!result) return result.error().in_operation(to_string(job.op));
    // find_objects results are cached by callers: bind them to this epoch too.
    result->key_generation = generation;
    return result;
  }
  if (job.object != 0) {
    auto result = run_with_key(session, job, job.object);
    if (!result) return result.error().in_operation(to_string(job.op));
    return result;
  }
  auto key = resolve_key(session, job.key, generation, cache);
  if (!key) return key.error().in_operation(to_string(job.op));
  auto result = run_with_key(session, job, *key);
  if (!result && is_invalid_handle(result.error())) {
    // The handle was cached (by us or by the caller) and the token no longer
    // knows it: look the key up again, once.
    cache.forget(job.key.query);
    KeyRef fresh = job.key;
    fresh.handle = 0;
    key = resolve_key(session, fresh, generation, cache);
    if (!key) return key.error().in_operation(to_string(job.op));
    result = run_with_key(session, job, *key);
  }
  if (!result) return result.error().in_operation(to_string(job.op));
  result->key_generation = generation;
  return result;
}

}  // namespace hsmactor
