#include "examples/sign_server/signers.hpp"

#include <asio/bind_executor.hpp>
#include <asio/post.hpp>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "asio/hsmactor_asio.hpp"
#include "pkcs11/module.hpp"
#include "pkcs11/session.hpp"
#include "asio/hsmactor_error_code.hpp"

namespace hsmactor::sign_server {
namespace {

// ---- hsmactor ---------------------------------------------------------------

class HsmactorSigner final : public Signer {
 public:
  HsmactorSigner(std::unique_ptr<Hsm> hsm, Token token, Key key,
                 std::shared_ptr<asio_support::LoopExecutor> loop)
      : hsm_(std::move(hsm)), token_(std::move(token)), key_(std::move(key)), loop_(std::move(loop)) {}

  void sign(Bytes digest, const asio::any_io_executor& executor, SignDone done) override {
    // The Error lives with the handler, so it outlasts the operation.
    auto diagnostics = std::make_shared<Error>();
    asio_support::async_sign(
        token_, key_, Mechanism::ecdsa(), digest, *diagnostics,
        asio::bind_executor(executor, [diagnostics, done = std::move(done)](std::error_code ec,
                                                                            Bytes signature) {
          done(ec, std::move(signature), ec ? diagnostics->message() : std::string());
        }));
  }

  void stop() override {
    token_.close();
    // The loop is gone: whatever the token still posts goes to the pool.
    if (loop_) loop_->detach();
  }

  std::string stats() const override {
    if (!loop_) return {};
    asio_support::LoopExecutorStats stats = loop_->stats();
    return "loop executor: " + std::to_string(stats.posted) + " answers in " +
           std::to_string(stats.wakeups) + " wake-ups, largest batch " +
           std::to_string(stats.largest_batch);
  }

 private:
  std::unique_ptr<Hsm> hsm_;  // outlives token_ (members are destroyed in reverse)
  Token token_;
  Key key_;
  std::shared_ptr<asio_support::LoopExecutor> loop_;
};

Result<std::unique_ptr<Signer>> make_hsmactor_signer(const SignerConfig& config,
                                                     asio::io_context& io) {
  auto hsm = std::make_unique<Hsm>();
  TokenOptions options;
  options.module_path = config.module_path;
  options.label = config.token_label;
  options.pin = config.pin;
  options.max_sessions = config.sessions;
  options.min_sessions = config.sessions;
  // Far above what the benchmark keeps in flight: the baselines have no
  // queue limit either, so none of the three refuses work.
  options.queue_limit = 65536;
  std::shared_ptr<asio_support::LoopExecutor> loop;
  if (config.loop_executor) {
    loop = asio_support::make_loop_executor(io.get_executor());
    options.executor = loop;
  }
  Result<Token> token = hsm->open_token(options);
  if (!token) return token.error();
  Key key = Key::private_key(config.key_label);
  // Look the key up now, so a wrong label fails at start and not per request.
  Result<Key> found = token->find_key(key).get();
  if (!found) return found.error();
  return std::unique_ptr<Signer>(
      std::make_unique<HsmactorSigner>(std::move(hsm), *token, *found, std::move(loop)));
}

// ---- baselines: the project's pkcs11/ layer, no actors ---------------------

// A module initialised and logged in once for the process, and the key's
// handle (object handles are valid in every session of the application).
struct RawToken {
  std::shared_ptr<pkcs11::Module> module;
  CK_SLOT_ID slot = 0;
  pkcs11::Session login_session;  // holds the login for all sessions
  CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
};

Result<RawToken> open_raw_token(const SignerConfig& config) {
  RawToken raw;
  auto module = pkcs11::Module::load(config.module_path);
  if (!module) return module.error();
  raw.module = *module;
  auto initialized = raw.module->initialize();
  if (!initialized) return initialized.error();
  auto slot = raw.module->find_token(pkcs11::TokenSelector::by_label(config.token_label));
  if (!slot) return slot.error();
  raw.slot = *slot;
  auto session = raw.module->open_session(raw.slot);
  if (!session) return session.error();
  raw.login_session = std::move(*session);
  if (auto login = raw.login_session.login(CKU_USER, config.pin); !login) return login.error();
  auto keys = raw.login_session.find_objects(pkcs11::AttributeList()
                                                 .set_ulong(CKA_CLASS, CKO_PRIVATE_KEY)
                                                 .set_string(CKA_LABEL, config.key_label),
                                             1);
  if (!keys) return keys.error();
  if (keys->empty()) {
    return Error::make(Condition::object_not_found, "no private key labelled " + config.key_label);
  }
  raw.key = keys->front();
  return raw;
}

// Turns a Result into the SignDone arguments.
void answer(const SignDone& done, Result<Bytes> signature) {
  if (signature) {
    done(std::error_code(), std::move(*signature), std::string());
  } else {
    done(asio_support::make_error_code(signature.error()), Bytes(), signature.error().message());
  }
}

class SyncLoopSigner final : public Signer {
 public:
  explicit SyncLoopSigner(RawToken raw) : raw_(std::move(raw)) {}

