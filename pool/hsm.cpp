#include "pool/hsm.hpp"

#include <unistd.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <p11-kit/uri.h>

#include "actors/library_registry.hpp"
#include "pool/token_pool.hpp"

namespace hsmactor {
namespace {

constexpr auto kControlTimeout = std::chrono::seconds(60);
// The pool answers deadline_exceeded itself; the bridge's own timeout is a
// backstop a little later, so the caller gets the pool's fuller error.
constexpr auto kBridgeGrace = std::chrono::milliseconds(250);

template <std::size_t N>
std::string padded_field(const unsigned char (&field)[N]) {
  std::string text(reinterpret_cast<const char*>(field), N);
  // p11-kit leaves fields the URI does not set as NUL bytes, not blanks.
  auto end = text.find_last_not_of(std::string(" \0", 2));
  text.erase(end == std::string::npos ? 0 : end + 1);
  return text;
}

// Fills label / serial / module path / PIN from an RFC 7512 URI.
Result<void> apply_uri(TokenOptions& options) {
  P11KitUri* uri = p11_kit_uri_new();
  int code = p11_kit_uri_parse(options.uri.c_str(), P11_KIT_URI_FOR_ANY, uri);
  if (code != P11_KIT_URI_OK) {
    std::string why = p11_kit_uri_message(code);
    p11_kit_uri_free(uri);
    return Error::make(Condition::invalid_argument, "not a valid pkcs11: URI: " + why,
                       "open_token");
  }
  CK_TOKEN_INFO* token = p11_kit_uri_get_token_info(uri);
  std::string label = padded_field(token->label);
  std::string serial = padded_field(token->serialNumber);
  if (!label.empty()) options.label = label;
  if (!serial.empty()) options.serial = serial;
  if (const char* path = p11_kit_uri_get_module_path(uri)) options.module_path = path;
  if (const char* pin = p11_kit_uri_get_pin_value(uri)) options.pin = Pin(pin);
  p11_kit_uri_free(uri);
  return success();
}

Error closed_error(const char* operation) {
  return Error::make(Condition::shutting_down, "the token was closed", operation);
}

// How many hsmactor callbacks are running, or being destroyed, on this thread.
// Such a thread is a CAF worker (usually the bridge's): it must never block on
// an answer the bridge itself would have to deliver.
thread_local int t_callback_depth = 0;

struct CallbackScope {
  CallbackScope() { ++t_callback_depth; }
  ~CallbackScope() { --t_callback_depth; }
  CallbackScope(const CallbackScope&) = delete;
  CallbackScope& operator=(const CallbackScope&) = delete;
};

// Wraps a callback handed to the bridge so that calling it and destroying it
// (with everything it captured: a Stream, the last copy of a Token, ...)
// both count as "inside a callback" on that thread.
template <class F>
class CafSide {
 public:
  explicit CafSide(F f) : f_(std::move(f)) {}
  CafSide(CafSide&&) = default;
  CafSide& operator=(CafSide&&) = delete;
  ~CafSide() {
    CallbackScope scope;
    f_.reset();
  }

  template <class A>
  void operator()(A&& answer) {
    CallbackScope scope;
    (*f_)(std::forward<A>(answer));
  }

 private:
  std::optional<F> f_;
};

template <class F>
CafSide<F> caf_side(F f) {
  return CafSide<F>(std::move(f));
}

// Runs work that blocks (closing a token) on threads of its own, for when the
// last reference to a token goes on a CAF thread; joins them at exit.
class Reaper {
 public:
  static Reaper& instance() {
    static Reaper reaper;
    return reaper;
  }

  void run(std::function<void()> work) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = workers_.begin(); it != workers_.end();) {
      if (*it->done) {
        it->thread.join();
        it = workers_.erase(it);
      } else {
        ++it;
      }
    }
    auto done = std::make_shared<std::atomic<bool>>(false);
    workers_.push_back(Worker{std::thread([work = std::move(work), done] {
                                work();
                                *done = true;
                              }),
                              done});
  }

  ~Reaper() {
    std::vector<Worker> workers;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      workers.swap(workers_);
    }
    if (pid_ != ::getpid()) {
      // The parent's threads do not exist in a forked child: leave them be.
      new std::vector<Worker>(std::move(workers));
      return;
    }
    for (auto& worker : workers) worker.thread.join();
  }

 private:
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  Reaper() = default;

  std::mutex mutex_;
  std::vector<Worker> workers_;
  pid_t pid_ = ::getpid();
};

}  // namespace

