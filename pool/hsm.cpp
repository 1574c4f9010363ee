#include "pool/hsm.hpp"

#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "actors/library_registry.hpp"
#include "actors/process.hpp"
#include "pool/token_pool.hpp"
#include "pool/token_uri.hpp"

namespace hsmactor {
namespace {

constexpr auto kControlTimeout = std::chrono::seconds(60);
// Behind the pool's own bound for pinning a session (its deadline plus the
// 60 s a session may take to get to the request), so the pool decides.
constexpr auto kStreamBackstop = std::chrono::seconds(90);

static_assert(TokenOptions::kMaxQueueLimit <= JobQueue::kMaxLimit &&
                  TokenOptions::kMaxSessions <= JobQueue::kMaxConsumers,
              "a limit open_token accepts must be one the queue honours");

// Returns why `options` are out of range, if they are: a limit the library
// cannot honour is refused here rather than misbehaving later.
std::optional<Error> check_limits(const TokenOptions& options) {
  auto invalid = [](std::string what) {
    return Error::make(Condition::invalid_argument, std::move(what), "open_token");
  };
  if (options.max_sessions == 0 || options.max_sessions > TokenOptions::kMaxSessions) {
    return invalid("max_sessions must be 1 to " + std::to_string(TokenOptions::kMaxSessions));
  }
  if (options.queue_limit == 0 || options.queue_limit > TokenOptions::kMaxQueueLimit) {
    return invalid("queue_limit must be 1 to " + std::to_string(TokenOptions::kMaxQueueLimit));
  }
  if (options.default_deadline.count() <= 0 || options.default_deadline > TokenOptions::kMaxDeadline) {
    return invalid("default_deadline must be more than 0 and at most " +
                   std::to_string(TokenOptions::kMaxDeadline.count()) + " hours");
  }
  return std::nullopt;
}

Error closed_error(const char* operation) {
  return Error::make(Condition::shutting_down, "the token was closed", operation);
}

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
  std::shared_ptr<TraceHub> trace;
  /// Where continuations, callbacks and trace sinks run (null: the
  /// completion pool).
  std::shared_ptr<Executor> executor;
  /// Set once, by the first close; read without a lock on the request path.
  std::atomic<bool> closed{false};
  /// The first close shuts down (unlocked); later ones wait for it here.
  std::mutex close_mutex;
  std::condition_variable close_done;
  bool shut_down_finished = false;

  /// What closing needs, moved out of a Core so a Core can die first.
  struct Closing {
    std::shared_ptr<Runtime> runtime;
    std::shared_ptr<LibraryLease> lease;
    pool_actor pool;
    CK_SLOT_ID slot = 0;
    bool logged_in = false;
  };

  ~Core() { close(); }

  bool is_closed() const { return closed.load(); }

  /// Marks a Core that never started a pool as closed: nothing to shut down.
  void discard_unstarted() {
    closed = true;
    std::lock_guard<std::mutex> lock(close_mutex);
    shut_down_finished = true;
  }

