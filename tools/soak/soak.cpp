#include "tools/soak/soak.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <iomanip>
#include <mutex>
#include <random>
#include <thread>

#include "hsmactor_caf.hpp"
#include "pkcs11/rv.hpp"
#include "pool/testing_hooks.hpp"
#include "tests/support/openssl_check.hpp"

namespace hsmactor::soak {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxFailuresShown = 20;
constexpr std::size_t kStreamChunks = 3;
constexpr std::size_t kRandomLength = 32;
constexpr auto kPullOut = 200ms;       // how long the token stays out
constexpr auto kRecoveryLimit = 30s;   // a probe must sign again within this
constexpr std::size_t kMaxBatchItems = 6;  // items per sign_many / digest_many / random_many
constexpr std::size_t kCompletionLoops = 2;  // event-loop threads draining completion queues
constexpr std::size_t kRequesterActors = 4;  // actors making hsmactor::request() calls

enum class Kind : std::uint8_t { ecdsa, rsa, hmac, random, digest, stream_digest, stream_hmac };
// How a request goes out and comes back. The numbers index kModeNames.
enum class Mode : std::uint8_t { future_get, then, callback, completion, batch, actor };
constexpr std::uint8_t kStreamMode = 6;
const char* const kModeNames[] = {"get",   "then",  "callback", "completion queue",
                                  "batch", "actor", "stream"};

// `stream_percent` of 100 requests are streams (they pin a session each, so
// few by default), half digest, half HMAC; the rest out of 96: RSA-2048
// signing costs SoftHSM2 ten times an ECDSA signature, so it gets fewer.
Kind pick_kind(std::uint32_t roll, std::size_t stream_percent) {
  if (roll % 100 < stream_percent) return roll % 2 == 0 ? Kind::stream_digest : Kind::stream_hmac;
  const std::uint32_t single = roll / 100 % 96;
  if (single < 24) return Kind::ecdsa;
  if (single < 32) return Kind::rsa;
  if (single < 56) return Kind::hmac;
  if (single < 74) return Kind::random;
  return Kind::digest;
}

// Out of 10 picks: 3 by then(), 2 by get(), 1 by callback, 2 by then() on a
// completion queue an event loop drains, 1 batch (of 1 to kMaxBatchItems
// requests), 1 by an actor's hsmactor::request().
Mode pick_mode(std::uint32_t roll) {
  static const Mode kModes[] = {Mode::then,     Mode::then,       Mode::then,  Mode::future_get,
                                Mode::future_get, Mode::callback, Mode::completion,
                                Mode::completion, Mode::batch,    Mode::actor};
  return kModes[roll % 10];
}

const char* kind_name(Kind kind) {
  static const char* const kNames[] = {"ecdsa",  "rsa",           "hmac",       "random",
                                       "digest", "stream_digest", "stream_hmac"};
  return kNames[static_cast<int>(kind)];
}

bool is_stream(Kind kind) { return kind == Kind::stream_digest || kind == Kind::stream_hmac; }

std::int64_t ns_of(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

std::string code_of(const Error& error) {
  return std::string(to_string(error.condition())) + "/" + error.rv_name();
}

// A fixed number of timestamps written once each, read from any thread.
class Timestamps {
 public:
  explicit Timestamps(std::size_t count)
      : count_(count), values_(new std::atomic<std::int64_t>[count == 0 ? 1 : count]) {
    for (std::size_t i = 0; i < std::max<std::size_t>(count, 1); ++i) values_[i] = INT64_MAX;
  }
  std::size_t size() const { return count_; }
  void set(std::size_t i, std::int64_t ns) { values_[i] = ns; }
  std::int64_t get(std::size_t i) const { return values_[i].load(); }

 private:
  std::size_t count_;
  std::unique_ptr<std::atomic<std::int64_t>[]> values_;
};

}  // namespace

bool allowed_error(const Error& error, const FaultContext& context) {
  const bool stale_code = pkcs11::is_stale_session_rv(error.rv());
  const bool absent_code = pkcs11::is_token_absent_rv(error.rv());
  const Condition condition = error.condition();
  if (condition == Condition::stale_session_retry_failed && error.category() == Category::retry &&
      (context.stale_injection || context.pull_window || context.in_flight_at_kill)) {
    return true;
  }
  if (context.pull_window && (stale_code || absent_code) &&
      (condition == Condition::pkcs11_error || condition == Condition::stale_session_retry_failed ||
       condition == Condition::stream_interrupted)) {
    return true;
  }
  if (context.in_flight_at_kill &&
      (condition == Condition::broken_promise || condition == Condition::stream_interrupted ||
       stale_code)) {
    return true;
  }
  return false;
}

struct Soak::State {
  // One caller's window of outstanding requests.
  struct Window {
    std::mutex mutex;
    std::condition_variable freed;
    std::size_t outstanding = 0;  // by mutex
  };

