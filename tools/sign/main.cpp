// hsmactor-sign: a message-driven signing pipeline over one PKCS#11 token.
// See sign_usage() in sign_options.cpp for the record format and the flags.
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "hsmactor.hpp"
#include "tools/sign/pipeline.hpp"
#include "tools/sign/sign_options.hpp"
#include "tools/sign/sign_request.hpp"

namespace hsmactor::sign {
namespace {

constexpr int kAllSigned = 0;
constexpr int kSomeFailed = 1;
constexpr int kSetUpFailed = 2;

/// The Key references in use, one per (label, class), so that each key's
/// object handle is looked up once and then cached by the pool.
class KeyCache {
 public:
  /// Returns the reference for `label` of class `object_class`.
  Key get(const std::string& label, CK_OBJECT_CLASS object_class) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = keys_.find({label, object_class});
    if (found != keys_.end()) return found->second;
    // A stream of distinct unknown labels must not grow the cache for ever.
    if (keys_.size() >= kMaxKeys) keys_.clear();
    Key key = object_class == CKO_SECRET_KEY ? Key::secret_key(label) : Key::private_key(label);
    keys_.emplace(std::make_pair(label, object_class), key);
    return key;
  }

 private:
  static constexpr std::size_t kMaxKeys = 1024;
  std::mutex mutex_;
  std::map<std::pair<std::string, CK_OBJECT_CLASS>, Key> keys_;
};

int fail_set_up(const std::string& what) {
  std::cerr << "hsmactor-sign: " << what << "\n";
  return kSetUpFailed;
}

int run(const std::vector<std::string>& arguments) {
  auto options = parse_sign_options(arguments);
  if (!options) return fail_set_up(options.error().detail() + " (see --help)");
  if (options->help) {
    std::cout << sign_usage();
    return kAllSigned;
  }
  auto pin = read_pin(*options);
  if (!pin) return fail_set_up(pin.error().detail());

  std::ifstream input_file;
  std::istream* input = &std::cin;
  if (!options->input_path.empty()) {
    input_file.open(options->input_path, std::ios::binary);
    if (!input_file) return fail_set_up("cannot open --input file " + options->input_path);
    input = &input_file;
  }
  std::ofstream output_file;
  std::ostream* output = &std::cout;
  if (!options->output_path.empty()) {
    output_file.open(options->output_path, std::ios::binary | std::ios::trunc);
    if (!output_file) return fail_set_up("cannot open --output file " + options->output_path);
    output = &output_file;
  }

  Hsm hsm;
  TokenOptions token_options;
  token_options.module_path = options->module_path;
  token_options.label = options->token_label;
  token_options.uri = options->uri;
  token_options.pin = std::move(*pin);
  token_options.max_sessions = options->max_sessions;
  token_options.min_sessions = options->max_sessions;
  // The pipeline itself bounds what is outstanding; the pool's queue must
  // never be the tighter limit, or records would fail as `overloaded`.
  token_options.queue_limit = std::max<std::size_t>(token_options.queue_limit,
                                                    options->max_in_flight);
  token_options.default_deadline = options->deadline;
  auto token = hsm.open_token(token_options);
  token_options.pin = Pin();
  if (!token) {
    const Error& error = token.error();
    return fail_set_up("cannot open the token: " + error.message() + " [" +
                       to_string(error.category()) + "]");
  }

  KeyCache keys;
  const Token& signer = *token;
  SignFunction sign = [&keys, &signer](const SignRequest& request, SignDone done) {
    signer.sign(keys.get(request.key_label, key_class_for(request.scheme)),
                mechanism_for(request.scheme), request.payload, std::move(done));
  };
  // Consecutive records for one key go to one session as one batch: one
  // hand-off and one answer for many signatures.
  BatchSignFunction sign_batch = [&keys, &signer](std::vector<SignRequest> requests,
                                                  BatchDone done) {
    const std::size_t count = requests.size();
    std::vector<Bytes> payloads;
    payloads.reserve(count);
    for (SignRequest& request : requests) payloads.push_back(std::move(request.payload));
    const SignRequest& first = requests.front();
    signer
        .sign_many(keys.get(first.key_label, key_class_for(first.scheme)),
                   mechanism_for(first.scheme), std::move(payloads))
        .then([count, done = std::move(done)](Result<std::vector<Result<Bytes>>> batch) {
          if (batch) {
            done(batch.take());
            return;
          }
          // Refused as a whole (overloaded, deadline, shutdown): every record
          // gets that answer.
          done(std::vector<Result<Bytes>>(count, Result<Bytes>(batch.error())));
        });
  };
  PipelineOptions pipeline;
  pipeline.max_in_flight = options->max_in_flight;
  pipeline.batch = options->batch;
  pipeline.ordered = options->ordered;
  pipeline.progress = ::isatty(STDERR_FILENO) ? &std::cerr : nullptr;
  PipelineStats stats = run_pipeline(*input, *output, sign, pipeline, sign_batch);
  token->close();

  if (!stats.input_ok) return fail_set_up("reading the input failed");
  if (!stats.output_ok) return fail_set_up("writing the output failed");
  return stats.failed == 0 ? kAllSigned : kSomeFailed;
}

}  // namespace
}  // namespace hsmactor::sign

int main(int argc, char** argv) {
  // The pipeline reads with std::getline; unsynchronised streams are much faster.
  std::ios::sync_with_stdio(false);
  // std::cin is tied to std::cout: every read would flush std::cout from the
  // reader thread while the writer thread writes to it, a data race that
  // duplicated or lost output lines. Only the writer touches std::cout.
  std::cin.tie(nullptr);
  return hsmactor::sign::run(std::vector<std::string>(argv + 1, argv + argc));
}