// ---- Key ----

// The cached handle is read and written by every request that uses the key,
// from many threads: a sequence lock keeps that free of mutexes, and a write
// happens only when the handle actually changed.
struct Key::State {
  pkcs11::AttributeList query;
  std::atomic<std::uint32_t> version{0};  // odd while a writer is inside
  std::atomic<std::uint64_t> handle{0};
  std::atomic<std::uint64_t> generation{0};

  void read(std::uint64_t& h, std::uint64_t& g) const {
    for (;;) {
      std::uint32_t before = version.load(std::memory_order_acquire);
      if (before & 1u) continue;
      // Acquire loads keep the version re-read below from moving above them.
      h = handle.load(std::memory_order_acquire);
      g = generation.load(std::memory_order_acquire);
      if (version.load(std::memory_order_relaxed) == before) return;
    }
  }

  void write(std::uint64_t h, std::uint64_t g) {
    std::uint64_t old_handle = 0;
    std::uint64_t old_generation = 0;
    read(old_handle, old_generation);
    if (old_handle == h && old_generation == g) return;
    std::uint32_t current = version.load(std::memory_order_relaxed);
    do {
      current &= ~1u;
    } while (!version.compare_exchange_weak(current, current + 1, std::memory_order_acquire));
    // Release: a reader that sees either value also sees the odd version.
    handle.store(h, std::memory_order_release);
    generation.store(g, std::memory_order_release);
    version.store(current + 2, std::memory_order_release);
  }
};

Key Key::private_key(const std::string& label) {
  Key key;
  key.state_ = std::make_shared<State>();
  key.state_->query.set_ulong(CKA_CLASS, CKO_PRIVATE_KEY).set_string(CKA_LABEL, label);
  return key;
}

Key Key::public_key(const std::string& label) {
  Key key;
  key.state_ = std::make_shared<State>();
  key.state_->query.set_ulong(CKA_CLASS, CKO_PUBLIC_KEY).set_string(CKA_LABEL, label);
  return key;
}

Key Key::secret_key(const std::string& label) {
  Key key;
  key.state_ = std::make_shared<State>();
  key.state_->query.set_ulong(CKA_CLASS, CKO_SECRET_KEY).set_string(CKA_LABEL, label);
  return key;
}

Key Key::by_id(CK_OBJECT_CLASS object_class, Bytes id) {
  Key key;
  key.state_ = std::make_shared<State>();
  key.state_->query.set_ulong(CKA_CLASS, object_class).set_bytes(CKA_ID, std::move(id));
  return key;
}

const pkcs11::AttributeList& Key::query() const {
  static const pkcs11::AttributeList empty;
  return state_ ? state_->query : empty;
}

KeyRef Key::ref() const {
  KeyRef ref;
  if (!state_) return ref;
  ref.query = state_->query;
  state_->read(ref.handle, ref.generation);
  return ref;
}

void Key::remember(std::uint64_t handle, std::uint64_t generation) const {
  if (!state_ || handle == 0) return;
  state_->write(handle, generation);
}

// ---- Token ----

struct Token::Core {
  std::shared_ptr<Runtime> runtime;
  std::shared_ptr<LibraryLease> lease;
  pool_actor pool;
  /// The lock-free way in to the pool's session actors.
  PoolChannel channel;
  CK_SLOT_ID slot = 0;
  std::string label;
  std::string module_path;
  bool logged_in = false;
  std::chrono::milliseconds default_deadline{30000};
  std::shared_ptr<TraceHub> trace = std::make_shared<TraceHub>();
  std::mutex close_mutex;
  /// Written under close_mutex; read without it on the request path.
  std::atomic<bool> closed{false};

  /// What closing needs, moved out of a Core so a Core can die first.
  struct Closing {
    std::shared_ptr<Runtime> runtime;
    std::shared_ptr<LibraryLease> lease;
    pool_actor pool;
    CK_SLOT_ID slot = 0;
    bool logged_in = false;
  };

  ~Core() {
    Closing closing;
    {
      std::lock_guard<std::mutex> lock(close_mutex);
      if (closed) return;
      closed = true;
      closing = take_closing();
    }
    shut_down_from_here(std::move(closing));
  }

  bool is_closed() const { return closed.load(); }

