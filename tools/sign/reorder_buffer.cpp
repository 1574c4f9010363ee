#include "tools/sign/reorder_buffer.hpp"

#include <utility>

namespace hsmactor::sign {

std::vector<std::string> ReorderBuffer::push(std::uint64_t sequence, std::string line) {
  std::vector<std::string> ready;
  if (!ordered_) {
    ready.push_back(std::move(line));
    ++released_;
    return ready;
  }
  waiting_.emplace(sequence, std::move(line));
  for (auto it = waiting_.begin(); it != waiting_.end() && it->first == next_;
       it = waiting_.erase(it)) {
    ready.push_back(std::move(it->second));
    ++next_;
  }
  released_ += ready.size();
  return ready;
}

}  // namespace hsmactor::sign
