#include "actors/library_registry.hpp"

#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "actors/library_supervisor.hpp"
#include "actors/process.hpp"

namespace hsmactor {

struct Registry;

struct LibraryEntry {
  Registry* registry = nullptr;
  std::uint64_t fork_generation = 0;
  std::string path;
  // Written by the starting thread before `running` is set; read-only after.
  std::shared_ptr<pkcs11::Module> module;
  std::shared_ptr<Runtime> runtime;
  supervisor_actor supervisor;
  // Why the start failed; written before `started` resolves.
  std::optional<Error> start_error;
  // Resolves when the start is over (check `start_error`).
  std::shared_future<void> started;
  // Guarded by the registry's mutex.
  bool running = false;
  std::size_t users = 0;
};

namespace {

using PathSet = std::set<std::string>;

}  // namespace

struct Registry {
  Registry(std::uint64_t generation, PathSet from_parent)
      : fork_generation(generation), initialized_in_parent(std::move(from_parent)) {
    publish_fork_snapshot();
  }

  /// Copies what a child needs to know into an immutable set, which the
  /// child reads without the mutex (a parent thread may hold it at the fork).
  /// Called under the mutex (or before the registry is shared).
  void publish_fork_snapshot() {
    auto next = std::make_unique<PathSet>(initialized_in_parent);
    next->insert(initialized_by_us.begin(), initialized_by_us.end());
    fork_snapshot.store(next.get(), std::memory_order_release);
    // Only a forked child reads the snapshot, in its own copy of memory, so
    // the one it replaces can go at once.
    snapshot_owner = std::move(next);
  }

  void set_initialized_by_us(const std::string& path, bool ours) {
    const bool known = initialized_by_us.count(path) > 0;
    if (ours == known) return;
    if (ours) {
      initialized_by_us.insert(path);
    } else {
      initialized_by_us.erase(path);
    }
    publish_fork_snapshot();
  }

  bool ours_if_already_initialized(const std::string& path) const {
    return initialized_by_us.count(path) > 0 || initialized_in_parent.count(path) > 0;
  }