  struct Held {
    std::size_t id;
    Kind kind;
    Clock::time_point sent;
    Future<Bytes> answer;
  };

  const SoakOptions options;
  const Token token;
  const fault::FaultControl& faults;
  const SoakToken& keys;
  caf::actor_system* const system;  // null: actor-mode requests go by then()
  const Key ec = Key::private_key(testing::TestKeyLabels::ec256);
  const Key rsa = Key::private_key(testing::TestKeyLabels::rsa2048);
  const Key hmac = Key::secret_key(testing::TestKeyLabels::hmac);

  std::unique_ptr<std::atomic<std::uint32_t>[]> answers;
  // How each request went out (kind, mode) and when (ms after the start), for
  // the report on hangs.
  std::unique_ptr<std::uint8_t[]> sent_kind, sent_mode;
  std::unique_ptr<std::uint32_t[]> sent_ms;
  Clock::time_point started = Clock::now();
  std::vector<std::unique_ptr<Window>> windows;
  std::atomic<std::size_t> completed{0};
  std::atomic<bool> sending_done{false};
  std::atomic<bool> stop_saboteur{false};
  Timestamps pull_start, pull_end, kill_at;
  std::atomic<std::size_t> pulls_started{0}, kills_sent{0};

  // Counts, merged from every thread.
  std::atomic<std::size_t> duplicates{0}, ok{0}, verified{0}, wrong{0}, allowed{0}, failed{0},
      known_bug{0}, not_sent{0};
  std::atomic<std::size_t> by_future_get{0}, by_then{0}, by_callback{0}, streams{0},
      by_completion{0}, by_actor{0}, batch_items{0}, batches{0};
  std::atomic<std::size_t> stale_injected{0}, pulls_recovered{0};
  std::mutex report_mutex;
  std::map<std::string, std::size_t> allowed_by_code, failed_by_code,
      known_by_code;  // by report_mutex
  std::vector<std::string> first_failures;                             // by report_mutex
  std::vector<long> recovery_ms;                                       // by report_mutex

  // Event loops: each drains one completion queue, and the requests of
  // completion mode go through a token handle whose continuations run there.
  std::vector<std::shared_ptr<CompletionQueue>> completion_queues;
  std::vector<Token> on_loop;
  std::vector<std::thread> loops;
  std::atomic<bool> stop_loops{false};
  // Actors that turn a caller's message into hsmactor::request() calls.
  std::vector<caf::actor> requesters;

  State(const SoakOptions& o, const Token& t, const fault::FaultControl& f, const SoakToken& k,
        caf::actor_system* s)
      : options(o), token(t), faults(f), keys(k), system(s),
        answers(new std::atomic<std::uint32_t>[o.requests]),
        sent_kind(new std::uint8_t[o.requests]()), sent_mode(new std::uint8_t[o.requests]()),
        sent_ms(new std::uint32_t[o.requests]()), pull_start(o.pulls),
        pull_end(o.pulls), kill_at(o.kills) {
    for (std::size_t i = 0; i < o.requests; ++i) answers[i] = 0;
    for (std::size_t c = 0; c < o.callers; ++c) windows.push_back(std::make_unique<Window>());
  }

  // ---- requests and their checks ----

  Bytes message(std::size_t id, std::size_t part = 0) const {
    return bytes_of("soak seed " + std::to_string(options.seed) + " request " +
                    std::to_string(id) + " part " + std::to_string(part));
  }

  Bytes stream_input(std::size_t id) const {
    Bytes all;
    for (std::size_t part = 0; part < kStreamChunks; ++part) {
      Bytes chunk = message(id, part);
      all.insert(all.end(), chunk.begin(), chunk.end());
    }
    return all;
  }

  // What goes to the HSM for a single-shot request.
  Bytes input(std::size_t id, Kind kind) const {
    return kind == Kind::ecdsa ? testing::openssl::sha256(message(id)) : message(id);
  }