  void close() {
    std::lock_guard<std::mutex> lock(close_mutex);
    if (closed) return;
    closed = true;
    shut_down_from_here(take_closing());
  }

  /// Shuts down now, or on a thread of its own when called inside a callback
  /// on a CAF thread (the last reference to a Token or Stream going there, or
  /// a callback calling close()): blocking there on answers that this very
  /// thread would have to deliver would hang the runtime.
  static void shut_down_from_here(Closing closing) {
    if (t_callback_depth > 0 && !closing.runtime->forked()) {
      Reaper::instance().run([closing = std::move(closing)]() mutable {
        shut_down(std::move(closing));
      });
      return;
    }
    shut_down(std::move(closing));
  }

  Closing take_closing() {
    Closing closing;
    closing.runtime = runtime;
    closing.lease = std::move(lease);
    closing.pool = std::move(pool);
    closing.slot = slot;
    closing.logged_in = logged_in;
    return closing;
  }

  /// Answers everything queued, stops the pool, logs out if this was the
  /// token's last user and releases the module. Blocks: never call it on a
  /// CAF thread.
  static void shut_down(Closing closing) {
    auto& runtime = closing.runtime;
    if (runtime->forked()) {
      // The parent's actors do not run here: leak rather than wait for them.
      new std::shared_ptr<LibraryLease>(std::move(closing.lease));
      new pool_actor(std::move(closing.pool));
      return;
    }
    (void)runtime->ask<bool>(closing.pool, kControlTimeout, stop_atom::value).get();
    caf::anon_send_exit(closing.pool, caf::exit_reason::user_shutdown);
    if (closing.logged_in) {
      (void)runtime->ask<bool>(closing.lease->supervisor(), kControlTimeout, logout_atom::value,
                               std::uint64_t{closing.slot})
          .get();
    }
    closing.lease.reset();
  }

  /// Queues `job` for the pool's sessions; `done` gets the answer exactly
  /// once, on the thread of the session actor that ran it (or here, at once,
  /// for overloaded and shutting_down). `answers_quickly`: see QueuedJob.
  template <class Done>
  void submit(Job job, Done done, bool answers_quickly = false) {
    if (runtime->forked()) {
      // The session actors are the parent's; nothing here would ever answer.
      done(Result<JobResult>(
          Error::make(Condition::forked, "this token belongs to the parent process",
                      to_string(job.op))));
      return;
    }
    if (job.deadline_ns == 0) job.deadline_ns = deadline_after(default_deadline);
    auto& queue = *channel.queue;
    auto queued = queue.make_job(std::move(job), QueuedJob::Completion(caf_side(std::move(done))));
    queued->answers_quickly = answers_quickly;
    switch (queue.push(queued)) {
      case PushOutcome::queued:
        return;
      case PushOutcome::overloaded:
        queued->complete(Error::make(Condition::overloaded,
                                     "all sessions are busy and " + std::to_string(queue.limit()) +
                                         " requests are already waiting",
                                     to_string(queued->job.op)));
        return;
      case PushOutcome::closed:
        queued->complete(closed_error(to_string(queued->job.op)));
        return;
    }
  }

  /// Sends `job` and converts its JobResult with `convert` into a Future<R>.
  template <class R, class Convert>
  Future<R> call(Job job, const Key& key, Convert convert) {
    if (is_closed()) return make_ready_future<R>(closed_error(to_string(job.op)));
    auto [promise, future] = make_promise<R>();
    SharedPromise<R> shared(std::move(promise));
    submit(std::move(job), [shared, key, convert](Result<JobResult> result) {
      if (!result) {
        shared.set_error(result.error());
        return;
      }
      key.remember(result->key_handle, result->key_generation);
      shared.set_result(convert(*result));
    }, /*answers_quickly=*/true);
    return std::move(future);
  }
};

namespace {

Job key_job(Op op, const Key& key, const Mechanism& mechanism, ByteView data) {
  Job job;
  job.op = op;
  job.key = key.ref();
  job.mechanism = mechanism;
  job.data = data.to_bytes();
  return job;
}

}  // namespace

Future<Key> Token::find_key(const Key& key) const {
  Job job;
  job.op = Op::find_objects;
  job.attributes = key.query();
  job.length = 1;
  return core_->call<Key>(std::move(job), Key(), [key](JobResult& result) -> Result<Key> {
    if (result.handles.empty()) {
      return Error::make(Condition::object_not_found, "no key matches the query", "find_key");
    }
    key.remember(result.handles.front(), result.key_generation);
    return key;
  });
}

