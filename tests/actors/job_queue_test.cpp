#include "actors/job_queue.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <catch2/catch.hpp>

#include "pkcs11/error.hpp"

namespace hsmactor {
namespace {

using namespace std::chrono_literals;

constexpr std::int64_t kNoDeadlineRecorded = std::numeric_limits<std::int64_t>::max();

/// Returns "ok" for a success, otherwise the name of the error's condition.
std::string outcome(const Result<JobResult>& result) {
  return result.ok() ? "ok" : to_string(result.error().condition());
}

/// Returns "queued", "overloaded" or "closed", so failed checks read well.
std::string name(PushOutcome pushed) {
  switch (pushed) {
    case PushOutcome::queued: return "queued";
    case PushOutcome::overloaded: return "overloaded";
    case PushOutcome::closed: return "closed";
  }
  return "unknown";
}

/// Returns a job that carries `id` (in Job::object) and `deadline_ns`.
Job job_with_id(std::uint64_t id, std::int64_t deadline_ns = 0) {
  Job job;
  job.op = Op::sign;
  job.object = id;
  job.deadline_ns = deadline_ns;
  return job;
}

/// Every answer (and observation) of one test, in the order they happened.
/// Declare it before the queue and the jobs, so it outlives both.
class AnswerLog {
 public:
  /// Returns a completion that records "caller <id>:<outcome>".
  QueuedJob::Completion completion(std::uint64_t id) {
    return QueuedJob::Completion(
        [this, id](Result<JobResult> result) { add("caller " + label(id, result)); });
  }

  void add(std::string line) {
    std::lock_guard<std::mutex> lock(mutex_);
    lines_.push_back(std::move(line));
  }

  std::vector<std::string> lines() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return lines_;
  }

  static std::string label(std::uint64_t id, const Result<JobResult>& result) {
    return std::to_string(id) + ":" + outcome(result);
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
};

/// A JobObserver that writes what it sees into the same log as the callers.
class LoggingObserver final : public JobObserver {
 public:
  explicit LoggingObserver(AnswerLog& log) : log_(log) {}
  void finished(const QueuedJob& job, const Result<JobResult>& result) noexcept override {
    log_.add("observer " + AnswerLog::label(job.job.object, result));
  }

 private:
  AnswerLog& log_;
};

/// Returns a job for no particular queue that reports to `log`.
QueuedJobPtr make_logged(AnswerLog& log, std::uint64_t id, std::int64_t deadline_ns = 0) {
  return std::make_unique<QueuedJob>(job_with_id(id, deadline_ns), log.completion(id));
}

/// Pushes a fresh job `id`; returns what push said.
std::string push_new(JobQueue& queue, AnswerLog& log, std::uint64_t id,
                     std::int64_t deadline_ns = 0) {
  auto job = make_logged(log, id, deadline_ns);
  return name(queue.push(job));
}

/// Pops every job and returns their ids in order, answering each with success.
std::vector<std::uint64_t> drain_ids(JobQueue& queue) {
  std::vector<std::uint64_t> ids;
  while (auto job = queue.try_pop()) {
    ids.push_back(job->job.object);
    job->complete(JobResult{});
  }
  return ids;
}

/// A session actor that does nothing but count the `pull` messages it gets.
session_actor::behavior_type pull_counter(session_actor::pointer,
                                          std::shared_ptr<std::atomic<int>> pulls) {
  return {
      [](s_begin_atom, const StreamSpec&) { return std::uint64_t{0}; },
      [](s_update_atom, std::uint64_t, const Bytes&) { return std::uint64_t{0}; },
      [](s_finish_atom, std::uint64_t, const Bytes&) { return JobResult{}; },
      [](s_abort_atom, std::uint64_t) { return false; },
      [](status_atom) { return SessionStatus{}; },
      [](serve_atom, const JobSource&) {},
      [pulls](pull_atom) { pulls->fetch_add(1); },
  };
}

/// A CAF system on the deterministic test scheduler: actors handle their
/// mailboxes only inside run(), on the test's thread, so counts are exact.
/// Declare it before the queue, so the actors outlive the queue's slots.
struct TestSystem {
  ~TestSystem() {
    for (auto& actor : actors) caf::anon_send_exit(actor, caf::exit_reason::user_shutdown);
    scheduler().run();
  }
  caf::scheduler::test_coordinator& scheduler() {
    return dynamic_cast<caf::scheduler::test_coordinator&>(system.scheduler());
  }
  /// Returns a pull-counting session actor.
  session_actor spawn_counter(std::shared_ptr<std::atomic<int>> pulls) {
    actors.push_back(system.spawn(pull_counter, std::move(pulls)));
    return actors.back();
  }
  /// Runs every actor until no message is left, then returns `pulls`.
  int pulls_after_run(const std::shared_ptr<std::atomic<int>>& pulls) {
    scheduler().run();
    return pulls->load();
  }

