// What the library reaches inside a Token (not public API).
#pragma once

#include <chrono>
#include <memory>

#include "pool/token.hpp"

namespace hsmactor::internal {

struct TokenAccess {
  static Token make(std::shared_ptr<TokenCore> core) {
    Token token;
    token.core_ = std::move(core);
    return token;
  }
  static const std::shared_ptr<TokenCore>& core(const Token& token) { return token.core_; }
  /// The handle's own deadline (with_deadline); zero: the token's default.
  static std::chrono::nanoseconds deadline(const Token& token) { return token.deadline_; }
};

}  // namespace hsmactor::internal