Future<Bytes> Token::sign(const Key& key, const Mechanism& mechanism, ByteView data) const {
  return core_->call<Bytes>(key_job(Op::sign, key, mechanism, data), key,
                            [](JobResult& r) -> Result<Bytes> { return std::move(r.bytes); });
}

Future<bool> Token::verify(const Key& key, const Mechanism& mechanism, ByteView data,
                           ByteView signature) const {
  Job job = key_job(Op::verify, key, mechanism, data);
  job.signature = signature.to_bytes();
  return core_->call<bool>(std::move(job), key,
                           [](JobResult& r) -> Result<bool> { return r.verified; });
}

Future<Bytes> Token::encrypt(const Key& key, const Mechanism& mechanism, ByteView plaintext) const {
  return core_->call<Bytes>(key_job(Op::encrypt, key, mechanism, plaintext), key,
                            [](JobResult& r) -> Result<Bytes> { return std::move(r.bytes); });
}

Future<Bytes> Token::decrypt(const Key& key, const Mechanism& mechanism, ByteView ciphertext) const {
  return core_->call<Bytes>(key_job(Op::decrypt, key, mechanism, ciphertext), key,
                            [](JobResult& r) -> Result<Bytes> { return std::move(r.bytes); });
}

Future<Bytes> Token::digest(const Mechanism& mechanism, ByteView data) const {
  Job job;
  job.op = Op::digest;
  job.mechanism = mechanism;
  job.data = data.to_bytes();
  return core_->call<Bytes>(std::move(job), Key(),
                            [](JobResult& r) -> Result<Bytes> { return std::move(r.bytes); });
}

Future<Bytes> Token::random(std::size_t length) const {
  Job job;
  job.op = Op::random;
  job.length = length;
  return core_->call<Bytes>(std::move(job), Key(),
                            [](JobResult& r) -> Result<Bytes> { return std::move(r.bytes); });
}

Future<pkcs11::KeyPairHandles> Token::generate_key_pair(const pkcs11::KeyPairTemplate& spec) const {
  Job job;
  job.op = Op::generate_key_pair;
  job.mechanism = spec.mechanism;
  job.attributes = spec.public_key;
  job.private_attributes = spec.private_key;
  return core_->call<pkcs11::KeyPairHandles>(
      std::move(job), Key(), [](JobResult& r) -> Result<pkcs11::KeyPairHandles> {
        if (r.handles.size() != 2) {
          return Error::make(Condition::internal_error, "key pair without two handles",
                             "generate_key_pair");
        }
        return pkcs11::KeyPairHandles{r.handles[0], r.handles[1]};
      });
}

Future<std::uint64_t> Token::generate_key(const pkcs11::KeyTemplate& spec) const {
  Job job;
  job.op = Op::generate_key;
  job.mechanism = spec.mechanism;
  job.attributes = spec.key;
  return core_->call<std::uint64_t>(std::move(job), Key(), [](JobResult& r) -> Result<std::uint64_t> {
    if (r.handles.empty()) {
      return Error::make(Condition::internal_error, "no key handle", "generate_key");
    }
    return r.handles.front();
  });
}

Future<pkcs11::PublicKey> Token::export_public_key(const Key& public_key) const {
  Job job;
  job.op = Op::export_public_key;
  job.key = public_key.ref();
  return core_->call<pkcs11::PublicKey>(std::move(job), public_key,
                                        [](JobResult& r) -> Result<pkcs11::PublicKey> {
                                          return std::move(r.public_key);
                                        });
}

Future<bool> Token::destroy(const Key& key) const {
  Job job;
  job.op = Op::destroy_object;
  job.key = key.ref();
  return core_->call<bool>(std::move(job), Key(), [](JobResult&) -> Result<bool> { return true; });
}

void Token::sign(const Key& key, const Mechanism& mechanism, ByteView data,
                 std::function<void(Result<Bytes>)> done) const {
  if (core_->is_closed()) {
    done(closed_error("sign"));
    return;
  }
  core_->submit(key_job(Op::sign, key, mechanism, data),
                [key, done = std::move(done)](Result<JobResult> result) {
                  if (!result) {
                    done(result.error());
                    return;
                  }
                  key.remember(result->key_handle, result->key_generation);
                  done(std::move(result->bytes));
                });
}

