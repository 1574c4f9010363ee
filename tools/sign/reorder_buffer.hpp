// Releases output lines in input order, or at once when order does not matter.
//
// Records are numbered 0, 1, 2, ... as they are read (every record gets a
// number, good or bad, so the numbers are dense). An answer that arrives
// before its predecessors waits here until they have all been released.
//
// Usage:
//   ReorderBuffer buffer(/*ordered=*/true);
//   buffer.push(1, "b");        // returns {} (record 0 is still out)
//   buffer.push(0, "a");        // returns {"a", "b"}
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace hsmactor::sign {

/// Holds early answers until every earlier record has been released.
class ReorderBuffer {
 public:
  /// With `ordered` false every line is released as soon as it is pushed.
  explicit ReorderBuffer(bool ordered) : ordered_(ordered) {}

  /// Accepts the answer for record `sequence`; returns the lines that may now
  /// be written, in the order to write them. Each sequence is pushed once.
  std::vector<std::string> push(std::uint64_t sequence, std::string line);

  /// Returns how many lines wait for an earlier record.
  std::size_t waiting() const { return waiting_.size(); }
  /// Returns how many lines have been released.
  std::uint64_t released() const { return released_; }

 private:
  bool ordered_;
  std::uint64_t next_ = 0;
  std::uint64_t released_ = 0;
  std::map<std::uint64_t, std::string> waiting_;
};

}  // namespace hsmactor::sign