  caf::actor_system_config config;
  caf::actor_system system{config.set("scheduler.policy", caf::atom("testing"))};
  std::vector<session_actor> actors;
};

// ---- FIFO and depth ----

TEST_CASE("jobs come out in the order they were pushed and depth counts them") {
  AnswerLog log;
  JobQueue queue(8, 1);
  REQUIRE(queue.try_pop() == nullptr);
  REQUIRE(queue.depth() == 0);

  for (std::uint64_t id = 1; id <= 3; ++id) {
    auto job = make_logged(log, id);
    REQUIRE(name(queue.push(job)) == "queued");
    REQUIRE(job == nullptr);  // the queue took it
    REQUIRE(queue.depth() == id);
  }

  for (std::uint64_t id = 1; id <= 3; ++id) {
    QueuedJobPtr job = queue.try_pop();
    REQUIRE(job != nullptr);
    REQUIRE(job->job.object == id);
    REQUIRE(queue.depth() == 3 - id);
    job->complete(JobResult{});
  }
  REQUIRE(queue.try_pop() == nullptr);
  REQUIRE(queue.depth() == 0);
  REQUIRE(log.lines() == std::vector<std::string>{"caller 1:ok", "caller 2:ok", "caller 3:ok"});
}

// ---- the bound ----

TEST_CASE("a push beyond the limit is refused as overloaded and the job stays with the caller") {
  const std::size_t limit = GENERATE(as<std::size_t>{}, 1, 3, 16);
  CAPTURE(limit);
  AnswerLog log;
  JobQueue queue(limit, 2);
  REQUIRE(queue.limit() == limit);
  for (std::uint64_t id = 1; id <= limit; ++id) REQUIRE(push_new(queue, log, id) == "queued");
  REQUIRE(queue.depth() == limit);

  auto extra = make_logged(log, 99);
  REQUIRE(name(queue.push(extra)) == "overloaded");
  REQUIRE(extra != nullptr);
  REQUIRE(extra->job.object == 99);
  REQUIRE(queue.depth() == limit);
  REQUIRE(log.lines().empty());  // nobody was answered, the refused job included

  QueuedJobPtr first = queue.try_pop();
  REQUIRE(first != nullptr);
  REQUIRE(first->job.object == 1);
  first->complete(JobResult{});

  REQUIRE(name(queue.push(extra)) == "queued");
  REQUIRE(extra == nullptr);
  REQUIRE(queue.depth() == limit);
  auto again = make_logged(log, 100);
  REQUIRE(name(queue.push(again)) == "overloaded");

  std::vector<std::uint64_t> ids = drain_ids(queue);
  REQUIRE(ids.size() == limit);
  REQUIRE(ids.back() == 99);
}

TEST_CASE("limits beyond the documented maxima are clamped, and the queue still admits jobs") {
  AnswerLog log;
  {
    // A limit this large used to turn negative in the admission check.
    JobQueue queue(std::numeric_limits<std::size_t>::max(), 2);
    REQUIRE(queue.limit() == JobQueue::kMaxLimit);
    REQUIRE(push_new(queue, log, 1) == "queued");
    REQUIRE(drain_ids(queue) == std::vector<std::uint64_t>{1});
  }
  {
    JobQueue queue(8, std::numeric_limits<std::size_t>::max());
    REQUIRE(queue.attach(session_actor{}).has_value());
    REQUIRE(push_new(queue, log, 2) == "queued");
    REQUIRE(drain_ids(queue) == std::vector<std::uint64_t>{2});
  }
  {
    // Sizing the ring for this limit used to loop forever.
    JobQueue queue(std::size_t{1} << 62, 1);
    REQUIRE(queue.limit() == JobQueue::kMaxLimit);
    REQUIRE(push_new(queue, log, 3) == "queued");
    REQUIRE(drain_ids(queue) == std::vector<std::uint64_t>{3});
  }
  {
    JobQueue queue(JobQueue::kMaxLimit, JobQueue::kMaxConsumers);
    REQUIRE(queue.limit() == JobQueue::kMaxLimit);
  }
}

// ---- exactly one answer ----

TEST_CASE("a job destroyed unanswered is answered with broken_promise") {
  AnswerLog log;
  { auto job = make_logged(log, 7); }
  REQUIRE(log.lines() == std::vector<std::string>{"caller 7:broken_promise"});

  // The same when a consumer takes a job from the queue and drops it.
  JobQueue queue(4, 1);
  REQUIRE(push_new(queue, log, 8) == "queued");
  queue.try_pop().reset();
  REQUIRE(log.lines() ==
          std::vector<std::string>{"caller 7:broken_promise", "caller 8:broken_promise"});
}

TEST_CASE("complete answers a job once; a second complete and its destruction change nothing") {
  AnswerLog log;
  auto job = make_logged(log, 1);
  job->complete(JobResult{});
  job->complete(Error::make(Condition::internal_error, "a second answer", "sign"));
  job.reset();
  REQUIRE(log.lines() == std::vector<std::string>{"caller 1:ok"});
}

TEST_CASE("the queue's observer sees each outcome once, just before the caller does") {
  AnswerLog log;
  {
    JobQueue queue(8, 1, 50us, std::make_shared<LoggingObserver>(log));
    for (std::uint64_t id = 1; id <= 4; ++id) {
      auto job = queue.make_job(job_with_id(id), log.completion(id));
      REQUIRE(name(queue.push(job)) == "queued");
    }
    auto one = queue.try_pop();
    one->complete(JobResult{});
    auto two = queue.try_pop();
    two->complete(Error::make(Condition::deadline_exceeded, "too late", "sign"));
    two->complete(JobResult{});  // ignored
    two.reset();
    queue.try_pop().reset();  // three: dropped by its consumer
    // four: still queued when the queue goes away
  }
  REQUIRE(log.lines() == std::vector<std::string>{
                             "observer 1:ok",
                             "caller 1:ok",
                             "observer 2:deadline_exceeded",
                             "caller 2:deadline_exceeded",
                             "observer 3:broken_promise",
                             "caller 3:broken_promise",
                             "observer 4:shutting_down",
                             "caller 4:shutting_down",
                         });
}

// ---- close and shutdown ----

TEST_CASE("after close, pushes are refused as closed and take_all returns what was queued") {
  AnswerLog log;
  JobQueue queue(8, 1);
  REQUIRE(push_new(queue, log, 1) == "queued");
  REQUIRE(push_new(queue, log, 2) == "queued");
  REQUIRE_FALSE(queue.closed());

  queue.close();
  REQUIRE(queue.closed());
  auto late = make_logged(log, 3);
  REQUIRE(name(queue.push(late)) == "closed");
  REQUIRE(late != nullptr);
  REQUIRE(late->job.object == 3);
  REQUIRE(log.lines().empty());

  std::vector<QueuedJobPtr> left = queue.take_all();
  REQUIRE(left.size() == 2);
  REQUIRE(left[0]->job.object == 1);
  REQUIRE(left[1]->job.object == 2);
  REQUIRE(queue.depth() == 0);
  REQUIRE(queue.try_pop() == nullptr);
  REQUIRE(queue.take_all().empty());
}

TEST_CASE("the queue's destructor answers jobs still queued with shutting_down, and only those") {
  AnswerLog log;
  QueuedJobPtr running;
  {
    JobQueue queue(8, 1);
    for (std::uint64_t id = 1; id <= 3; ++id) REQUIRE(push_new(queue, log, id) == "queued");
    running = queue.try_pop();  // a consumer is running job 1
    REQUIRE(running != nullptr);
  }
  REQUIRE(log.lines() ==
          std::vector<std::string>{"caller 2:shutting_down", "caller 3:shutting_down"});
  running->complete(JobResult{});
  REQUIRE(log.lines().back() == "caller 1:ok");
}

// ---- requeue ----

TEST_CASE("requeue succeeds when the queue is at its limit and the job comes out again") {
  AnswerLog log;
  JobQueue queue(2, 1);
  REQUIRE(push_new(queue, log, 1) == "queued");
  REQUIRE(push_new(queue, log, 2) == "queued");
  QueuedJobPtr returned = queue.try_pop();  // its session could not open
  REQUIRE(returned->job.object == 1);
  REQUIRE(push_new(queue, log, 3) == "queued");  // the limit is reached again
  REQUIRE(queue.depth() == 2);

  queue.requeue(std::move(returned));
  REQUIRE(queue.depth() == 3);
  REQUIRE(push_new(queue, log, 4) == "overloaded");

  std::vector<std::uint64_t> ids = drain_ids(queue);
  std::sort(ids.begin(), ids.end());
  REQUIRE(ids == std::vector<std::uint64_t>{1, 2, 3});
  REQUIRE(queue.depth() == 0);
  REQUIRE(push_new(queue, log, 5) == "queued");
}

TEST_CASE("a job given back after close is answered shutting_down at once") {
  AnswerLog log;
  JobQueue queue(4, 1);
  REQUIRE(push_new(queue, log, 1) == "queued");
  QueuedJobPtr returned = queue.try_pop();  // its session could not open
  queue.close();
  REQUIRE(queue.take_all().empty());  // the pool's stop found nothing to answer

  queue.requeue(std::move(returned));
  REQUIRE(log.lines() == std::vector<std::string>{"caller 1:shutting_down"});
  REQUIRE(queue.depth() == 0);
  REQUIRE(queue.try_pop() == nullptr);
}

TEST_CASE("close and take_all racing a requeue answer the job exactly once") {
  for (int round = 0; round < 2000; ++round) {
    AnswerLog log;
    JobQueue queue(4, 1);
    REQUIRE(push_new(queue, log, 1) == "queued");
    QueuedJobPtr returned = queue.try_pop();
    std::thread stopper([&] {
      // What the pool's stop does: close, then answer whatever is queued.
      queue.close();
      for (auto& job : queue.take_all()) {
        job->complete(Error::make(Condition::shutting_down, "stopped", "sign"));
      }
    });
    queue.requeue(std::move(returned));
    stopper.join();
    // Answered before the queue goes away: not left behind in it.
    INFO("round " << round);
    REQUIRE(log.lines() == std::vector<std::string>{"caller 1:shutting_down"});
  }
}

// ---- deadline sweeps ----

constexpr std::int64_t kLongPassed = 1;  // 1 ns after boot

std::int64_t in_an_hour() { return deadline_after(std::chrono::hours(1)); }

TEST_CASE("a sweep answers expired jobs where they wait and keeps the others in order") {
  AnswerLog log;
  JobQueue queue(8, 1);
  REQUIRE(push_new(queue, log, 1, in_an_hour()) == "queued");
  REQUIRE(push_new(queue, log, 2, kLongPassed) == "queued");
  REQUIRE(push_new(queue, log, 3) == "queued");  // no deadline
  REQUIRE(push_new(queue, log, 4, kLongPassed) == "queued");
  REQUIRE(push_new(queue, log, 5, in_an_hour()) == "queued");

  REQUIRE(queue.expire_overdue() == 2);
  REQUIRE(log.lines() ==
          std::vector<std::string>{"caller 2:deadline_exceeded", "caller 4:deadline_exceeded"});
  REQUIRE(queue.depth() == 3);
  REQUIRE(queue.expire_overdue() == 0);  // nothing answered twice
  // Jobs pushed after the sweep queue up behind the ones it kept.
  REQUIRE(push_new(queue, log, 6) == "queued");
  REQUIRE(drain_ids(queue) == std::vector<std::uint64_t>{1, 3, 5, 6});
  REQUIRE(log.lines().size() == 6);
}

TEST_CASE("repeated sweeps keep the depth within the limit and old jobs ahead of new ones") {
  // Each round, the caller of an expired job retries at once, from its
  // completion, while the sweep is still at work: room comes only from the
  // jobs that are answered. (A sweep that takes every job out and puts the
  // live ones back lets the retries in first: depth 7, 10, 13, then an
  // endless spin once the ring is full.)
  AnswerLog log;
  const std::size_t limit = 4;
  JobQueue queue(limit, 1);
  std::uint64_t next_id = 100;
  std::vector<std::string> retries;
  auto retrying_expired = [&](std::uint64_t id) {
    return std::make_unique<QueuedJob>(
        job_with_id(id, kLongPassed), QueuedJob::Completion([&, id](Result<JobResult> result) {
          log.add("caller " + AnswerLog::label(id, result));
          for (int i = 0; i < 4; ++i) retries.push_back(push_new(queue, log, next_id++));
        }));
  };
  std::uint64_t live_id = 1;
  std::vector<std::uint64_t> live_order;
  for (int round = 0; round < 6; ++round) {
    INFO("round " << round);
    // The queue is full: one expired job and three live ones, oldest first.
    std::vector<QueuedJobPtr> jobs;
    jobs.push_back(retrying_expired(50 + round));
    for (int i = 0; i < 3; ++i) {
      live_order.push_back(live_id);
      jobs.push_back(make_logged(log, live_id++, in_an_hour()));
    }
    for (auto& job : jobs) REQUIRE(name(queue.push(job)) == "queued");
    REQUIRE(queue.depth() == limit);

    retries.clear();
    REQUIRE(queue.expire_overdue() == 1);
    REQUIRE(retries == std::vector<std::string>{"queued", "overloaded", "overloaded",
                                                "overloaded"});
    REQUIRE(queue.depth() == limit);
    REQUIRE(push_new(queue, log, 999) == "overloaded");

    // The three live jobs come out first, in their order, then the retry.
    std::vector<std::uint64_t> ids = drain_ids(queue);
    std::vector<std::uint64_t> expected(live_order.end() - 3, live_order.end());
    expected.push_back(next_id - 4);
    REQUIRE(ids == expected);
  }
}

TEST_CASE("jobs a sweep kept come out before newer ones, and still expire at pop") {
  AnswerLog log;
  JobQueue queue(8, 1);
  const std::int64_t soon = deadline_after(30ms);
  REQUIRE(push_new(queue, log, 1, kLongPassed) == "queued");
  REQUIRE(push_new(queue, log, 2, soon) == "queued");
  REQUIRE(push_new(queue, log, 3, in_an_hour()) == "queued");
  REQUIRE(queue.expire_overdue() == 1);
  REQUIRE(push_new(queue, log, 4) == "queued");

  std::this_thread::sleep_for(40ms);  // job 2 expires while it waits, unswept
  QueuedJobPtr next = queue.try_pop();
  REQUIRE(next != nullptr);
  REQUIRE(next->job.object == 3);
  REQUIRE(log.lines() ==
          std::vector<std::string>{"caller 1:deadline_exceeded", "caller 2:deadline_exceeded"});
  next->complete(JobResult{});
  REQUIRE(drain_ids(queue) == std::vector<std::uint64_t>{4});
  REQUIRE(queue.depth() == 0);
}

TEST_CASE("a job given back goes first in line, ahead of the jobs a sweep kept") {
  AnswerLog log;
  JobQueue queue(4, 1);
  REQUIRE(push_new(queue, log, 1) == "queued");
  REQUIRE(push_new(queue, log, 2, kLongPassed) == "queued");
  REQUIRE(push_new(queue, log, 3) == "queued");
  QueuedJobPtr returned = queue.try_pop();
  REQUIRE(returned->job.object == 1);
  REQUIRE(queue.expire_overdue() == 1);
  queue.requeue(std::move(returned));
  REQUIRE(drain_ids(queue) == std::vector<std::uint64_t>{1, 3});
}

TEST_CASE("producers, consumers and a sweeper at once: each job answered once, depth bounded") {
  constexpr int kProducers = 3;
  constexpr int kPerProducer = 4000;
  constexpr int kTotal = kProducers * kPerProducer;
  constexpr std::size_t kLimit = 16;
  std::vector<std::atomic<int>> answers(kTotal);
  std::atomic<int> answered{0};
  std::atomic<int> expired{0};
  std::atomic<bool> over_limit{false};
  const auto give_up_at = std::chrono::steady_clock::now() + 30s;
  JobQueue queue(kLimit, 2);

  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        const int id = p * kPerProducer + i;
        // Every third job has already expired; the others never do.
        std::int64_t deadline = id % 3 == 0 ? kLongPassed : in_an_hour();
        auto job = std::make_unique<QueuedJob>(
            job_with_id(static_cast<std::uint64_t>(id), deadline),
            QueuedJob::Completion([&, id](Result<JobResult> result) {
              answers[id].fetch_add(1);
              if (!result.ok()) expired.fetch_add(1);
              answered.fetch_add(1);
            }));
        while (queue.push(job) != PushOutcome::queued) {
          if (std::chrono::steady_clock::now() > give_up_at) return;
          std::this_thread::yield();
        }
      }
    });
  }
  for (int c = 0; c < 2; ++c) {
    threads.emplace_back([&] {
      while (answered.load() < kTotal && std::chrono::steady_clock::now() < give_up_at) {
        if (auto job = queue.try_pop()) {
          // Expired jobs a sweep missed are refused by their session.
          if (job->job.deadline_ns == kLongPassed) {
            job->complete(Error::make(Condition::deadline_exceeded, "late", "sign"));
          } else {
            job->complete(JobResult{});
          }
        } else {
          std::this_thread::yield();
        }
      }
    });
  }
  threads.emplace_back([&] {
    while (answered.load() < kTotal && std::chrono::steady_clock::now() < give_up_at) {
      queue.expire_overdue();
      // Producers back out of a refused admission, so allow one per producer.
      if (queue.depth() > kLimit + kProducers) over_limit.store(true);
      std::this_thread::yield();
    }
  });
  for (auto& thread : threads) thread.join();

  int never = 0, twice = 0;
  for (auto& count : answers) {
    never += count.load() == 0;
    twice += count.load() > 1;
  }
  REQUIRE(answered.load() == kTotal);
  REQUIRE(never == 0);
  REQUIRE(twice == 0);
  REQUIRE(expired.load() == (kTotal + 2) / 3);
  REQUIRE_FALSE(over_limit.load());
  REQUIRE(queue.depth() == 0);
}

