#include "pool/token.hpp"

#include <optional>
#include <string>

#include "pool/internal/key_access.hpp"
#include "pool/internal/stream_state.hpp"
#include "pool/internal/token_core.hpp"

namespace hsmactor {
namespace {

using internal::KeyAccess;

Error empty_token_error(const char* operation) {
  return Error::make(Condition::invalid_argument, "an empty Token (default-constructed or moved from)",
                     operation);
}

Job key_job(Op op, const Key& key, const Mechanism& mechanism, ByteView data) {
  Job job;
  job.op = op;
  job.key = KeyAccess::ref(key);
  job.mechanism = mechanism;
  job.data = data.to_bytes();
  return job;
}

Job plain_job(Op op) {
  Job job;
  job.op = op;
  return job;
}

Result<Bytes> take_bytes(JobResult& r) { return std::move(r.bytes); }

Result<std::uint64_t> first_handle(JobResult& r, const char* operation) {
  if (r.handles.empty()) {
    return Error::make(Condition::internal_error, "the module answered no handle", operation);
  }
  return std::uint64_t{r.handles.front()};
}

}  // namespace

// Every request goes through here: one check for an empty token, then the
// core's one admission.
template <class R, class Convert>
Future<R> run_request(const std::shared_ptr<internal::TokenCore>& core,
                      std::chrono::nanoseconds deadline,
                      const std::shared_ptr<Executor>& executor, Job job, const Key& key,
                      Convert convert) {
  if (!core) return make_ready_future<R>(empty_token_error(to_string(job.op)));
  return core->call<R>(std::move(job), deadline, executor, key, std::move(convert));
}

// ---- batches ----

using ByteResults = std::vector<Result<Bytes>>;

// The public limits are the sessions' own (a Job may also come from an actor).
static_assert(Token::kMaxBatchItems == kMaxBatchItems);
static_assert(Token::kMaxRandomBatchBytes == kMaxRandomBatchBytes);
static_assert(Token::kMaxRandomLength == kMaxRandomBytes);

Error batch_refused(const char* operation, std::string why) {
  return Error::make(Condition::invalid_argument, std::move(why), operation);
}

std::optional<Error> check_batch_size(std::size_t items, const char* operation) {
  if (items == 0 || items > Token::kMaxBatchItems) {
    return batch_refused(operation, "a batch takes 1 to " +
                                        std::to_string(Token::kMaxBatchItems) + " items");
  }
  return std::nullopt;
}

Error item_error(std::uint64_t rv, const char* function, const char* operation) {
  return Error::from_rv(static_cast<CK_RV>(rv), function, operation);
}

// One Result per item from a batch's answer: its output, or its own code.
auto byte_items(const char* function, const char* operation, std::size_t expected) {
  return [function, operation, expected](JobResult& r) -> Result<ByteResults> {
    if (r.item_outputs.size() != expected || r.item_rvs.size() != expected) {
      return Error::make(Condition::internal_error, "a batch answered the wrong number of items",
                         operation);
    }
    ByteResults items;
    items.reserve(expected);
    for (std::size_t i = 0; i < expected; ++i) {
      if (r.item_rvs[i] == CKR_OK) {
        items.emplace_back(std::move(r.item_outputs[i]));
      } else {
        items.emplace_back(item_error(r.item_rvs[i], function, operation));
      }
    }
    return items;
  };
}

Future<Key> Token::find_key(const Key& key) const {
  Job job = plain_job(Op::find_objects);
  job.attributes = key.query();
  job.length = 1;
  if (!key.valid()) {
    return make_ready_future<Key>(
        Error::make(Condition::invalid_argument, "an empty Key", "find_key"));
  }
  return run_request<Key>(core_, deadline_, executor_, std::move(job), Key(),
                          [key](JobResult& result) -> Result<Key> {
                            if (result.handles.empty()) {
                              return Error::make(Condition::object_not_found,
                                                 "no key matches the query", "find_key");
                            }
                            KeyAccess::remember(key, result.handles.front(),
                                                result.key_generation);
                            return key;
                          });
}

Future<std::vector<std::uint64_t>> Token::find_objects(const pkcs11::AttributeList& query,
                                                       std::size_t max_objects) const {
  using Handles = std::vector<std::uint64_t>;
  if (max_objects == 0 || max_objects > kMaxFoundObjects) {
    return make_ready_future<Handles>(Error::make(
        Condition::invalid_argument,
        "find_objects takes 1 to " + std::to_string(kMaxFoundObjects) + " objects per request",
        "find_objects"));
  }
  Job job = plain_job(Op::find_objects);
  job.attributes = query;
  job.length = max_objects;
  return run_request<Handles>(core_, deadline_, executor_, std::move(job), Key(),
                              [](JobResult& r) -> Result<Handles> { return std::move(r.handles); });
}

Future<pkcs11::AttributeList> Token::get_attributes(const Key& key,
                                                    std::vector<CK_ATTRIBUTE_TYPE> types) const {
  Job job = plain_job(Op::get_attributes);
  job.key = KeyAccess::ref(key);
  job.attribute_types.assign(types.begin(), types.end());
  return run_request<pkcs11::AttributeList>(
      core_, deadline_, executor_, std::move(job), key,
      [](JobResult& r) -> Result<pkcs11::AttributeList> { return std::move(r.attributes); });
}

Future<std::uint64_t> Token::create_object(const pkcs11::AttributeList& attributes) const {
  Job job = plain_job(Op::create_object);
  job.attributes = attributes;
  return run_request<std::uint64_t>(
      core_, deadline_, executor_, std::move(job), Key(),
      [](JobResult& r) { return first_handle(r, "create_object"); });
}

Future<bool> Token::destroy(const Key& key) const {
  Job job = plain_job(Op::destroy_object);
  job.key = KeyAccess::ref(key);
  return run_request<bool>(core_, deadline_, executor_, std::move(job), Key(),
                           [](JobResult&) -> Result<bool> { return true; });
}

Future<pkcs11::KeyPairHandles> Token::generate_key_pair(const pkcs11::KeyPairTemplate& spec) const {
  Job job = plain_job(Op::generate_key_pair);
  job.mechanism = spec.mechanism;
  job.attributes = spec.public_key;
  job.private_attributes = spec.private_key;
  return run_request<pkcs11::KeyPairHandles>(
      core_, deadline_, executor_, std::move(job), Key(), [](JobResult& r) -> Result<pkcs11::KeyPairHandles> {
        if (r.handles.size() != 2) {
          return Error::make(Condition::internal_error, "key pair without two handles",
                             "generate_key_pair");
        }
        return pkcs11::KeyPairHandles{r.handles[0], r.handles[1]};
      });
}

Future<std::uint64_t> Token::generate_key(const pkcs11::KeyTemplate& spec) const {
  Job job = plain_job(Op::generate_key);
  job.mechanism = spec.mechanism;
  job.attributes = spec.key;
  return run_request<std::uint64_t>(core_, deadline_, executor_, std::move(job), Key(),
                                    [](JobResult& r) { return first_handle(r, "generate_key"); });
}

Future<pkcs11::PublicKey> Token::export_public_key(const Key& public_key) const {
  Job job = plain_job(Op::export_public_key);
  job.key = KeyAccess::ref(public_key);
  return run_request<pkcs11::PublicKey>(
      core_, deadline_, executor_, std::move(job), public_key,
      [](JobResult& r) -> Result<pkcs11::PublicKey> { return std::move(r.public_key); });
}

Future<Bytes> Token::sign(const Key& key, const Mechanism& mechanism, ByteView data) const {
  return run_request<Bytes>(core_, deadline_, executor_, key_job(Op::sign, key, mechanism, data), key,
                            take_bytes);
}

Future<bool> Token::verify(const Key& key, const Mechanism& mechanism, ByteView data,
                           ByteView signature) const {
  Job job = key_job(Op::verify, key, mechanism, data);
  job.signature = signature.to_bytes();
  return run_request<bool>(core_, deadline_, executor_, std::move(job), key,
                           [](JobResult& r) -> Result<bool> { return r.verified; });
}

Future<Bytes> Token::encrypt(const Key& key, const Mechanism& mechanism, ByteView plaintext) const {
  return run_request<Bytes>(core_, deadline_, executor_, key_job(Op::encrypt, key, mechanism, plaintext),
                            key, take_bytes);
}

Future<Bytes> Token::decrypt(const Key& key, const Mechanism& mechanism, ByteView ciphertext) const {
  return run_request<Bytes>(core_, deadline_, executor_, key_job(Op::decrypt, key, mechanism, ciphertext),
                            key, take_bytes);
}

Future<Bytes> Token::digest(const Mechanism& mechanism, ByteView data) const {
  Job job = plain_job(Op::digest);
  job.mechanism = mechanism;
  job.data = data.to_bytes();
  return run_request<Bytes>(core_, deadline_, executor_, std::move(job), Key(), take_bytes);
}

Future<Bytes> Token::random(std::size_t length) const {
  if (length == 0 || length > kMaxRandomLength) {
    // Refused here: a huge request is never queued, let alone allocated.
    return make_ready_future<Bytes>(Error::make(
        Condition::invalid_argument, "random takes 1 byte to 1 MiB per request", "random"));
  }
  Job job = plain_job(Op::random);
  job.length = length;
  return run_request<Bytes>(core_, deadline_, executor_, std::move(job), Key(), take_bytes);
}

Future<ByteResults> Token::sign_many(const Key& key, const Mechanism& mechanism,
                                     std::vector<Bytes> inputs) const {
  if (auto refused = check_batch_size(inputs.size(), "sign_many")) {
    return make_ready_future<ByteResults>(std::move(*refused));
  }
  const std::size_t count = inputs.size();
  Job job = key_job(Op::sign_batch, key, mechanism, ByteView());
  job.items = std::move(inputs);
  return run_request<ByteResults>(core_, deadline_, executor_, std::move(job), key,
                                  byte_items("C_Sign", "sign_many", count));
}

Future<std::vector<Result<bool>>> Token::verify_many(const Key& key, const Mechanism& mechanism,
                                                     std::vector<Bytes> data,
                                                     std::vector<Bytes> signatures) const {
  using Verdicts = std::vector<Result<bool>>;
  if (auto refused = check_batch_size(data.size(), "verify_many")) {
    return make_ready_future<Verdicts>(std::move(*refused));
  }
  if (signatures.size() != data.size()) {
    return make_ready_future<Verdicts>(
        batch_refused("verify_many", "verify_many needs one signature per input"));
  }
  const std::size_t count = data.size();
  Job job = key_job(Op::verify_batch, key, mechanism, ByteView());
  job.items = std::move(data);
  job.item_signatures = std::move(signatures);
  return run_request<Verdicts>(
      core_, deadline_, executor_, std::move(job), key,
      [count](JobResult& r) -> Result<Verdicts> {
        if (r.item_rvs.size() != count || r.item_verified.size() != count) {
          return Error::make(Condition::internal_error,
                             "a batch answered the wrong number of items", "verify_many");
        }
        Verdicts verdicts;
        verdicts.reserve(count);
        for (std::size_t i = 0; i < count; ++i) {
          if (r.item_rvs[i] == CKR_OK) {
            verdicts.emplace_back(r.item_verified[i] != 0);
          } else {
            verdicts.emplace_back(item_error(r.item_rvs[i], "C_Verify", "verify_many"));
          }
        }
        return verdicts;
      });
}

Future<ByteResults> Token::digest_many(const Mechanism& mechanism,
                                       std::vector<Bytes> inputs) const {
  if (auto refused = check_batch_size(inputs.size(), "digest_many")) {
    return make_ready_future<ByteResults>(std::move(*refused));
  }
  const std::size_t count = inputs.size();
  Job job = plain_job(Op::digest_batch);
  job.mechanism = mechanism;
  job.items = std::move(inputs);
  return run_request<ByteResults>(core_, deadline_, executor_, std::move(job), Key(),
                                  byte_items("C_Digest", "digest_many", count));
}

Future<ByteResults> Token::random_many(std::size_t length, std::size_t count) const {
  if (auto refused = check_batch_size(count, "random_many")) {
    return make_ready_future<ByteResults>(std::move(*refused));
  }
  if (length == 0 || length > kMaxRandomLength || count > kMaxRandomBatchBytes / length) {
    // Refused here: a huge request is never queued, let alone allocated.
    return make_ready_future<ByteResults>(batch_refused(
        "random_many", "random_many takes 1 byte to 1 MiB per item and 16 MiB in all"));
  }
  Job job = plain_job(Op::random_batch);
  job.length = length;
  job.count = count;
  return run_request<ByteResults>(core_, deadline_, executor_, std::move(job), Key(),
                                  byte_items("C_GenerateRandom", "random_many", count));
}

void Token::sign(const Key& key, const Mechanism& mechanism, ByteView data,
                 std::function<void(Result<Bytes>)> done) const {
  sign(key, mechanism, data).then(std::move(done));
}

void Token::verify(const Key& key, const Mechanism& mechanism, ByteView data, ByteView signature,
                   std::function<void(Result<bool>)> done) const {
  verify(key, mechanism, data, signature).then(std::move(done));
}

Future<Stream> Token::open_stream(StreamKind kind, const Mechanism& mechanism,
                                  const Key& key) const {
  if (!core_) return make_ready_future<Stream>(empty_token_error("open_stream"));
  return internal::open_stream(core_, kind, mechanism, key, deadline_, executor_);
}

Token Token::with_deadline(std::chrono::nanoseconds deadline) const {
  Token token = *this;
  // Zero would mean "the default": a deadline that passed is one that passed.
  token.deadline_ = deadline.count() > 0 ? deadline : std::chrono::nanoseconds(-1);
  return token;
}

Token Token::with_executor(std::shared_ptr<Executor> executor) const {
  Token token = *this;
  token.executor_ = std::move(executor);
  return token;
}

Result<PoolMetrics> Token::metrics() const {
  if (!core_) return empty_token_error("metrics");
  // Checked first: in a child the parts' mutex may be copied held.
  if (core_->forked()) return internal::TokenCore::forked_error("metrics");
  auto runtime = core_->runtime_if_open();
  auto pool = core_->pool_if_open();
  if (!runtime || !pool || core_->is_closed()) {
    return internal::TokenCore::closed_error("metrics");
  }
  auto metrics =
      runtime->ask<PoolMetrics>(pool, std::chrono::seconds(60), stats_atom::value).get();
  if (!metrics && core_->is_closed()) return internal::TokenCore::closed_error("metrics");
  return metrics;
}

const std::string& Token::label() const {
  static const std::string none;
  return core_ ? core_->label() : none;
}

const std::string& Token::module_path() const {
  static const std::string none;
  return core_ ? core_->module_path() : none;
}

void Token::set_trace_sink(TraceSink sink) const {
  if (core_) core_->trace()->set(std::move(sink));
}

void Token::close() const {
  if (core_) core_->close();
}

}  // namespace hsmactor
