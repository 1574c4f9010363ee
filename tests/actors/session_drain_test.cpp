// How a session actor pulls from its JobQueue when a job is counted but not
// yet visible: it waits without burning the core the producer needs.
#include "actors/session_actor.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <dirent.h>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "actors/job_queue.hpp"
#include "tests/actors/actor_rig.hpp"

namespace hsmactor {

/// Plays a producer that claimed a ring cell and was preempted before it
/// filled it (see JobQueue::push and ring_push).
class JobQueueTestPeer {
 public:
  /// Counts a job and claims its cell, publishing nothing; returns the cell.
  static std::size_t claim_cell(JobQueue& queue) {
    queue.queued_.fetch_add(1);
    return queue.enqueue_pos_.fetch_add(1);
  }
  /// Fills the claimed cell with `job`, as the producer would on resuming.
  static void publish(JobQueue& queue, std::size_t position, QueuedJobPtr job) {
    auto& cell = queue.ring_[position & queue.mask_];
    cell.job = job.release();
    cell.sequence.store(position + 1);
  }
};

namespace {

using namespace std::chrono_literals;
using testing::ActorRig;

/// What the scheduler says about one thread of this process.
struct ThreadTimes {
  /// Nanoseconds on a CPU or waiting for one (runnable).
  std::uint64_t runnable_ns = 0;
  /// Times it gave up the CPU to wait (sleep, block).
  std::uint64_t voluntary_switches = 0;
};

std::map<std::string, ThreadTimes> times_by_thread() {
  std::map<std::string, ThreadTimes> by_thread;
  DIR* tasks = opendir("/proc/self/task");
  REQUIRE(tasks != nullptr);
  while (dirent* entry = readdir(tasks)) {
    std::string tid = entry->d_name;
    if (tid == "." || tid == "..") continue;
    ThreadTimes times;
    std::ifstream schedstat("/proc/self/task/" + tid + "/schedstat");
    std::uint64_t on_cpu = 0, waiting = 0;
    if (!(schedstat >> on_cpu >> waiting)) continue;  // the thread ended
    times.runnable_ns = on_cpu + waiting;
    std::ifstream status("/proc/self/task/" + tid + "/status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) {
        times.voluntary_switches = std::stoull(line.substr(line.find(':') + 1));
      }
    }
    by_thread[tid] = times;
  }
  closedir(tasks);
  return by_thread;
}

/// Returns a job for `queue` whose answer arrives in the returned future.
std::pair<QueuedJobPtr, std::future<Result<JobResult>>> sign_job(const ActorRig& rig,
                                                                 JobQueue& queue) {
  auto answer = std::make_shared<std::promise<Result<JobResult>>>();
  auto future = answer->get_future();
  Job job = rig.ecdsa_job();
  job.deadline_ns = deadline_after(testing::kAnswerBound);
  auto queued = queue.make_job(std::move(job), QueuedJob::Completion([answer](Result<JobResult> r) {
                                 answer->set_value(std::move(r));
                               }));
  return {std::move(queued), std::move(future)};
}

TEST_CASE("a session waits without spinning hot while a producer is stalled mid-push") {
  ActorRig rig("drain");
  rig.start();
  session_actor session = rig.spawn_session();
  // No idle spin: the session goes straight from an empty ring to park().
  auto queue = std::make_shared<JobQueue>(8, 1, 0us);
  auto slot = queue->attach(session);
  REQUIRE(slot.has_value());
  caf::anon_send(session, serve_atom::value, JobSource{queue, *slot, nullptr});

  // One job through, so the session has its PKCS#11 session and is parked.
  auto [first, first_answer] = sign_job(rig, *queue);
  REQUIRE(queue->push(first) == PushOutcome::queued);
  REQUIRE(first_answer.wait_for(testing::kAnswerBound) == std::future_status::ready);
  REQUIRE(first_answer.get().ok());
  std::this_thread::sleep_for(20ms);

  // A producer claims a cell and stalls; a second job lands behind it, so
  // nothing is visible while two are counted. The push wakes the session.
  std::size_t stalled = JobQueueTestPeer::claim_cell(*queue);
  auto [behind, behind_answer] = sign_job(rig, *queue);
  REQUIRE(queue->push(behind) == PushOutcome::queued);

  std::this_thread::sleep_for(20ms);
  auto before = times_by_thread();
  const auto started = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(300ms);
  auto after = times_by_thread();
  const auto wall = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
  // A loop that never waits is runnable the whole stall, however loaded the
  // machine is, and never switches voluntarily; one that backs off sleeps.
  for (const auto& [tid, now] : after) {
    auto then = before.find(tid);
    if (then == before.end()) continue;
    const double runnable_share =
        static_cast<double>(now.runnable_ns - then->second.runnable_ns) / wall;
    const auto sleeps = now.voluntary_switches - then->second.voluntary_switches;
    INFO("thread " << tid << ": runnable " << runnable_share * 100 << "% of the stall, "
                   << sleeps << " voluntary switches");
    CHECK_FALSE((runnable_share > 0.9 && sleeps < 10));
  }

  // The producer resumes: both jobs are served, in order.
  auto [stalled_job, stalled_answer] = sign_job(rig, *queue);
  JobQueueTestPeer::publish(*queue, stalled, std::move(stalled_job));
  REQUIRE(stalled_answer.wait_for(testing::kAnswerBound) == std::future_status::ready);
  REQUIRE(behind_answer.wait_for(testing::kAnswerBound) == std::future_status::ready);
  CHECK(stalled_answer.get().ok());
  CHECK(behind_answer.get().ok());

  queue->close();
  caf::anon_send_exit(session, caf::exit_reason::user_shutdown);
}

}  // namespace
}  // namespace hsmactor
