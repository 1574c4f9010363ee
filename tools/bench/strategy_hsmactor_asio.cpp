// hsm-asio: callers are chains of Asio handlers on one io_context, run by one
// or a few threads; each chain keeps one request in flight through
// asio_support::async_sign (async_random, async_digest) and starts the next
// from its handler, so the cell's concurrency is the requests in flight.
//
// The handle the chains use delivers its answers through a LoopExecutor on the
// same io_context (Token::with_executor), the set-up the Asio README section
// recommends: answers reach the loop in batches, one post per batch, and the
// handler then runs inline instead of after a second hop.
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>

#include <asio/bind_executor.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include "asio/hsmactor_asio.hpp"
#include "tools/bench/strategy_hsmactor_state.hpp"

namespace hsmactor::bench {
namespace {

/// One chain of handlers: its tally and the diagnostics of its one request in
/// flight (async_* writes the full Error there before the handler runs).
struct AsioChain {
  CallerTally tally;
  Error diagnostics;
};

class HsmAsio final : public Strategy {
 public:
  HsmAsio(HsmactorBench::State& state, std::size_t threads) : state_(state), threads_(threads) {}

  StrategyKind kind() const override { return StrategyKind::hsm_asio; }

  CellResult run(const Workload& workload, int concurrency, const Timing& timing) override {
    Key key = state_.key_for(workload);
    asio::io_context io(static_cast<int>(threads_));
    auto loop = asio_support::make_loop_executor(io.get_executor());
    Token on_loop = state_.token.with_executor(loop);
    HsmactorBench::State::PoolProbe probe(state_.token, state_.breakdown, timing);
    HsmactorBench::State::StallWatch watch(state_.token, timing);

    std::vector<AsioChain> chains(concurrency);
    for (AsioChain& chain : chains) chain.tally.latency.reserve(kReservedSamples);
    MeasureWindow window = MeasureWindow::starting_now(timing);
    Run run{on_loop, key, workload, window, io};
    for (int index = 0; index < concurrency; ++index) {
      asio::post(io, [&run, chain = &chains[index]] { run.issue(*chain); });
    }
    // The handlers keep the io_context busy until every chain has seen the
    // window close and its last answer; then run() returns on every thread.
    std::vector<std::thread> threads;
    threads.reserve(threads_);
    for (std::size_t t = 0; t < threads_; ++t) threads.emplace_back([&io] { io.run(); });
    auto cpu = process_cpu_during(window);
    for (std::thread& thread : threads) thread.join();
    // Nothing may post to the io_context once it is gone.
    loop->detach();

    std::vector<CallerTally> tallies;
    tallies.reserve(chains.size());
    for (AsioChain& chain : chains) tallies.push_back(std::move(chain.tally));
    CellResult cell = fold_cell(kind(), workload.operation, concurrency, window, tallies);
    set_cpu_per_op(cell, cpu);
    asio_support::LoopExecutorStats stats = loop->stats();
    if (stats.wakeups > 0) {
      char per_wakeup[96];
      std::snprintf(per_wakeup, sizeof(per_wakeup), "%zu io thread%s, %.1f answers per wake-up",
                    threads_, threads_ == 1 ? "" : "s",
                    static_cast<double>(stats.posted) / static_cast<double>(stats.wakeups));
      cell.caveat = per_wakeup;
    }
    probe.finish(cell);
    watch.finish(cell);
    return cell;
  }

 private:
  /// What every chain of one cell shares; lives on run()'s stack until the
  /// io_context has run out of work.
  struct Run {
    const Token& token;
    const Key& key;
    const Workload& workload;
    MeasureWindow window;
    asio::io_context& io;

    /// Starts the chain's next request, or ends the chain once the window closed.
    void issue(AsioChain& chain) {
      Clock::time_point started = Clock::now();
      if (!window.open(started)) return;
      auto handler = asio::bind_executor(
          io, [this, &chain, started](std::error_code failure, const Bytes&) {
            if (failure) {
              std::string error = chain.diagnostics.message();
              if (error.empty()) error = failure.message();
              chain.tally.complete(window, started, Clock::now(), &error);
            } else {
              chain.tally.complete(window, started, Clock::now(), nullptr);
            }
            issue(chain);
          });
      switch (workload.operation) {
        case Operation::random:
          asio_support::async_random(token, workload.random_length, chain.diagnostics,
                                     std::move(handler));
          break;
        case Operation::digest:
          asio_support::async_digest(token, workload.mechanism, workload.data,
                                     chain.diagnostics, std::move(handler));
          break;
        default:
          asio_support::async_sign(token, key, workload.mechanism, workload.data,
                                   chain.diagnostics, std::move(handler));
      }
    }
  };

  HsmactorBench::State& state_;
  std::size_t threads_;
};

}  // namespace

std::unique_ptr<Strategy> make_asio_strategy(HsmactorBench::State& state, std::size_t threads) {
  return std::make_unique<HsmAsio>(state, threads == 0 ? 1 : threads);
}

}  // namespace hsmactor::bench