void Token::verify(const Key& key, const Mechanism& mechanism, ByteView data, ByteView signature,
                   std::function<void(Result<bool>)> done) const {
  if (core_->is_closed()) {
    done(closed_error("verify"));
    return;
  }
  Job job = key_job(Op::verify, key, mechanism, data);
  job.signature = signature.to_bytes();
  core_->submit(std::move(job), [key, done = std::move(done)](Result<JobResult> result) {
    if (!result) {
      done(result.error());
      return;
    }
    key.remember(result->key_handle, result->key_generation);
    done(result->verified);
  });
}

Future<JobResult> Token::submit(Job job) const {
  return core_->call<JobResult>(std::move(job), Key(),
                                [](JobResult& r) -> Result<JobResult> { return std::move(r); });
}

void Token::submit(Job job, std::function<void(Result<JobResult>)> done) const {
  if (core_->is_closed()) {
    done(closed_error(to_string(job.op)));
    return;
  }
  core_->submit(std::move(job), std::move(done));
}

caf::actor Token::pool_handle() const { return caf::actor_cast<caf::actor>(core_->pool); }

Result<PoolMetrics> Token::metrics() const {
  if (core_->is_closed()) return closed_error("metrics");
  return core_->runtime->ask<PoolMetrics>(core_->pool, kControlTimeout, stats_atom::value).get();
}

const std::string& Token::label() const { return core_->label; }
const std::string& Token::module_path() const { return core_->module_path; }

void Token::set_trace_sink(TraceSink sink) const { core_->trace->set(std::move(sink)); }

void Token::close() const {
  if (core_) core_->close();
}

// ---- Stream ----

struct Stream::State {
  std::shared_ptr<Token::Core> core;
  session_actor session;
  std::chrono::milliseconds deadline{30000};
  std::mutex mutex;
  bool done = false;

  /// Gives the session back to the pool exactly once.
  void end(bool tainted) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (done) return;
      done = true;
    }
    if (core->runtime->forked()) return;
    if (tainted) caf::anon_send(session, s_abort_atom::value);
    caf::anon_send(core->pool, unpin_atom::value, session, tainted);
  }

  bool finished() {
    std::lock_guard<std::mutex> lock(mutex);
    return done;
  }
};

Stream::~Stream() { abort(); }
Stream::Stream(Stream&&) noexcept = default;
Stream& Stream::operator=(Stream&& other) noexcept {
  if (this != &other) {
    abort();
    state_ = std::move(other.state_);
  }
  return *this;
}

Future<std::uint64_t> Stream::update(ByteView chunk) {
  if (!state_ || state_->finished()) {
    return make_ready_future<std::uint64_t>(
        Error::make(Condition::invalid_argument, "the stream is finished", "stream_update"));
  }
  auto state = state_;
  auto [promise, future] = make_promise<std::uint64_t>();
  SharedPromise<std::uint64_t> shared(std::move(promise));
  state->core->runtime->ask_then<std::uint64_t>(
      state->session, state->deadline,
      caf_side([shared, state](Result<std::uint64_t> result) {
        // A failed update closed the session inside the actor; give it back.
        if (!result) state->end(false);
        shared.set_result(std::move(result));
      }),
      s_update_atom::value, chunk.to_bytes());
  return std::move(future);
}

namespace {

// Ends `state`'s stream with s_finish (carrying `signature` for verify
// streams) and converts the JobResult with `convert`.
template <class R, class Convert>
Future<R> finish_stream(const std::shared_ptr<Stream::State>& state, Bytes signature,
                        Convert convert) {
  if (!state || state->finished()) {
    return make_ready_future<R>(
        Error::make(Condition::invalid_argument, "the stream is finished", "stream_finish"));
  }
  auto [promise, future] = make_promise<R>();
  SharedPromise<R> shared(std::move(promise));
  state->core->runtime->ask_then<JobResult>(
      state->session, state->deadline,
      caf_side([shared, state, convert](Result<JobResult> result) {
        state->end(false);
        if (!result) {
          shared.set_error(result.error());
        } else {
          shared.set_value(convert(*result));
        }
      }),
      s_finish_atom::value, std::move(signature));
  return std::move(future);
}

}  // namespace

Future<Bytes> Stream::finish() {
  return finish_stream<Bytes>(state_, Bytes(), [](JobResult& r) { return std::move(r.bytes); });
}