  /// Shuts the token down once; a concurrent close waits until that is done.
  /// No lock is held while shutting down, which may take as long as the
  /// slowest PKCS#11 call in flight.
  void close() {
    if (closed.exchange(true)) {
      std::unique_lock<std::mutex> lock(close_mutex);
      close_done.wait(lock, [this] { return shut_down_finished; });
      return;
    }
    // No sink runs once the token is closed: what it captured may go now.
    if (trace) trace->set(nullptr);
    shut_down(take_closing());
    {
      std::lock_guard<std::mutex> lock(close_mutex);
      shut_down_finished = true;
    }
    close_done.notify_all();
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
  /// for overloaded and shutting_down). `done` only hands the answer over:
  /// it never runs application code (see call()).
  template <class Done>
  void submit(Job job, Done done) {
    if (runtime->forked()) {
      // The session actors are the parent's; nothing here would ever answer.
      done(Result<JobResult>(
          Error::make(Condition::forked, "this token belongs to the parent process",
                      to_string(job.op))));
      return;
    }
    if (job.deadline_ns == 0) job.deadline_ns = deadline_after(default_deadline);
    auto& queue = *channel.queue;
    auto queued = queue.make_job(std::move(job), QueuedJob::Completion(std::move(done)));
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
  ///
  /// The one answer path of every single-shot request: the session thread
  /// only resolves the promise (and updates the key's cache); whatever the
  /// application attached, a then() or a callback, runs on the executor.
  template <class R, class Convert>
  Future<R> call(Job job, const Key& key, Convert convert) {
    if (is_closed()) return make_ready_future<R>(closed_error(to_string(job.op)));
    auto [promise, future] = make_promise<R>(executor);
    SharedPromise<R> shared(std::move(promise));
    submit(std::move(job), [shared, key, convert](Result<JobResult> result) {
      if (!result) {
        shared.set_error(result.error());
        return;
      }
      key.remember(result->key_handle, result->key_generation);
      shared.set_result(convert(*result));
    });
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
  if (length == 0 || length > kMaxRandomLength) {
    // Refused here: a huge request is never queued, let alone allocated.
    return make_ready_future<Bytes>(Error::make(
        Condition::invalid_argument, "random takes 1 byte to 1 MiB per request", "random"));
  }
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
  sign(key, mechanism, data).then(std::move(done));
}

void Token::verify(const Key& key, const Mechanism& mechanism, ByteView data, ByteView signature,
                   std::function<void(Result<bool>)> done) const {
  verify(key, mechanism, data, signature).then(std::move(done));
}

Future<JobResult> Token::submit(Job job) const {
  return core_->call<JobResult>(std::move(job), Key(),
                                [](JobResult& r) -> Result<JobResult> { return std::move(r); });
}

void Token::submit(Job job, std::function<void(Result<JobResult>)> done) const {
  submit(std::move(job)).then(std::move(done));
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

// A stream's steps go straight to its pinned session actor; its end (finish,
// failure, give-up, or the last Stream handle going) goes to the pool, which
// alone decides the session's fate: aborted (closed) on its own thread before
// anyone else may pin it, or given back when the stream finished.
struct Stream::State {
  std::shared_ptr<Token::Core> core;
  session_actor session;
  std::uint64_t stream_id = 0;
  std::chrono::milliseconds deadline{30000};
  std::atomic<bool> done{false};

  /// Gives the session back to the pool exactly once; `tainted`: the
  /// operation may still be active in the module, so the session is closed.
  void end(bool tainted) {
    if (done.exchange(true)) return;
    release_stream(*core, stream_id, tainted);
  }

  static void release_stream(Token::Core& core, std::uint64_t stream_id, bool tainted) {
    if (core.runtime->forked() || !core.pool) return;
    caf::anon_send(core.pool, unpin_atom::value, stream_id, tainted);
  }

  /// The answer a step gets once the stream is over.
  Error finished_error(const char* operation) const {
    if (core->is_closed()) return closed_error(operation);
    return Error::make(Condition::invalid_argument, "the stream is finished", operation);
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
  if (!state_ || state_->done.load()) {
    return make_ready_future<std::uint64_t>(
        state_ ? state_->finished_error("stream_update")
               : Error::make(Condition::invalid_argument, "an empty stream", "stream_update"));
  }
  auto state = state_;
  auto [promise, future] = make_promise<std::uint64_t>(state->core->executor);
  state->core->runtime
      ->ask<std::uint64_t>(state->session, state->deadline, s_update_atom::value,
                           state->stream_id, chunk.to_bytes())
      .then([promise = std::move(promise), state](Result<std::uint64_t> result) mutable {
        // Whatever failed (the module, or the wait for it), the operation
        // may still be active: the session must be closed, not shared.
        if (!result) state->end(/*tainted=*/true);
        promise.set_result(std::move(result));
      });
  return std::move(future);
}

namespace {

// Ends `state`'s stream with s_finish (carrying `signature` for verify
// streams) and converts the JobResult with `convert`.
template <class R, class Convert>
Future<R> finish_stream(const std::shared_ptr<Stream::State>& state, Bytes signature,
                        Convert convert) {
  if (!state || state->done.load()) {
    return make_ready_future<R>(
        state ? state->finished_error("stream_finish")
              : Error::make(Condition::invalid_argument, "an empty stream", "stream_finish"));
  }
  auto [promise, future] = make_promise<R>(state->core->executor);
  state->core->runtime
      ->ask<JobResult>(state->session, state->deadline, s_finish_atom::value, state->stream_id,
                       std::move(signature))
      .then([promise = std::move(promise), state, convert](Result<JobResult> result) mutable {
        state->end(/*tainted=*/!result);
        if (!result) {
          promise.set_error(result.error());
        } else {
          promise.set_value(convert(*result));
        }
      });
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
  spec.stream_id = next_epoch();
  auto core = core_;
  auto stream_id = spec.stream_id;
  auto [promise, future] = make_promise<Stream>(core->executor);
  // The pool answers by the deadline (deadline_exceeded while every session
  // is pinned); this bound is only a backstop behind the pool's own.
  core->runtime
      ->ask<PinnedSession>(core->pool, time_left(spec.deadline_ns) + kStreamBackstop,
                           open_atom::value, std::move(spec))
      .then([promise = std::move(promise), core, stream_id](Result<PinnedSession> pinned) mutable {
        if (!pinned) {
          // Reconcile a give-up with the pool: if a session was pinned after
          // all, it is aborted and given back.
          Stream::State::release_stream(*core, stream_id, /*tainted=*/true);
          promise.set_error(pinned.error());
          return;
        }
        Stream stream;
        stream.state_ = std::make_shared<Stream::State>();
        stream.state_->core = core;
        stream.state_->session = pinned->session;
        stream.state_->stream_id = stream_id;
        stream.state_->deadline = core->default_deadline;
        // A future nobody waits for any more drops the Stream, which gives
        // its session back.
        promise.set_value(std::move(stream));
      });
  return std::move(future);
}

// ---- Hsm ----

Hsm::Hsm(const RuntimeOptions& options) : runtime_(Runtime::create(options)) {}

Hsm::Hsm(caf::actor_system& system) : runtime_(Runtime::borrow(system)) {}

Hsm::~Hsm() = default;

Result<Token> Hsm::open_token(const TokenOptions& requested) {
  TokenOptions options = requested;
  // The URI may carry pin-value=: this copy is wiped on every way out.
  struct WipeUri {
    std::string& uri;
    ~WipeUri() {
      volatile char* bytes = uri.data();
      for (std::size_t i = 0; i < uri.size(); ++i) bytes[i] = '\0';
    }
  } wipe_uri{options.uri};
  if (!options.uri.empty()) {
    auto parsed = parse_token_uri(options.uri);
    if (!parsed) return parsed.error();
    if (!parsed->label.empty()) options.label = parsed->label;
    if (!parsed->serial.empty()) options.serial = parsed->serial;
    if (!parsed->module_path.empty()) options.module_path = parsed->module_path;
    if (!parsed->pin.empty()) options.pin = parsed->pin;
  }
  if (options.module_path.empty()) {
    return Error::make(Condition::invalid_argument, "no module path (option or URI module-path)",
                       "open_token");
  }
  if (auto invalid = check_limits(options)) return *invalid;
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
  core->executor = options.executor;
  core->trace = std::make_shared<TraceHub>(options.executor);

  if (!options.pin.empty()) {
    PinBox box{std::make_shared<const Pin>(options.pin)};
    auto logged_in = core->runtime
                         ->ask<std::uint64_t>((*lease)->supervisor(), kControlTimeout,
                                              login_atom::value, std::uint64_t{*slot}, box)
                         .get();
    if (!logged_in) {
      core->discard_unstarted();
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
