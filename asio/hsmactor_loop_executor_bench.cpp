// Measures what the LoopExecutor saves an event loop: one io_context thread
// keeps a window of async_* requests in flight, each completion starting the
// next, with the token's continuations on (a) hsmactor's completion pool,
// which then posts each answer to the loop, or (b) a LoopExecutor on the same
// io_context, which hands answers over in batches and completes inline.
// Cells are interleaved; each prints ops/s, context switches per op and, for
// the LoopExecutor, answers per wake-up.
//
//   bazel run -c opt //asio:hsmactor_loop_executor_bench -- --seconds=2 --window=64 --rounds=2
#include <sys/resource.h>

#include <asio/bind_executor.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "asio/hsmactor_asio.hpp"
#include "tests/support/softhsm_token.hpp"

namespace hsmactor::asio_support {
namespace {

using Clock = std::chrono::steady_clock;

struct Cell {
  double ops_per_second = 0;
  double switches_per_op = 0;
  LoopExecutorStats loop;
};

long context_switches() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_nvcsw + usage.ru_nivcsw;
}

// Keeps `window` requests in flight from one loop thread for `seconds`.
Cell run_cell(const testing::TestToken& test_token, bool loop_executor, bool ecdsa,
              double seconds, int window) {
  asio::io_context io(1);
  std::shared_ptr<LoopExecutor> loop;
  TokenOptions options;
  options.module_path = test_token.module_path;
  options.label = test_token.label;
  options.pin = test_token.user_pin;
  options.max_sessions = 2;
  options.min_sessions = 2;
  if (loop_executor) {
    loop = make_loop_executor(io.get_executor());
    options.executor = loop;
  }
  Hsm hsm;
  auto token = hsm.open_token(options);
  if (!token) {
    std::fprintf(stderr, "open_token: %s\n", token.error().message().c_str());
    std::exit(1);
  }
  Key key = Key::private_key(testing::TestKeyLabels::ec256);
  const Bytes digest(32, 0x5a);
  long completed = 0;
  long failed = 0;
  Clock::time_point end;

  // One request; its completion starts the next until the time is up.
  std::function<void()> next = [&] {
    auto done = asio::bind_executor(io, [&](std::error_code ec, Bytes) {
      ++completed;
      if (ec) ++failed;
      if (Clock::now() < end) next();
    });
    if (ecdsa) {
      async_sign(*token, key, Mechanism::ecdsa(), digest, std::move(done));
    } else {
      async_random(*token, 32, std::move(done));
    }
  };

  // Warm-up: sessions open, key handle cached.
  end = Clock::now() + std::chrono::milliseconds(300);
  for (int i = 0; i < window; ++i) next();
  io.run();
  io.restart();

  completed = 0;
  LoopExecutorStats before = loop ? loop->stats() : LoopExecutorStats{};
  long switches_before = context_switches();
  Clock::time_point start = Clock::now();
  end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (int i = 0; i < window; ++i) next();
  io.run();  // returns when the last in-flight request has completed
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  Cell cell;
  cell.ops_per_second = completed / elapsed;
  cell.switches_per_op = static_cast<double>(context_switches() - switches_before) / completed;
  if (loop) {
    LoopExecutorStats after = loop->stats();
    cell.loop.posted = after.posted - before.posted;
    cell.loop.wakeups = after.wakeups - before.wakeups;
    cell.loop.largest_batch = after.largest_batch;
  }
  if (failed) std::fprintf(stderr, "warning: %ld requests failed\n", failed);
  token->close();
  if (loop) loop->detach();
  return cell;
}

double flag(int argc, char** argv, const char* name, double fallback) {
  std::string prefix = std::string("--") + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
      return std::atof(argv[i] + prefix.size());
    }
  }
  return fallback;
}

}  // namespace
}  // namespace hsmactor::asio_support

int main(int argc, char** argv) {
  using namespace hsmactor;
  using namespace hsmactor::asio_support;
  double seconds = flag(argc, argv, "seconds", 2);
  int rounds = static_cast<int>(flag(argc, argv, "rounds", 2));
  testing::TestToken test_token = testing::create_test_token("loop-bench");
  {
    testing::LoggedInSession session(test_token);
    (void)testing::create_test_keys(session.session());
  }
  std::printf("| op | window | completion | ops/s | context switches/op | answers per wake-up |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (int round = 0; round < rounds; ++round) {
    for (bool ecdsa : {false, true}) {
      for (int window : {1, 16, 256}) {
        for (bool loop : {false, true}) {
          Cell cell = run_cell(test_token, loop, ecdsa, seconds, window);
          std::string per_wake = "-";
          if (loop && cell.loop.wakeups > 0) {
            char text[64];
            std::snprintf(text, sizeof text, "%.1f (largest %llu)",
                          static_cast<double>(cell.loop.posted) / cell.loop.wakeups,
                          static_cast<unsigned long long>(cell.loop.largest_batch));
            per_wake = text;
          }
          std::printf("| %s | %d | %s | %.0f | %.2f | %s |\n", ecdsa ? "ecdsa" : "random", window,
                      loop ? "LoopExecutor" : "completion pool", cell.ops_per_second,
                      cell.switches_per_op, per_wake.c_str());
          std::fflush(stdout);
        }
      }
    }
  }
  return 0;
}
