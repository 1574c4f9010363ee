#include "pool/testing_hooks.hpp"

#include "pool/internal/token_access.hpp"
#include "pool/internal/token_core.hpp"
#include "pool/token_pool.hpp"

namespace hsmactor::testing_hooks {

void kill_one_session(const Token& token) {
  const auto& core = internal::TokenAccess::core(token);
  if (!core) return;
  if (auto pool = core->pool_if_open()) caf::anon_send(pool, kill_atom::value);
}

Future<JobResult> submit(const Token& token, Job job) {
  const auto& core = internal::TokenAccess::core(token);
  if (!core) {
    return make_ready_future<JobResult>(
        Error::make(Condition::invalid_argument, "an empty Token", to_string(job.op)));
  }
  return core->call<JobResult>(std::move(job), std::chrono::nanoseconds(0), nullptr, Key(),
                               [](JobResult& r) -> Result<JobResult> { return std::move(r); });
}

}  // namespace hsmactor::testing_hooks
