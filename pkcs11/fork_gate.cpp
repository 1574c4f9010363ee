#include "pkcs11/fork_gate.hpp"

#include <pthread.h>
#include <time.h>

#include <atomic>

namespace hsmactor::pkcs11 {
namespace {

// Plain atomics, no mutex or condition variable: the child resets them and
// never waits on anything a vanished parent thread could have held.
std::atomic<unsigned long> g_calls_inside{0};
std::atomic<unsigned long> g_forks_waiting{0};

void pause_briefly() {
  const timespec twenty_microseconds{0, 20000};
  ::nanosleep(&twenty_microseconds, nullptr);
}

void before_fork() {
  g_forks_waiting.fetch_add(1);
  while (g_calls_inside.load() != 0) pause_briefly();
}

void after_fork_in_parent() { g_forks_waiting.fetch_sub(1); }

// The threads that were inside or waiting do not exist in the child.
void after_fork_in_child() {
  g_calls_inside.store(0);
  g_forks_waiting.store(0);
}

// Registered during static initialisation, before any call can be made.
const bool g_registered = [] {
  ::pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
  return true;
}();

}  // namespace

ForkGateScope::ForkGateScope() {
  (void)g_registered;
  for (;;) {
    while (g_forks_waiting.load() != 0) pause_briefly();
    g_calls_inside.fetch_add(1);
    // Sequentially consistent with before_fork: either it sees this call, or
    // this call sees the fork and steps back.
    if (g_forks_waiting.load() == 0) return;
    g_calls_inside.fetch_sub(1);
  }
}

ForkGateScope::~ForkGateScope() { g_calls_inside.fetch_sub(1); }

}  // namespace hsmactor::pkcs11