  void sign(Bytes digest, const asio::any_io_executor&, SignDone done) override {
    Result<pkcs11::Session*> session = session_of_this_thread();
    if (!session) return answer(done, session.error());
    // The point of this baseline: the loop thread waits for the token.
    answer(done, (*session)->sign(Mechanism::ecdsa(), raw_.key, digest));
  }

  void stop() override {
    std::lock_guard<std::mutex> lock(mutex_);
    sessions_.clear();
  }

 private:
  // One session per loop thread, opened on its first request: PKCS#11 allows
  // no two threads in one session. (One SyncLoopSigner per process: the
  // thread_local cache is keyed by its address.)
  Result<pkcs11::Session*> session_of_this_thread() {
    thread_local const SyncLoopSigner* owner = nullptr;
    thread_local pkcs11::Session* mine = nullptr;
    if (owner == this) return mine;
    auto opened = raw_.module->open_session(raw_.slot);
    if (!opened) return opened.error();
    std::lock_guard<std::mutex> lock(mutex_);
    sessions_.push_back(std::make_unique<pkcs11::Session>(std::move(*opened)));
    owner = this;
    mine = sessions_.back().get();
    return mine;
  }

  RawToken raw_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<pkcs11::Session>> sessions_;  // guarded by mutex_
};

class RawPoolSigner final : public Signer {
 public:
  RawPoolSigner(RawToken raw, std::vector<pkcs11::Session> sessions) : raw_(std::move(raw)) {
    for (auto& session : sessions) {
      workers_.emplace_back([this, session = std::move(session)]() mutable { work(session); });
    }
  }

  ~RawPoolSigner() override { stop(); }

  void sign(Bytes digest, const asio::any_io_executor& executor, SignDone done) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!stopping_) {
        jobs_.push_back(Job{std::move(digest), executor, std::move(done)});
        ready_.notify_one();
        return;
      }
    }
    post_answer(executor, std::move(done),
                Error::make(Condition::shutting_down, "the server is stopping"));
  }

  void stop() override {
    std::deque<Job> left;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
      left.swap(jobs_);
    }
    ready_.notify_all();
    for (auto& worker : workers_) worker.join();
    for (Job& job : left) {
      post_answer(job.executor, std::move(job.done),
                  Error::make(Condition::shutting_down, "the server is stopping"));
    }
  }

 private:
  struct Job {
    Bytes digest;
    asio::any_io_executor executor;
    SignDone done;
  };

  static void post_answer(const asio::any_io_executor& executor, SignDone done,
                          Result<Bytes> signature) {
    asio::post(executor, [done = std::move(done), signature = std::move(signature)]() mutable {
      answer(done, std::move(signature));
    });
  }

  void work(pkcs11::Session& session) {
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (stopping_) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      post_answer(job.executor, std::move(job.done),
                  session.sign(Mechanism::ecdsa(), raw_.key, job.digest));
    }
  }

  RawToken raw_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Job> jobs_;   // guarded by mutex_
  bool stopping_ = false;  // guarded by mutex_
  std::vector<std::thread> workers_;
};

}  // namespace

Result<std::unique_ptr<Signer>> make_signer(const SignerConfig& config, asio::io_context& io) {
  if (config.mode == Mode::hsmactor) return make_hsmactor_signer(config, io);
  Result<RawToken> raw = open_raw_token(config);
  if (!raw) return raw.error();
  if (config.mode == Mode::sync_loop) {
    return std::unique_ptr<Signer>(std::make_unique<SyncLoopSigner>(std::move(*raw)));
  }
  std::vector<pkcs11::Session> sessions;
  for (std::size_t i = 0; i < config.sessions; ++i) {
    auto session = raw->module->open_session(raw->slot);
    if (!session) return session.error();
    sessions.push_back(std::move(*session));
  }
  return std::unique_ptr<Signer>(
      std::make_unique<RawPoolSigner>(std::move(*raw), std::move(sessions)));
}

}  // namespace hsmactor::sign_server