  // Returns true if `answer` is right; `checked` tells whether OpenSSL looked.
  bool check(std::size_t id, Kind kind, const Bytes& answer, bool& checked) const {
    checked = id % options.verify_every == 0;
    switch (kind) {
      case Kind::random:
        checked = false;  // nothing to recompute
        return answer.size() == kRandomLength;
      case Kind::ecdsa:
        if (answer.size() != 64) return false;
        return !checked ||
               testing::openssl::verify_ecdsa(keys.ec256_public(), input(id, kind), answer);
      case Kind::rsa:
        if (answer.size() != 256) return false;
        return !checked || testing::openssl::verify_rsa_pkcs1_sha256(keys.rsa2048_public(),
                                                                     message(id), answer);
      case Kind::hmac:
        if (answer.size() != 32) return false;
        return !checked ||
               answer == testing::openssl::hmac_sha256(keys.keys().hmac_value, message(id));
      case Kind::digest:
        if (answer.size() != 32) return false;
        return !checked || answer == testing::openssl::sha256(message(id));
      case Kind::stream_digest:
        if (answer.size() != 32) return false;
        return !checked || answer == testing::openssl::sha256(stream_input(id));
      case Kind::stream_hmac:
        if (answer.size() != 32) return false;
        return !checked ||
               answer == testing::openssl::hmac_sha256(keys.keys().hmac_value, stream_input(id));
    }
    return false;
  }

