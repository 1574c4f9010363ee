#include "pool/caf_api.hpp"

#include "actors/runtime.hpp"
#include "pool/internal/key_access.hpp"
#include "pool/internal/token_access.hpp"
#include "pool/internal/token_core.hpp"

namespace hsmactor {

namespace internal {
struct HsmAccess {
  static Runtime& runtime(Hsm& hsm) { return *hsm.runtime_; }
};
}  // namespace internal

token_actor actor_handle(const Token& token) {
  const auto& core = internal::TokenAccess::core(token);
  if (!core) return token_actor();
  // pool_actor's interface contains token_actor's: the cast is checked.
  return token_actor(core->pool_if_open());
}

KeyRef key_ref(const Key& key) { return internal::KeyAccess::ref(key); }

caf::actor_system& actor_system(Hsm& hsm) { return internal::HsmAccess::runtime(hsm).system(); }

}  // namespace hsmactor