// ---- the deadline hint ----

TEST_CASE("earliest_deadline_ns tracks the earliest pushed deadline until take_all") {
  AnswerLog log;
  JobQueue queue(8, 1);
  REQUIRE(queue.earliest_deadline_ns() == kNoDeadlineRecorded);

  REQUIRE(push_new(queue, log, 1, 3'000) == "queued");
  REQUIRE(queue.earliest_deadline_ns() == 3'000);
  REQUIRE(push_new(queue, log, 2, 5'000) == "queued");
  REQUIRE(queue.earliest_deadline_ns() == 3'000);
  REQUIRE(push_new(queue, log, 3, 1'000) == "queued");
  REQUIRE(queue.earliest_deadline_ns() == 1'000);

  std::vector<QueuedJobPtr> swept = queue.take_all();
  REQUIRE(swept.size() == 3);
  REQUIRE(queue.earliest_deadline_ns() == kNoDeadlineRecorded);

  // A requeued job's deadline counts again.
  queue.requeue(std::move(swept[1]));
  REQUIRE(queue.earliest_deadline_ns() == 5'000);
  REQUIRE(push_new(queue, log, 4, 4'000) == "queued");
  REQUIRE(queue.earliest_deadline_ns() == 4'000);
}

// ---- many producers, many consumers ----

TEST_CASE("four producers and three consumers: every job is taken once and answered once") {
  constexpr int kProducers = 4;
  constexpr int kPerProducer = 20000;
  constexpr int kConsumers = 3;
  constexpr int kTotal = kProducers * kPerProducer;

  std::vector<std::atomic<int>> popped(kTotal);
  std::vector<std::atomic<int>> answered(kTotal);
  std::atomic<int> successes{0};
  std::atomic<int> failures{0};
  std::atomic<int> taken{0};
  std::atomic<int> overloads{0};    // pushes retried
  std::atomic<int> refused{0};      // pushes that said closed (never expected)
  std::atomic<int> gave_up{0};      // pushes still overloaded at give_up_at
  std::atomic<int> foreign_ids{0};  // popped ids out of range
  // Fails (rather than hangs) if the queue stops admitting or yielding jobs.
  const auto give_up_at = std::chrono::steady_clock::now() + 30s;
  auto too_late = [&] { return std::chrono::steady_clock::now() >= give_up_at; };

  JobQueue queue(64, kConsumers);
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        const int id = p * kPerProducer + i;
        auto job = std::make_unique<QueuedJob>(
            job_with_id(static_cast<std::uint64_t>(id)),
            QueuedJob::Completion([&, id](Result<JobResult> result) {
              answered[id].fetch_add(1);
              (result.ok() ? successes : failures).fetch_add(1);
            }));
        for (unsigned retries = 1;; ++retries) {
          PushOutcome pushed = queue.push(job);
          if (pushed == PushOutcome::queued) break;
          if (pushed == PushOutcome::closed) {
            refused.fetch_add(1);
            break;
          }
          overloads.fetch_add(1);
          if ((retries & 1023) == 0 && too_late()) {
            gave_up.fetch_add(1);
            return;
          }
          std::this_thread::yield();
        }
      }
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    threads.emplace_back([&] {
      unsigned idle = 0;
      while (taken.load() < kTotal) {
        QueuedJobPtr job = queue.try_pop();
        if (!job) {
          if ((++idle & 1023) == 0 && too_late()) break;
          std::this_thread::yield();
          continue;
        }
        const std::uint64_t id = job->job.object;
        if (id >= static_cast<std::uint64_t>(kTotal)) {
          foreign_ids.fetch_add(1);
        } else {
          popped[id].fetch_add(1);
        }
        job->complete(JobResult{});
        taken.fetch_add(1);
      }
    });
  }
  for (auto& thread : threads) thread.join();

  int popped_twice = 0, never_popped = 0, answered_twice = 0, never_answered = 0;
  for (int id = 0; id < kTotal; ++id) {
    popped_twice += popped[id].load() > 1;
    never_popped += popped[id].load() == 0;
    answered_twice += answered[id].load() > 1;
    never_answered += answered[id].load() == 0;
  }
  CAPTURE(overloads.load());
  REQUIRE(gave_up.load() == 0);
  REQUIRE(taken.load() == kTotal);
  REQUIRE(refused.load() == 0);
  REQUIRE(foreign_ids.load() == 0);
  REQUIRE(popped_twice == 0);
  REQUIRE(never_popped == 0);
  REQUIRE(answered_twice == 0);
  REQUIRE(never_answered == 0);
  REQUIRE(successes.load() == kTotal);
  REQUIRE(failures.load() == 0);
  REQUIRE(queue.depth() == 0);
  REQUIRE(queue.try_pop() == nullptr);
}

// ---- consumer slots and the park/wake protocol ----

TEST_CASE("consumer slots report running, busy, pinned and parked consumers") {
  JobQueue queue(8, 1);  // two slots: a replaced session may hold one briefly
  REQUIRE(queue.consumers() == 0);

  std::optional<std::size_t> slot = queue.attach(session_actor{});
  REQUIRE(slot.has_value());
  REQUIRE(*slot == 0);
  REQUIRE(queue.consumers() == 1);
  REQUIRE(queue.busy_consumers() == 0);

  queue.begin_job(0);
  REQUIRE(queue.busy_consumers() == 1);
  queue.end_job(0);
  REQUIRE(queue.busy_consumers() == 0);
  queue.pin(0);
  REQUIRE(queue.busy_consumers() == 1);
  queue.resume(0);
  REQUIRE(queue.busy_consumers() == 0);

  REQUIRE(queue.park(0));  // nothing to do
  REQUIRE(queue.consumers() == 1);
  REQUIRE(queue.busy_consumers() == 0);

  std::optional<std::size_t> second = queue.attach(session_actor{});
  REQUIRE(second == std::optional<std::size_t>(1));
  REQUIRE(queue.attach(session_actor{}) == std::nullopt);
  REQUIRE(queue.consumers() == 2);

  queue.detach(0, caf::actor_addr{});
  REQUIRE(queue.consumers() == 1);
  REQUIRE(queue.attach(session_actor{}) == std::optional<std::size_t>(0));
}

TEST_CASE("park refuses while jobs wait or after close, so the consumer keeps pulling") {
  AnswerLog log;
  JobQueue queue(8, 1);
  REQUIRE(queue.attach(session_actor{}) == std::optional<std::size_t>(0));

  // A job pushed while the consumer runs: it must look again before sleeping.
  REQUIRE(push_new(queue, log, 1) == "queued");
  REQUIRE_FALSE(queue.park(0));
  REQUIRE(drain_ids(queue) == std::vector<std::uint64_t>{1});
  REQUIRE(queue.park(0));

  // A job pushed while the consumer is parked is woken for (here the handle
  // is empty, so no message goes out); the consumer then finds the job.
  REQUIRE(push_new(queue, log, 2) == "queued");
  queue.resume(0);
  REQUIRE(drain_ids(queue) == std::vector<std::uint64_t>{2});
  REQUIRE(queue.park(0));

  queue.close();
  queue.resume(0);
  REQUIRE_FALSE(queue.park(0));
}

TEST_CASE("a push that finds no idle consumer asks the pool to grow, once until re-armed") {
  TestSystem actors;
  auto pulls = std::make_shared<std::atomic<int>>(0);
  AnswerLog log;
  JobQueue queue(8, 1);
  int starved = 0;
  queue.on_starved([&] { ++starved; });

  REQUIRE(push_new(queue, log, 1) == "queued");
  REQUIRE(starved == 1);
  REQUIRE(push_new(queue, log, 2) == "queued");
  REQUIRE(starved == 1);
  queue.rearm_starved();
  REQUIRE(push_new(queue, log, 3) == "queued");
  REQUIRE(starved == 2);

  // A parked consumer is woken instead.
  drain_ids(queue);
  REQUIRE(queue.attach(actors.spawn_counter(pulls)) == std::optional<std::size_t>(0));
  REQUIRE(queue.park(0));
  queue.rearm_starved();
  REQUIRE(push_new(queue, log, 4) == "queued");
  REQUIRE(starved == 2);
  REQUIRE(actors.pulls_after_run(pulls) == 1);
}

TEST_CASE("a consumer that goes away after it was picked passes the wake-up on") {
  TestSystem actors;
  auto first_pulls = std::make_shared<std::atomic<int>>(0);
  auto second_pulls = std::make_shared<std::atomic<int>>(0);
  session_actor first = actors.spawn_counter(first_pulls);
  AnswerLog log;
  JobQueue queue(8, 2);
  REQUIRE(queue.attach(first) == std::optional<std::size_t>(0));
  REQUIRE(queue.attach(actors.spawn_counter(second_pulls)) == std::optional<std::size_t>(1));
  REQUIRE(queue.park(0));
  REQUIRE(queue.park(1));

  REQUIRE(push_new(queue, log, 1) == "queued");  // picks the first consumer
  // It dies before it handles the pull; its slot is emptied (by itself or by
  // the pool's down handler). The job must not wait for the next push.
  queue.detach(0, first.address());
  REQUIRE(actors.pulls_after_run(second_pulls) == 1);
  REQUIRE(queue.depth() == 1);
}

TEST_CASE("a wake-up skips a slot whose consumer is gone and reaches a parked one") {
  TestSystem actors;
  auto pulls = std::make_shared<std::atomic<int>>(0);
  AnswerLog log;
  JobQueue queue(8, 2);
  REQUIRE(queue.attach(session_actor{}) == std::optional<std::size_t>(0));  // no actor
  REQUIRE(queue.attach(actors.spawn_counter(pulls)) == std::optional<std::size_t>(1));
  REQUIRE(queue.park(0));
  REQUIRE(queue.park(1));

  REQUIRE(push_new(queue, log, 1) == "queued");
  REQUIRE(actors.pulls_after_run(pulls) == 1);
}

TEST_CASE("a running consumer that leaves while jobs wait wakes a parked one") {
  TestSystem actors;
  auto running_pulls = std::make_shared<std::atomic<int>>(0);
  auto parked_pulls = std::make_shared<std::atomic<int>>(0);
  session_actor running = actors.spawn_counter(running_pulls);
  AnswerLog log;
  JobQueue queue(8, 2);
  REQUIRE(queue.attach(running) == std::optional<std::size_t>(0));
  REQUIRE(queue.attach(actors.spawn_counter(parked_pulls)) == std::optional<std::size_t>(1));
  REQUIRE(queue.park(1));

  // The running consumer would have looked before parking: nobody is woken.
  REQUIRE(push_new(queue, log, 1) == "queued");
  REQUIRE(actors.pulls_after_run(parked_pulls) == 0);
  queue.detach(0, running.address());
  REQUIRE(actors.pulls_after_run(parked_pulls) == 1);
  REQUIRE(actors.pulls_after_run(running_pulls) == 0);
}

TEST_CASE("a push wakes a parked session actor with exactly one pull") {
  // CAF's deterministic scheduler: the actor handles its mailbox only inside
  // run(), on this thread, so every count below is exact.
  caf::actor_system_config config;
  config.set("scheduler.policy", caf::atom("testing"));
  caf::actor_system system{config};
  auto& scheduler = dynamic_cast<caf::scheduler::test_coordinator&>(system.scheduler());
  auto pulls = std::make_shared<std::atomic<int>>(0);
  session_actor consumer = system.spawn(pull_counter, pulls);
  auto pulls_seen = [&] {
    scheduler.run();
    return pulls->load();
  };

  AnswerLog log;
  {
    JobQueue queue(8, 1);
    std::optional<std::size_t> slot = queue.attach(consumer);
    REQUIRE(slot.has_value());

    // Running: a push sends nothing, the consumer looks before it parks.
    REQUIRE(push_new(queue, log, 1) == "queued");
    REQUIRE(pulls_seen() == 0);
    REQUIRE_FALSE(queue.park(*slot));
    REQUIRE(drain_ids(queue) == std::vector<std::uint64_t>{1});

    // Parked: the first push wakes it; the second finds it already waking.
    REQUIRE(queue.park(*slot));
    REQUIRE(push_new(queue, log, 2) == "queued");
    REQUIRE(push_new(queue, log, 3) == "queued");
    REQUIRE(pulls_seen() == 1);

    // The pull arrives: the consumer resumes, drains and parks again.
    queue.resume(*slot);
    REQUIRE(drain_ids(queue) == std::vector<std::uint64_t>{2, 3});
    REQUIRE(queue.park(*slot));

    // wake_idle wakes a parked consumer too.
    queue.wake_idle();
    REQUIRE(pulls_seen() == 2);
    queue.resume(*slot);
    REQUIRE(queue.park(*slot));

    // Pinned by a stream: never woken for queued jobs.
    queue.pin(*slot);
    REQUIRE(push_new(queue, log, 4) == "queued");
    REQUIRE(pulls_seen() == 2);
    queue.resume(*slot);
    REQUIRE(drain_ids(queue) == std::vector<std::uint64_t>{4});

    // close wakes every parked consumer so it sees the queue closing.
    REQUIRE(queue.park(*slot));
    queue.close();
    REQUIRE(pulls_seen() == 3);

    // Another actor's address does not empty the slot; its own does.
    queue.detach(*slot, caf::actor_addr{});
    REQUIRE(queue.consumers() == 1);
    queue.detach(*slot, consumer.address());
    REQUIRE(queue.consumers() == 0);
  }
  caf::anon_send_exit(consumer, caf::exit_reason::user_shutdown);
  scheduler.run();
}

TEST_CASE("a push wakes a parked consumer only when no other consumer is about to look") {
  caf::actor_system_config config;
  config.set("scheduler.policy", caf::atom("testing"));
  caf::actor_system system{config};
  auto& scheduler = dynamic_cast<caf::scheduler::test_coordinator&>(system.scheduler());
  auto worker_pulls = std::make_shared<std::atomic<int>>(0);
  auto parked_pulls = std::make_shared<std::atomic<int>>(0);
  session_actor worker = system.spawn(pull_counter, worker_pulls);
  session_actor sleeper = system.spawn(pull_counter, parked_pulls);
  auto parked_woken = [&] {
    scheduler.run();
    return parked_pulls->load();
  };

  AnswerLog log;
  {
    JobQueue queue(8, 2);
    std::optional<std::size_t> working = queue.attach(worker);
    std::optional<std::size_t> parked = queue.attach(sleeper);
    REQUIRE(working.has_value());
    REQUIRE(parked.has_value());
    REQUIRE(queue.park(*parked));

    // Running between jobs: it will pop the job itself, so nobody is woken.
    REQUIRE(push_new(queue, log, 1) == "queued");
    REQUIRE(parked_woken() == 0);
    REQUIRE(drain_ids(queue) == std::vector<std::uint64_t>{1});

    // Busy with a job: the parked consumer is woken for the next one.
    queue.begin_job(*working);
    REQUIRE(push_new(queue, log, 2) == "queued");
    REQUIRE(parked_woken() == 1);
    queue.resume(*parked);
    REQUIRE(drain_ids(queue) == std::vector<std::uint64_t>{2});
    REQUIRE(queue.park(*parked));

    // Answering its job (finishing) counts as about to look again.
    queue.finishing(*working);
    REQUIRE(push_new(queue, log, 3) == "queued");
    REQUIRE(parked_woken() == 1);
    queue.end_job(*working);
    REQUIRE(drain_ids(queue) == std::vector<std::uint64_t>{3});

    // Still occupied after its job (a heal in progress): it stays busy, so a
    // push wakes the parked consumer.
    queue.begin_job(*working);
    queue.end_job(*working, /*still_occupied=*/true);
    REQUIRE(push_new(queue, log, 4) == "queued");
    REQUIRE(parked_woken() == 2);
    queue.resume(*parked);
    REQUIRE(drain_ids(queue) == std::vector<std::uint64_t>{4});
    REQUIRE(queue.park(*parked));

    // A running consumer asking for help with a backlog wakes the parked one.
    queue.resume(*working);
    queue.wake_idle();
    REQUIRE(parked_woken() == 3);
    queue.close();
  }
  caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(sleeper, caf::exit_reason::user_shutdown);
  scheduler.run();
}

// ---- spinning ----

TEST_CASE("spin_pop returns a job pushed from another thread within its spin budget") {
  AnswerLog log;
  JobQueue queue(8, 1, std::chrono::milliseconds(200));
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    std::this_thread::sleep_for(1ms);
    pushed.store(push_new(queue, log, 42) == "queued");
  });
  QueuedJobPtr job = queue.spin_pop();
  producer.join();
  REQUIRE(pushed.load());
  REQUIRE(job != nullptr);
  REQUIRE(job->job.object == 42);
  REQUIRE(queue.depth() == 0);
  job->complete(JobResult{});
}

TEST_CASE("spin_pop gives up with nothing after its budget, at once with no budget or when closed") {
  {
    JobQueue queue(8, 1, std::chrono::milliseconds(5));
    auto started = std::chrono::steady_clock::now();
    REQUIRE(queue.spin_pop() == nullptr);
    REQUIRE(std::chrono::steady_clock::now() - started >= 5ms);
  }
  {
    JobQueue queue(8, 1, std::chrono::microseconds(0));
    AnswerLog log;
    REQUIRE(push_new(queue, log, 1) == "queued");
    REQUIRE(queue.spin_pop() == nullptr);  // no budget: the consumer parks instead
    REQUIRE(queue.depth() == 1);
  }
  {
    JobQueue queue(8, 1, std::chrono::seconds(30));
    queue.close();
    auto started = std::chrono::steady_clock::now();
    REQUIRE(queue.spin_pop() == nullptr);
    REQUIRE(std::chrono::steady_clock::now() - started < 5s);
  }
}

}  // namespace
}  // namespace hsmactor