  FaultContext context_of(Clock::time_point sent, Clock::time_point answered) const {
    FaultContext context;
    context.stale_injection = options.stale_rate > 0;
    const std::int64_t from = ns_of(sent), to = ns_of(answered);
    for (std::size_t p = 0; p < pull_start.size(); ++p) {
      if (from <= pull_end.get(p) && to >= pull_start.get(p)) context.pull_window = true;
    }
    for (std::size_t k = 0; k < kill_at.size(); ++k) {
      const std::int64_t at = kill_at.get(k);
      // A little slack: the kill lands some time after it was sent.
      if (at != INT64_MAX && from <= at + 1'000'000'000 && to >= at) context.in_flight_at_kill = true;
    }
    return context;
  }

  std::string ms_after_start(Clock::time_point t) const {
    return std::to_string(
        std::chrono::duration_cast<std::chrono::milliseconds>(t - started).count());
  }

  void note_failure(std::size_t id, Kind kind, const std::string& why) {
    std::lock_guard<std::mutex> lock(report_mutex);
    if (first_failures.size() < kMaxFailuresShown) {
      first_failures.push_back("request " + std::to_string(id) + " (" + kind_name(kind) +
                               "): " + why);
    }
  }

  // Takes the one answer of request `id` (or counts a duplicate), judges it,
  // and frees its place in caller `caller`'s window.
  void answered(std::size_t caller, std::size_t id, Kind kind, Clock::time_point sent,
                const Result<Bytes>& answer) {
    const auto when = Clock::now();
    if (answers[id].fetch_add(1) != 0) {
      duplicates++;
      note_failure(id, kind, "answered again");
      return;  // its window place was freed by the first answer
    }
    judge(id, kind, sent, when, answer);
    completed++;
    release(caller);
  }

  void judge(std::size_t id, Kind kind, Clock::time_point sent, Clock::time_point when,
             const Result<Bytes>& answer) {
    if (answer.ok()) {
      bool checked = false;
      if (check(id, kind, *answer, checked)) {
        ok++;
        if (checked) verified++;
      } else {
        wrong++;
        note_failure(id, kind, "answer does not check out (" + std::to_string(answer->size()) +
                                   " bytes)");
      }
      return;
    }
    const Error& error = answer.error();
    const FaultContext context = context_of(sent, when);
    const bool fine = allowed_error(error, context);
    if (!fine && options.tolerate_stream_key_bug && is_stream(kind) && context.pull_window &&
        (error.rv() == CKR_OBJECT_HANDLE_INVALID || error.rv() == CKR_KEY_HANDLE_INVALID)) {
      // The known library bug (see RESULTS.md): counted apart, not a failure.
      known_bug++;
      std::lock_guard<std::mutex> lock(report_mutex);
      known_by_code[code_of(error)]++;
      return;
    }
    {
      std::lock_guard<std::mutex> lock(report_mutex);
      (fine ? allowed_by_code : failed_by_code)[code_of(error)]++;
    }
    if (fine) {
      allowed++;
    } else {
      failed++;
      note_failure(id, kind, error.message() + " (sent at " + ms_after_start(sent) +
                                 " ms, answered at " + ms_after_start(when) + " ms)");
    }
  }

  void release(std::size_t caller) {
    Window& window = *windows[caller];
    std::lock_guard<std::mutex> lock(window.mutex);
    window.outstanding--;
    window.freed.notify_all();  // under the lock: the window may go right after
  }

  // A request given up by its caller (a hang): its window place is freed,
  // its answer count stays 0.
  void give_up(std::size_t caller) { release(caller); }

  // ---- callers ----

  const Key& key_for(Kind kind) const {
    return kind == Kind::ecdsa ? ec : kind == Kind::rsa ? rsa : hmac;
  }
  static Mechanism mechanism_for(Kind kind) {
    switch (kind) {
      case Kind::ecdsa: return Mechanism::ecdsa();
      case Kind::rsa: return Mechanism::rsa_pkcs_sha256();
      case Kind::hmac: return Mechanism::hmac_sha256();
      default: return Mechanism::sha256();
    }
  }

  // One single-shot request of `kind` through `via`.
  Future<Bytes> request_on(const Token& via, Kind kind, const Bytes& data) const {
    switch (kind) {
      case Kind::random: return via.random(kRandomLength);
      case Kind::digest: return via.digest(Mechanism::sha256(), data);
      default: return via.sign(key_for(kind), mechanism_for(kind), data);
    }
  }

  // Sends one single-shot request by Future::get (held), then(), callback,
  // then() on an event loop's completion queue, or through an actor.
  void send_single(std::size_t caller, std::size_t id, Kind kind, Mode mode,
                   std::deque<Held>& held) {
    const Bytes data = input(id, kind);
    const auto sent = Clock::now();
    auto reply = [this, caller, id, kind, sent](const Result<Bytes>& answer) {
      answered(caller, id, kind, sent, answer);
    };
    if (mode == Mode::actor && !requesters.empty()) {
      by_actor++;
      caf::anon_send(requesters[caller % requesters.size()], std::uint64_t{caller},
                     std::uint64_t{id}, std::uint64_t{static_cast<std::uint8_t>(kind)},
                     std::int64_t{ns_of(sent)});
      return;
    }
    if (mode == Mode::completion) {
      by_completion++;
      request_on(on_loop[caller % on_loop.size()], kind, data).then(reply);
      return;
    }
    if (mode == Mode::callback) {
      by_callback++;
      if (kind == Kind::ecdsa || kind == Kind::rsa || kind == Kind::hmac) {
        token.sign(key_for(kind), mechanism_for(kind), data, reply);
      } else {
        request_on(token, kind, data).then(reply);
      }
      return;
    }
    Future<Bytes> answer = request_on(token, kind, data);
    if (mode == Mode::then) {
      by_then++;
      answer.then(reply);
    } else {
      by_future_get++;
      held.push_back(Held{id, kind, sent, std::move(answer)});
    }
  }

  // Sends requests first_id .. first_id + count - 1, all of `kind`, as one
  // batch; each item is answered (and judged) as a request of its own.
  void send_batch(std::size_t caller, std::size_t first_id, std::size_t count, Kind kind) {
    batches++;
    batch_items += count;
    const auto sent = Clock::now();
    auto reply = [this, caller, first_id, count, kind,
                  sent](const Result<std::vector<Result<Bytes>>>& answer) {
      for (std::size_t i = 0; i < count; ++i) {
        if (!answer.ok()) {
          answered(caller, first_id + i, kind, sent, answer.error());
        } else if (answer->size() != count) {
          answered(caller, first_id + i, kind, sent,
                   Error::make(Condition::internal_error,
                               "the batch answered " + std::to_string(answer->size()) +
                                   " items for " + std::to_string(count)));
        } else {
          answered(caller, first_id + i, kind, sent, (*answer)[i]);
        }
      }
    };
    if (kind == Kind::random) {
      token.random_many(kRandomLength, count).then(reply);
      return;
    }
    std::vector<Bytes> inputs;
    for (std::size_t i = 0; i < count; ++i) inputs.push_back(input(first_id + i, kind));
    if (kind == Kind::digest) {
      token.digest_many(Mechanism::sha256(), std::move(inputs)).then(reply);
    } else {
      token.sign_many(key_for(kind), mechanism_for(kind), std::move(inputs)).then(reply);
    }
  }

  // The behaviour of a requester actor: each message from a caller becomes
  // one hsmactor::request(), answered in this actor's mailbox.
  caf::behavior requester(caf::event_based_actor* self) {
    return {[this, self](std::uint64_t caller, std::uint64_t id, std::uint64_t kind_value,
                         std::int64_t sent_ns) {
      const auto kind = static_cast<Kind>(kind_value);
      const auto sent = Clock::time_point(
          std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(sent_ns)));
      Job job;
      if (kind == Kind::random) {
        job.op = Op::random;
        job.length = kRandomLength;
      } else {
        job.op = kind == Kind::digest ? Op::digest : Op::sign;
        job.mechanism = mechanism_for(kind);
        job.data = input(id, kind);
      }
      auto handle = kind == Kind::random || kind == Kind::digest
                        ? request(self, token, std::move(job))
                        : request(self, token, key_for(kind), std::move(job));
      handle.then(
          [this, caller, id, kind, sent](JobResult& result) {
            answered(caller, id, kind, sent, Result<Bytes>(std::move(result.bytes)));
          },
          [this, caller, id, kind, sent](caf::error& failure) {
            answered(caller, id, kind, sent, Result<Bytes>(from_caf_error(failure)));
          });
    }};
  }