  const std::uint64_t fork_generation;
  std::mutex mutex;
  // Modules starting or running.
  std::map<std::string, std::shared_ptr<LibraryEntry>> entries;
  // Modules whose last release is stopping them; resolves when it is done.
  std::map<std::string, std::shared_future<void>> stopping;
  // Modules hsmactor initialised in this process and has not finalised.
  PathSet initialized_by_us;
  // Modules the parent had initialised when it forked this process.
  const PathSet initialized_in_parent;
  std::atomic<const PathSet*> fork_snapshot{nullptr};
  std::unique_ptr<PathSet> snapshot_owner;
};

namespace {

std::atomic<Registry*> g_registry{nullptr};

// Returns this fork generation's registry, building it on first use. Never
// destroyed: leases may be released during static destruction.
Registry& current_registry() {
  const std::uint64_t generation = fork_generation();
  Registry* current = g_registry.load(std::memory_order_acquire);
  while (current == nullptr || current->fork_generation != generation) {
    PathSet inherited;
    if (current != nullptr) {
      if (const PathSet* snapshot = current->fork_snapshot.load(std::memory_order_acquire)) {
        inherited = *snapshot;
      }
    }
    auto* fresh = new Registry(generation, std::move(inherited));
    // The parent's registry is leaked: its entries hold the parent's actors,
    // and its mutex may be held by a thread that does not exist here.
    if (g_registry.compare_exchange_strong(current, fresh, std::memory_order_acq_rel)) {
      return *fresh;
    }
    delete fresh;  // another thread of this process built it first
  }
  return *current;
}

// Stops the supervisor (blocking, with no lock held) and returns whether the
// module is still initialised by us afterwards.
bool stop_supervisor(LibraryEntry& entry) {
  if (entry.runtime->forked()) return false;
  auto stopped = entry.runtime->ask<bool>(entry.supervisor, std::chrono::seconds(60),
                                          stop_atom::value);
  (void)stopped.get();
  auto stats = entry.runtime
                   ->ask<SupervisorStats>(entry.supervisor, std::chrono::seconds(10),
                                          stats_atom::value)
                   .get();
  caf::anon_send_exit(entry.supervisor, caf::exit_reason::user_shutdown);
  return stats && stats->owns_module;
}

void release(const std::shared_ptr<LibraryEntry>& entry) {
  Registry& reg = *entry->registry;
  std::promise<void> stop_done;
  {
    std::lock_guard<std::mutex> lock(reg.mutex);
    if (--entry->users > 0) return;
    reg.entries.erase(entry->path);
    // One stop per path at a time: a new acquisition waits for this marker.
    reg.stopping[entry->path] = stop_done.get_future().share();
  }
  const bool still_ours = stop_supervisor(*entry);
  {
    std::lock_guard<std::mutex> lock(reg.mutex);
    reg.set_initialized_by_us(entry->path, still_ours);
    reg.stopping.erase(entry->path);
  }
  stop_done.set_value();
}

Result<std::shared_ptr<LibraryLease>> start(Registry& reg,
                                            const std::shared_ptr<LibraryEntry>& entry,
                                            std::promise<void>& started,
                                            const SupervisorOptions& options,
                                            std::chrono::nanoseconds timeout) {
  auto fail = [&](Error error) -> Result<std::shared_ptr<LibraryLease>> {
    {
      std::lock_guard<std::mutex> lock(reg.mutex);
      reg.entries.erase(entry->path);
    }
    entry->start_error = error;
    started.set_value();
    return error;
  };
  auto module = pkcs11::Module::load(entry->path);
  if (!module) return fail(module.error());
  entry->module = *module;
  entry->supervisor = spawn_library_supervisor(entry->runtime->system(), entry->module, options);
  auto up = entry->runtime->ask<bool>(entry->supervisor, timeout, start_atom::value).get();
  if (!up) {
    caf::anon_send_exit(entry->supervisor, caf::exit_reason::user_shutdown);
    return fail(up.error().in_operation("acquire_library"));
  }
  auto stats =
      entry->runtime->ask<SupervisorStats>(entry->supervisor, timeout, stats_atom::value).get();
  {
    std::lock_guard<std::mutex> lock(reg.mutex);
    reg.set_initialized_by_us(entry->path, stats && stats->owns_module);
    entry->running = true;
    entry->users = 1;
  }
  started.set_value();
  return std::make_shared<LibraryLease>(entry);
}

}  // namespace

LibraryLease::LibraryLease(std::shared_ptr<LibraryEntry> entry) : entry_(std::move(entry)) {}

LibraryLease::~LibraryLease() {
  if (entry_->fork_generation != fork_generation()) {
    // A lease from before a fork: its registry, actors and runtime are the
    // parent's. Touch nothing, not even the entry's reference counts' last
    // drop (that would release the parent's actor handles here).
    static_cast<void>(new std::shared_ptr<LibraryEntry>(std::move(entry_)));
    return;
  }
  release(entry_);
}

const supervisor_actor& LibraryLease::supervisor() const { return entry_->supervisor; }
const std::shared_ptr<pkcs11::Module>& LibraryLease::module() const { return entry_->module; }
const std::shared_ptr<Runtime>& LibraryLease::runtime() const { return entry_->runtime; }
const std::string& LibraryLease::path() const { return entry_->path; }

Result<std::shared_ptr<LibraryLease>> acquire_library(const std::shared_ptr<Runtime>& runtime,
                                                       const std::string& path,
                                                       std::chrono::nanoseconds timeout,
                                                       FinalizePolicy finalize) {
  if (!runtime || runtime->forked()) {
    return Error::make(Condition::forked, "the runtime belongs to the parent process",
                       "acquire_library");
  }
  auto real_path = pkcs11::Module::real_path(path);
  if (!real_path) return real_path.error();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Registry& reg = current_registry();
  for (;;) {
    std::shared_future<void> wait_for;
    std::shared_ptr<LibraryEntry> waited_entry;
    std::shared_ptr<LibraryEntry> to_start;
    std::promise<void> started;
    SupervisorOptions options;
    {
      std::lock_guard<std::mutex> lock(reg.mutex);
      auto stop = reg.stopping.find(*real_path);
      auto found = reg.entries.find(*real_path);
      if (stop != reg.stopping.end()) {
        wait_for = stop->second;
      } else if (found != reg.entries.end() && found->second->running) {
        found->second->users++;
        return std::make_shared<LibraryLease>(found->second);
      } else if (found != reg.entries.end()) {
        waited_entry = found->second;
        wait_for = waited_entry->started;
      } else {
        to_start = std::make_shared<LibraryEntry>();
        to_start->registry = &reg;
        to_start->fork_generation = reg.fork_generation;
        to_start->path = *real_path;
        to_start->runtime = runtime;
        to_start->started = started.get_future().share();
        reg.entries.emplace(*real_path, to_start);
        options.already_initialized_is_ours = reg.ours_if_already_initialized(*real_path);
        // A child never finalises what it inherited: C_Finalize on the
        // parent's copied state can block forever.
        options.finalize_on_stop = finalize == FinalizePolicy::on_last_release &&
                                   reg.initialized_in_parent.count(*real_path) == 0;
      }
    }
    if (to_start) return start(reg, to_start, started, options, timeout);
    if (wait_for.wait_until(deadline) != std::future_status::ready) {
      return Error::make(Condition::deadline_exceeded,
                         "the module's start or stop by another thread took too long",
                         "acquire_library");
    }
    if (waited_entry && waited_entry->start_error) return *waited_entry->start_error;
  }
}

std::size_t library_users(const std::string& path) {
  auto real_path = pkcs11::Module::real_path(path);
  if (!real_path) return 0;
  Registry& reg = current_registry();
  std::lock_guard<std::mutex> lock(reg.mutex);
  auto found = reg.entries.find(*real_path);
  return found == reg.entries.end() || !found->second->running ? 0 : found->second->users;
}

}  // namespace hsmactor