Future<bool> Stream::finish_verify(ByteView signature) {
  return finish_stream<bool>(state_, signature.to_bytes(), [](JobResult& r) { return r.verified; });
}

void Stream::abort() {
  if (state_) state_->end(true);
}

Future<Stream> Token::open_stream(StreamKind kind, const Mechanism& mechanism,
                                  const Key& key) const {
  if (core_->is_closed()) return make_ready_future<Stream>(closed_error("open_stream"));
  StreamSpec spec;
  spec.kind = kind;
  spec.mechanism = mechanism;
  spec.key = key.ref();
  spec.deadline_ns = deadline_after(core_->default_deadline);
  auto core = core_;
  auto [promise, future] = make_promise<Stream>();
  auto shared = std::make_shared<Promise<Stream>>(std::move(promise));
  core->runtime->ask_then<PinnedSession>(
      core->pool, time_left(spec.deadline_ns) + kBridgeGrace,
      caf_side([shared, core](Result<PinnedSession> pinned) {
        if (!pinned) {
          shared->set_error(pinned.error());
          return;
        }
        Stream stream;
        stream.state_ = std::make_shared<Stream::State>();
        stream.state_->core = core;
        stream.state_->session = pinned->session;
        stream.state_->deadline = core->default_deadline;
        shared->set_value(std::move(stream));
      }),
      open_atom::value, std::move(spec));
  return std::move(future);
}

// ---- Hsm ----

Hsm::Hsm(const RuntimeOptions& options) : runtime_(Runtime::create(options)) {}

Hsm::Hsm(caf::actor_system& system) : runtime_(Runtime::borrow(system)) {}

Hsm::~Hsm() = default;

Result<Token> Hsm::open_token(const TokenOptions& requested) {
  TokenOptions options = requested;
  if (!options.uri.empty()) {
    auto applied = apply_uri(options);
    if (!applied) return applied.error();
  }
  if (options.module_path.empty()) {
    return Error::make(Condition::invalid_argument, "no module path (option or URI module-path)",
                       "open_token");
  }
  if (options.max_sessions == 0 || options.queue_limit == 0) {
    return Error::make(Condition::invalid_argument, "max_sessions and queue_limit must be > 0",
                       "open_token");
  }
  auto lease = acquire_library(runtime_, options.module_path, std::chrono::seconds(30),
                               options.finalize);
  if (!lease) return lease.error().in_operation("open_token");
  auto& module = (*lease)->module();
  pkcs11::TokenSelector selector;
  if (!options.label.empty()) selector.label = options.label;
  if (!options.serial.empty()) selector.serial = options.serial;
  auto slot = module->find_token(selector);
  if (!slot) return slot.error().in_operation("open_token");
  auto info = module->token_info(*slot);
  if (!info) return info.error().in_operation("open_token");

  auto core = std::make_shared<Token::Core>();
  core->runtime = (*lease)->runtime();
  core->lease = *lease;
  core->slot = *slot;
  core->label = info->label;
  core->module_path = module->path();
  core->default_deadline = options.default_deadline;

  if (!options.pin.empty()) {
    PinBox box{std::make_shared<const Pin>(options.pin)};
    auto logged_in = core->runtime
                         ->ask<std::uint64_t>((*lease)->supervisor(), kControlTimeout,
                                              login_atom::value, std::uint64_t{*slot}, box)
                         .get();
    if (!logged_in) {
      core->closed = true;  // nothing to stop yet
      return logged_in.error().in_operation("open_token");
    }
    core->logged_in = true;
  }

  PoolSettings settings;
  settings.slot = *slot;
  settings.min_sessions = std::min(options.min_sessions, options.max_sessions);
  settings.max_sessions = options.max_sessions;
  if (info->max_sessions) {
    // One of the token's sessions holds the login.
    std::size_t room = *info->max_sessions > 1 ? *info->max_sessions - 1 : 1;
    settings.max_sessions = std::min(settings.max_sessions, room);
    settings.min_sessions = std::min(settings.min_sessions, settings.max_sessions);
  }
  settings.queue_limit = options.queue_limit;
  settings.default_deadline = options.default_deadline;
  settings.trace = core->trace;
  core->channel = make_pool_channel(settings);
  core->pool = spawn_token_pool(core->runtime->system(), (*lease)->supervisor(), settings,
                                core->channel);
  caf::anon_send(core->pool, grow_atom::value);

  Token token;
  token.core_ = std::move(core);
  return token;
}

}  // namespace hsmactor