  void start_delivery() {
    for (std::size_t i = 0; i < kCompletionLoops; ++i) {
      auto queue = std::make_shared<CompletionQueue>();
      completion_queues.push_back(queue);
      on_loop.push_back(token.with_executor(queue));
      loops.emplace_back([this, queue] {
        while (!stop_loops.load()) queue->wait(20ms);
      });
    }
    if (system == nullptr) return;
    for (std::size_t i = 0; i < kRequesterActors; ++i) {
      requesters.push_back(system->spawn(
          [](caf::event_based_actor* self, State* state) { return state->requester(self); },
          this));
    }
  }

  // After every caller is done: answers still owed go to the completion
  // pool (a queue's destructor), and the actors quit.
  void stop_delivery() {
    stop_loops = true;
    for (auto& loop : loops) loop.join();
    for (auto& queue : completion_queues) queue->run_ready();
    for (auto& actor : requesters) caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
  }

  // Runs a three-chunk stream on this thread; its one answer is the
  // finish() output or the first error.
  void run_stream(std::size_t caller, std::size_t id, Kind kind, Clock::time_point give_up_at) {
    streams++;
    const auto sent = Clock::now();
    auto limit = [&] { return std::max<Clock::duration>(give_up_at - Clock::now(), 1ms); };
    auto opened = kind == Kind::stream_digest
                      ? token.open_stream(StreamKind::digest, Mechanism::sha256())
                      : token.open_stream(StreamKind::sign, Mechanism::hmac_sha256(), hmac);
    auto stream = opened.get(limit());
    if (opened.valid()) return hang(caller, id, kind, "open_stream unanswered");
    if (!stream) return answered(caller, id, kind, sent, stream.error());
    for (std::size_t part = 0; part < kStreamChunks; ++part) {
      auto update = stream->update(message(id, part));
      auto fed = update.get(limit());
      if (update.valid()) return hang(caller, id, kind, "stream update unanswered");
      if (!fed) return answered(caller, id, kind, sent, fed.error());
    }
    auto finish = stream->finish();
    auto output = finish.get(limit());
    if (finish.valid()) return hang(caller, id, kind, "stream finish unanswered");
    answered(caller, id, kind, sent, output);
  }

  void hang(std::size_t caller, std::size_t id, Kind kind, const std::string& what) {
    note_failure(id, kind, what + " after the hang limit");
    give_up(caller);
  }

  // Gets the oldest held future's answer, waiting at most until `give_up_at`.
  void settle(std::size_t caller, std::deque<Held>& held, Clock::time_point give_up_at) {
    Held& oldest = held.front();
    auto answer = oldest.answer.get(std::max<Clock::duration>(give_up_at - Clock::now(), 1ms));
    if (oldest.answer.valid()) {
      hang(caller, oldest.id, oldest.kind, "future unanswered");
    } else {
      answered(caller, oldest.id, oldest.kind, oldest.sent, answer);
    }
    held.pop_front();
  }

  // Takes a place in caller `caller`'s window, settling held futures while
  // it is full; false if no place freed within the hang limit.
  bool take_place(std::size_t caller, std::deque<Held>& held) {
    Window& window = *windows[caller];
    while (true) {
      std::unique_lock<std::mutex> lock(window.mutex);
      if (window.outstanding < options.window) {
        window.outstanding++;
        return true;
      }
      if (!held.empty()) {
        lock.unlock();
        settle(caller, held, Clock::now() + options.hang_limit);
        continue;
      }
      if (!window.freed.wait_for(lock, options.hang_limit,
                                 [&] { return window.outstanding < options.window; })) {
        return false;
      }
    }
  }

  void note_sent(std::size_t id, Kind kind, std::uint8_t mode) {
    sent_kind[id] = static_cast<std::uint8_t>(kind);
    sent_mode[id] = mode;
    sent_ms[id] = static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count());
  }

