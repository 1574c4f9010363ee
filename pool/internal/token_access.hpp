// What the library reaches inside a Token (not public API).
#pragma once

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
};

}  // namespace hsmactor::internal
