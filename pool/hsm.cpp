#include "pool/hsm.hpp"

#include <algorithm>

#include "actors/library_registry.hpp"
#include "actors/runtime.hpp"
#include "pool/internal/resolve_options.hpp"
#include "pool/internal/token_access.hpp"
#include "pool/internal/token_core.hpp"
#include "pool/token_pool.hpp"

namespace hsmactor {
namespace {

constexpr auto kControlTimeout = std::chrono::seconds(60);

// Returns the pool's sizing: never above the token's own session limit, less
// the session that holds the login.
PoolSettings pool_settings(const TokenOptions& options, CK_SLOT_ID slot,
                           const pkcs11::TokenInfo& info) {
  PoolSettings settings;
  settings.slot = slot;
  settings.min_sessions = std::min(options.min_sessions, options.max_sessions);
  settings.max_sessions = options.max_sessions;
  if (info.max_sessions) {
    std::size_t room = *info.max_sessions > 1 ? *info.max_sessions - 1 : 1;
    settings.max_sessions = std::min(settings.max_sessions, room);
    settings.min_sessions = std::min(settings.min_sessions, settings.max_sessions);
  }
  settings.queue_limit = options.queue_limit;
  settings.default_deadline = options.default_deadline;
  settings.coalescing_hold = options.coalescing_hold;
  return settings;
}

}  // namespace

Hsm::Hsm(const RuntimeOptions& options)
    : runtime_(Runtime::create(options)),
      tokens_(std::make_shared<internal::TokenRegistry>()),
      shutdown_timeout_(std::max(options.shutdown_timeout, std::chrono::milliseconds(1))) {}

Hsm::Hsm(caf::actor_system& system)
    : runtime_(Runtime::borrow(system)),
      tokens_(std::make_shared<internal::TokenRegistry>()),
      shutdown_timeout_(RuntimeOptions().shutdown_timeout) {}

Hsm::~Hsm() {
  if (runtime_->forked()) {
    // Everything here is the parent's (its locks may be held by threads that
    // do not exist in this process): leave it untouched.
    new std::shared_ptr<Runtime>(std::move(runtime_));
    new std::shared_ptr<internal::TokenRegistry>(std::move(tokens_));
    return;
  }
  if (!tokens_->close_all(shutdown_timeout_)) {
    // A close is stuck in a PKCS#11 call: destroying the actor system would
    // wait for it forever, so it is left running.
    new std::shared_ptr<Runtime>(std::move(runtime_));
    return;
  }
  runtime_.reset();
}

Result<Token> Hsm::open_token(const TokenOptions& requested) {
  auto resolved = internal::resolve_options(requested);
  if (!resolved) return resolved.error();
  const TokenOptions& options = *resolved;
  auto lease = acquire_library(runtime_, options.module_path, std::chrono::seconds(30),
                               options.finalize);
  if (!lease) return lease.error().in_operation("open_token");
  auto& module = (*lease)->module();
  pkcs11::TokenSelector selector;
  if (!options.label.empty()) selector.label = options.label;
  if (!options.serial.empty()) selector.serial = options.serial;
  auto slot = module->find_token(selector);
  if (!slot) return slot.error().in_operation("open_token");
  auto info = module->token_info(*slot);
  if (!info) return info.error().in_operation("open_token");

  internal::TokenCore::Parts parts;
  parts.runtime = (*lease)->runtime();
  parts.lease = *lease;
  parts.slot = *slot;
  parts.label = info->label;
  parts.module_path = module->path();
  parts.default_deadline = options.default_deadline;
  parts.executor = options.executor;
  parts.trace = std::make_shared<TraceHub>(options.executor);
  parts.registry = tokens_;

  if (options.login == Login::user) {
    PinBox box{std::make_shared<const Pin>(options.pin)};
    auto logged_in = parts.runtime
                         ->ask<std::uint64_t>((*lease)->supervisor(), kControlTimeout,
                                              login_atom::value, std::uint64_t{*slot}, box)
                         .get();
    if (!logged_in) return logged_in.error().in_operation("open_token");
    parts.logged_in = true;
  }

  PoolSettings settings = pool_settings(options, *slot, *info);
  settings.trace = parts.trace;
  parts.channel = make_pool_channel(settings);
  parts.pool = spawn_token_pool(parts.runtime->system(), (*lease)->supervisor(), settings,
                                parts.channel);
  caf::anon_send(parts.pool, grow_atom::value);

  auto core = std::make_shared<internal::TokenCore>(std::move(parts));
  tokens_->add(core);
  return internal::TokenAccess::make(std::move(core));
}

}  // namespace hsmactor