  void run_caller(std::size_t caller) {
    const std::size_t first = options.requests * caller / options.callers;
    const std::size_t end = options.requests * (caller + 1) / options.callers;
    std::mt19937 rng(static_cast<std::uint32_t>(options.seed * 7919 + caller));
    std::deque<Held> held;
    for (std::size_t id = first; id < end;) {
      bool stalled = !take_place(caller, held);
      if (stalled) {
        not_sent += end - id;
        note_failure(id, Kind::random, "caller stalled: its window did not free within the limit");
        break;
      }
      const Kind kind = pick_kind(rng(), options.stream_percent);
      const Mode mode = pick_mode(rng());
      if (is_stream(kind)) {
        note_sent(id, kind, kStreamMode);
        run_stream(caller, id, kind, Clock::now() + options.hang_limit);
        ++id;
      } else if (mode == Mode::batch) {
        // One place per item, like separate requests.
        const std::size_t want =
            std::min<std::size_t>({1 + rng() % kMaxBatchItems, end - id, options.window});
        std::size_t count = 1;
        while (count < want && take_place(caller, held)) ++count;
        stalled = count < want;
        for (std::size_t i = 0; i < count; ++i) {
          note_sent(id + i, kind, static_cast<std::uint8_t>(mode));
        }
        send_batch(caller, id, count, kind);
        id += count;
        if (stalled) {
          not_sent += end - id;
          note_failure(id, kind, "caller stalled: its window did not free within the limit");
          break;
        }
      } else {
        note_sent(id, kind, static_cast<std::uint8_t>(mode));
        send_single(caller, id, kind, mode, held);
        ++id;
      }
      if (held.size() > options.window / 2) settle(caller, held, Clock::now() + options.hang_limit);
    }
    const auto give_up_at = Clock::now() + options.hang_limit;
    while (!held.empty()) settle(caller, held, give_up_at);
  }

  // After sending: what is held is settled, and what is outstanding may come
  // until `give_up_at`.
  void finish_caller(std::size_t caller, Clock::time_point give_up_at) {
    (void)caller;
    Window& window = *windows[caller];
    std::unique_lock<std::mutex> lock(window.mutex);
    window.freed.wait_until(lock, give_up_at, [&] { return window.outstanding == 0; });
  }

  // ---- the saboteur ----

  std::uint64_t pool_retries() const {
    auto metrics = token.metrics();
    return metrics ? metrics->retries : 0;
  }

  void pull_and_reinsert(std::size_t index) {
    pull_start.set(index, ns_of(Clock::now()));
    pulls_started++;
    faults.remove_token();
    std::this_thread::sleep_for(kPullOut);
    faults.insert_token();
    const auto reinserted = Clock::now();
    const Bytes digest = testing::openssl::sha256(bytes_of("probe"));
    bool recovered = false;
    while (Clock::now() - reinserted < kRecoveryLimit) {
      auto signature = token.sign(ec, Mechanism::ecdsa(), digest).get(kRecoveryLimit);
      if (signature.ok()) {
        recovered = true;
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    pull_end.set(index, ns_of(Clock::now()));
    if (recovered) pulls_recovered++;
    std::lock_guard<std::mutex> lock(report_mutex);
    recovery_ms.push_back(static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - reinserted).count()));
  }

  void kill_one(std::size_t index) {
    kill_at.set(index, ns_of(Clock::now()));
    testing_hooks::kill_one_session(token);
    kills_sent++;
  }

  void run_saboteur() {
    static const char* const kStaleFunctions[] = {"C_Sign", "C_Digest", "C_GenerateRandom"};
    std::mt19937 rng(static_cast<std::uint32_t>(options.seed * 104729 + 1));
    const std::size_t total = options.requests;
    // Pulls at 1/(K+1), 2/(K+1), ... of the answers; kills halfway between
    // M even steps, so the two rarely coincide.
    auto pull_due = [&](std::size_t p) { return total * (p + 1) / (options.pulls + 1); };
    auto kill_due = [&](std::size_t k) { return total * (2 * k + 1) / (2 * options.kills); };
    std::size_t next_pull = 0, next_kill = 0, next_function = 0;
    const double mean_gap = options.stale_rate > 0 ? 1.0 / options.stale_rate : 0;
    std::uniform_real_distribution<double> jitter(0.5, 1.5);
    std::size_t next_stale_at = static_cast<std::size_t>(mean_gap * jitter(rng));
    // The rule in place, until the module counts the call that met it.
    const char* pending_function = nullptr;
    unsigned long pending_calls = 0;
    while (!stop_saboteur) {
      const std::size_t done = completed.load();
      if (pending_function != nullptr && faults.call_count(pending_function) > pending_calls) {
        stale_injected++;
        pending_function = nullptr;
      }
      if (next_pull < options.pulls && done >= pull_due(next_pull)) {
        if (pending_function == nullptr) pull_and_reinsert(next_pull++);
      } else if (next_kill < options.kills && done >= kill_due(next_kill)) {
        kill_one(next_kill++);
      } else if (mean_gap > 0 && pending_function == nullptr && done >= next_stale_at &&
                 !sending_done) {
        // One at a time, so two faults rarely meet one job (that would fail
        // it, allowed but uninteresting).
        pending_function = kStaleFunctions[next_function++ % 3];
        pending_calls = faults.call_count(pending_function);
        faults.add_rule(pending_function, CKR_SESSION_HANDLE_INVALID, 0, 1);
        next_stale_at = done + std::max<std::size_t>(1, static_cast<std::size_t>(mean_gap * jitter(rng)));
      } else {
        std::this_thread::sleep_for(1ms);
      }
    }
    // Faults still due when the answers ran out: do them now, so a run
    // always has what it asked for (judged by the report).
    while (next_kill < options.kills) kill_one(next_kill++);
    if (pending_function != nullptr && faults.call_count(pending_function) > pending_calls) {
      stale_injected++;
    }
  }
};

