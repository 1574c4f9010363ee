// JobCosts: what one session has seen jobs of each kind take, so that it can
// tell cheap jobs, worth taking several at once, from dear ones before it
// runs them (session_actor.cpp, drain). A kind is the operation, mechanism
// and key; a kind never seen, or pushed out of the small table by another,
// counts as dear, so a session only groups jobs it has measured cheap.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>

#include "actors/job.hpp"

namespace hsmactor::internal {

/// How long answers already given may wait for the rest of their group to be
/// handed over (by default; TokenOptions::coalescing_hold sets it per token),
/// and how many jobs a session takes at once at most. 50 µs is a few thread
/// wake-ups on a virtual machine (and what an idle session spins before it
/// parks): grouping jobs cheaper than a wake-up saves wake-ups; a job dearer
/// than the budget (an RSA signature; here, mostly, an ECDSA one) is never
/// grouped. A budget of 0 groups nothing.
struct CoalescingLimits {
  static constexpr std::chrono::nanoseconds kHoldBudget = std::chrono::microseconds(50);
  static constexpr std::size_t kMaxGroup = 16;
};

class JobCosts {
 public:
  using Kind = std::uint64_t;

  /// Costs judged against `hold_budget` (see CoalescingLimits).
  explicit JobCosts(std::chrono::nanoseconds hold_budget = CoalescingLimits::kHoldBudget)
      : hold_budget_(std::max(hold_budget, std::chrono::nanoseconds(0))),
        unknown_(2 * hold_budget_) {}

  /// How long answers may wait for the rest of their group.
  std::chrono::nanoseconds hold_budget() const { return hold_budget_; }

  static Kind kind_of(const Job& job) {
    // Any mix will do that separates operations, mechanisms and keys; 0 is
    // kept for "no entry".
    Kind kind = static_cast<Kind>(job.op) + 1;
    kind = kind * 0x9E3779B97F4A7C15ull ^ static_cast<Kind>(job.mechanism.type);
    kind = kind * 0x9E3779B97F4A7C15ull ^ job.key.handle;
    return kind == 0 ? 1 : kind;
  }

  /// What a job of `kind` is expected to take: the average of the last few
  /// seen, or "dear" (more than the hold budget) if none was.
  std::chrono::nanoseconds expected(Kind kind) const {
    const Entry& entry = entries_[slot_of(kind)];
    if (entry.kind != kind) return unknown_;
    return std::chrono::nanoseconds(entry.average_ns);
  }

  /// Records that a job of `kind` took `took`.
  void record(Kind kind, std::chrono::nanoseconds took) {
    Entry& entry = entries_[slot_of(kind)];
    // Capped: one job stretched by a preemption (milliseconds) must not
    // count a cheap kind as dear for dozens of jobs after it.
    const std::int64_t sample = std::min(took.count(), unknown_.count());
    if (entry.kind != kind) {
      entry.kind = kind;
      entry.average_ns = sample;
      return;
    }
    // An exponential average over about eight jobs: follows a module that
    // slows down (a busy network HSM) within a few jobs.
    entry.average_ns += (sample - entry.average_ns) / 8;
  }

 private:
  static constexpr std::size_t kEntries = 32;

  struct Entry {
    Kind kind = 0;
    std::int64_t average_ns = 0;
  };

  static std::size_t slot_of(Kind kind) {
    return static_cast<std::size_t>((kind ^ (kind >> 32)) % kEntries);
  }

  std::chrono::nanoseconds hold_budget_;
  /// What an unseen kind counts as: dearer than the budget (0 with no budget).
  std::chrono::nanoseconds unknown_;
  std::array<Entry, kEntries> entries_{};
};

}  // namespace hsmactor::internal
