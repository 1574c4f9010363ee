#include "actors/process.hpp"

#include <pthread.h>

#include <atomic>

namespace hsmactor {
namespace {

std::atomic<std::uint64_t> g_fork_generation{0};
std::atomic<std::uint64_t> g_last_epoch{0};

void count_fork_in_child() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

// Registered during static initialisation, before any thread of ours exists,
// so no fork can slip between loading the library and counting forks.
const bool g_registered = [] {
  ::pthread_atfork(nullptr, nullptr, count_fork_in_child);
  return true;
}();

}  // namespace

std::uint64_t fork_generation() {
  (void)g_registered;
  return g_fork_generation.load(std::memory_order_relaxed);
}

std::uint64_t next_epoch() { return g_last_epoch.fetch_add(1, std::memory_order_relaxed) + 1; }

}  // namespace hsmactor