Soak::Soak(const SoakOptions& options, const Token& token, const fault::FaultControl& faults,
           const SoakToken& keys, caf::actor_system* actors)
    : state_(std::make_unique<State>(options, token, faults, keys, actors)) {}

Soak::~Soak() = default;

Report Soak::run() {
  State& st = *state_;
  const auto& options = st.options;
  st.faults.reset();
  const auto started = Clock::now();
  st.started = started;
  st.start_delivery();
  std::thread saboteur([&st] { st.run_saboteur(); });
  std::vector<std::thread> callers;
  std::atomic<std::size_t> callers_sending{options.callers};
  std::mutex end_mutex;
  std::condition_variable end_cv;
  Clock::time_point sending_end;  // by end_mutex, once callers_sending is 0
  for (std::size_t c = 0; c < options.callers; ++c) {
    callers.emplace_back([&, c] {
      st.run_caller(c);
      Clock::time_point give_up_at;
      {
        std::unique_lock<std::mutex> lock(end_mutex);
        if (--callers_sending == 0) {
          sending_end = Clock::now();
          st.sending_done = true;
          end_cv.notify_all();
        }
        end_cv.wait(lock, [&] { return callers_sending.load() == 0; });
        give_up_at = sending_end + options.hang_limit;
      }
      st.finish_caller(c, give_up_at);
    });
  }
  for (auto& caller : callers) caller.join();
  const auto answered_by = Clock::now();
  st.stop_delivery();
  st.stop_saboteur = true;
  saboteur.join();

  Report report;
  report.requests = options.requests;
  report.callers = options.callers;
  for (std::size_t i = 0; i < options.requests; ++i) {
    const auto count = st.answers[i].load();
    if (count == 1) report.answered_once++;
    if (count == 0) {
      report.hangs++;
      if (report.hung.size() < kMaxFailuresShown && i < options.requests) {
        report.hung.push_back("request " + std::to_string(i) + " " + kind_name(static_cast<Kind>(st.sent_kind[i])) +
                              " by " + kModeNames[st.sent_mode[i]] + ", sent at " +
                              std::to_string(st.sent_ms[i]) + " ms");
      }
    }
  }
  report.not_sent = st.not_sent;
  report.hangs -= std::min(report.hangs, report.not_sent);
  report.duplicates = st.duplicates;
  report.ok = st.ok;
  report.verified = st.verified;
  report.wrong = st.wrong;
  report.allowed_errors = st.allowed;
  report.failed_errors = st.failed;
  report.known_bug_errors = st.known_bug;
  report.by_future_get = st.by_future_get;
  report.by_then = st.by_then;
  report.by_callback = st.by_callback;
  report.by_completion = st.by_completion;
  report.by_actor = st.by_actor;
  report.batches = st.batches;
  report.batch_items = st.batch_items;
  report.streams = st.streams;
  report.stale_injected = st.stale_injected;
  report.pulls_asked = options.pulls;
  report.kills_asked = options.kills;
  report.pulls = st.pulls_started;
  report.pulls_recovered = st.pulls_recovered;
  report.kills_sent = st.kills_sent;
  auto ms_of = [&](std::int64_t ns) {
    return ns == INT64_MAX ? -1L
                           : static_cast<long>((ns - ns_of(started)) / 1'000'000);
  };
  for (std::size_t p = 0; p < st.pull_start.size(); ++p) {
    report.fault_times.push_back("pull " + std::to_string(ms_of(st.pull_start.get(p))) + "-" +
                                 std::to_string(ms_of(st.pull_end.get(p))) + " ms");
  }
  for (std::size_t k = 0; k < st.kill_at.size(); ++k) {
    if (k == kMaxFailuresShown) {
      report.fault_times.push_back("and " + std::to_string(st.kill_at.size() - k) + " kills more");
      break;
    }
    report.fault_times.push_back("kill " + std::to_string(ms_of(st.kill_at.get(k))) + " ms");
  }
  {
    std::lock_guard<std::mutex> lock(st.report_mutex);
    report.allowed_by_code = st.allowed_by_code;
    report.failed_by_code = st.failed_by_code;
    report.known_by_code = st.known_by_code;
    report.first_failures = st.first_failures;
    report.recovery_ms = st.recovery_ms;
  }
  report.violations = st.faults.violations();
  report.last_violation = st.faults.last_violation();
  report.max_threads_inside = st.faults.max_concurrency();
  if (auto metrics = st.token.metrics()) {
    report.pool_retries = metrics->retries;
    report.pool_session_restarts = metrics->session_restarts;
    report.pool_requests = metrics->requests;
    report.pool_failed = metrics->failed;
  }
  report.seconds = std::chrono::duration<double>(answered_by - started).count();
  report.per_second = report.seconds > 0 ? options.requests / report.seconds : 0;
  struct rusage usage {};
  if (::getrusage(RUSAGE_SELF, &usage) == 0) report.peak_rss_kib = usage.ru_maxrss;
  return report;
}

bool Report::passed() const {
  return duplicates == 0 && hangs == 0 && not_sent == 0 && wrong == 0 && failed_errors == 0 &&
         violations == 0 && answered_once == requests && pulls == pulls_asked &&
         pulls_recovered == pulls_asked && kills_sent == kills_asked;
}

void Report::print(std::ostream& out) const {
  auto codes = [&](const std::map<std::string, std::size_t>& by_code) {
    std::string text;
    for (const auto& [code, count] : by_code) text += " " + code + "=" + std::to_string(count);
    return text.empty() ? std::string(" none") : text;
  };
  out << std::fixed << std::setprecision(1);
  out << "requests:            " << requests << " from " << callers << " callers (" << by_then
      << " then, " << by_future_get << " get, " << by_callback << " callback, " << by_completion
      << " on completion queues, " << by_actor << " by actors, " << batch_items << " in "
      << batches << " batches, " << streams << " streams)\n"
      << "answered once:       " << answered_once << "\n"
      << "duplicates:          " << duplicates << "\n"
      << "hangs:               " << hangs << "\n";
  if (not_sent != 0) out << "not sent (stalled):  " << not_sent << "\n";
  out << "right answers:       " << ok << " (" << verified << " checked with OpenSSL)\n"
      << "wrong answers:       " << wrong << "\n"
      << "allowed errors:      " << allowed_errors << ":" << codes(allowed_by_code) << "\n"
      << "failed errors:       " << failed_errors << ":" << codes(failed_by_code) << "\n";
  if (known_bug_errors != 0) {
    out << "known library bug:   " << known_bug_errors << ":" << codes(known_by_code)
        << " (a stream's C_SignInit with a key handle gone stale in a pull; tolerated)\n";
  }
  out
      << "tracker violations:  " << violations
      << (last_violation.empty() ? "" : " (last: " + last_violation + ")") << "\n"
      << "max threads inside:  " << max_threads_inside << "\n"
      << "stale injected:      " << stale_injected << " (" << std::setprecision(2)
      << (requests ? 100.0 * stale_injected / requests : 0) << "% of requests)\n"
      << std::setprecision(1) << "token pulls:         " << pulls << " of " << pulls_asked << " (" << pulls_recovered
      << " recovered; ms to the first signature after reinsertion:";
  for (long ms : recovery_ms) out << " " << ms;
  out << ")\n"
      << "session kills:       " << kills_sent << " of " << kills_asked << "\n"
      << "pool:                " << pool_requests << " requests (probes included), "
      << pool_failed << " failed, " << pool_retries << " retries, " << pool_session_restarts
      << " session restarts\n"
      << "duration:            " << seconds << " s\n"
      << "throughput:          " << per_second << " requests/s\n"
      << "peak RSS:            " << peak_rss_kib / 1024.0 << " MiB\n";
  out << "fault times:        ";
  for (const auto& when : fault_times) out << " " << when << ";";
  out << "\n";
  for (const auto& failure : first_failures) out << "failure: " << failure << "\n";
  for (const auto& request : hung) out << "hung: " << request << "\n";
  out << (passed() ? "PASS" : "FAIL") << "\n";
}

}  // namespace hsmactor::soak
