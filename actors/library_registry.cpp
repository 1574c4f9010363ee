#include "actors/library_registry.hpp"

#include <unistd.h>

#include <map>
#include <mutex>
#include <set>

#include "actors/library_supervisor.hpp"

namespace hsmactor {

struct LibraryEntry {
  std::string path;
  std::shared_ptr<pkcs11::Module> module;
  std::shared_ptr<Runtime> runtime;
  supervisor_actor supervisor;
  std::size_t users = 0;
};

namespace {

struct Registry {
  std::mutex mutex;
  pid_t pid = ::getpid();
  std::map<std::string, std::shared_ptr<LibraryEntry>> entries;
  // Paths whose module this process initialised and has not finalised yet.
  std::set<std::string> initialized_now;
  // Paths the parent process had initialised when it forked us: their
  // "already initialised" state is a copy of the parent's.
  std::set<std::string> initialized_in_parent;
};

// Never destroyed: leases may be released during static destruction.
Registry& registry() {
  static Registry* instance = new Registry();
  return *instance;
}

void forget_parent_state(Registry& reg) {
  if (reg.pid == ::getpid()) return;
  // The entries hold the parent's actors and runtimes; dropping them would
  // touch threads that do not exist in this process. Leak them.
  auto* parent_entries = new std::map<std::string, std::shared_ptr<LibraryEntry>>();
  parent_entries->swap(reg.entries);
  reg.initialized_in_parent.insert(reg.initialized_now.begin(), reg.initialized_now.end());
  reg.initialized_now.clear();
  reg.pid = ::getpid();
}

void stop_supervisor(LibraryEntry& entry) {
  if (entry.runtime->forked()) return;
  auto stopped = entry.runtime->ask<bool>(entry.supervisor, std::chrono::seconds(60),
                                          stop_atom::value);
  (void)stopped.get();
  caf::anon_send_exit(entry.supervisor, caf::exit_reason::user_shutdown);
}

}  // namespace

LibraryLease::LibraryLease(std::shared_ptr<LibraryEntry> entry) : entry_(std::move(entry)) {}

LibraryLease::~LibraryLease() {
  auto& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mutex);
  if (reg.pid != ::getpid()) return;  // a lease from the parent: leave it
  if (--entry_->users > 0) return;
  reg.entries.erase(entry_->path);
  reg.initialized_now.erase(entry_->path);
  // Stopped under the lock, so a new acquisition waits for C_Finalize to end
  // before its own C_Initialize.
  stop_supervisor(*entry_);
}

const supervisor_actor& LibraryLease::supervisor() const { return entry_->supervisor; }
const std::shared_ptr<pkcs11::Module>& LibraryLease::module() const { return entry_->module; }
const std::shared_ptr<Runtime>& LibraryLease::runtime() const { return entry_->runtime; }
const std::string& LibraryLease::path() const { return entry_->path; }

Result<std::shared_ptr<LibraryLease>> acquire_library(const std::shared_ptr<Runtime>& runtime,
                                                       const std::string& path,
                                                       std::chrono::nanoseconds timeout) {
  if (!runtime || runtime->forked()) {
    return Error::make(Condition::forked, "the runtime belongs to the parent process",
                       "acquire_library");
  }
  auto real_path = pkcs11::Module::real_path(path);
  if (!real_path) return real_path.error();
  auto& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mutex);
  forget_parent_state(reg);
  auto found = reg.entries.find(*real_path);
  if (found != reg.entries.end()) {
    found->second->users++;
    return std::make_shared<LibraryLease>(found->second);
  }
  auto module = pkcs11::Module::load(*real_path);
  if (!module) return module.error();
  auto entry = std::make_shared<LibraryEntry>();
  entry->path = *real_path;
  entry->module = *module;
  entry->runtime = runtime;
  SupervisorOptions options;
  options.reinitialize_after_fork = reg.initialized_in_parent.count(*real_path) > 0;
  entry->supervisor = spawn_library_supervisor(runtime->system(), entry->module, options);
  auto started = runtime->ask<bool>(entry->supervisor, timeout, start_atom::value).get();
  if (!started) {
    caf::anon_send_exit(entry->supervisor, caf::exit_reason::user_shutdown);
    return started.error().in_operation("acquire_library");
  }
  auto stats = runtime->ask<SupervisorStats>(entry->supervisor, timeout, stats_atom::value).get();
  reg.initialized_in_parent.erase(*real_path);
  if (stats && stats->owns_module) reg.initialized_now.insert(*real_path);
  entry->users = 1;
  reg.entries.emplace(*real_path, entry);
  return std::make_shared<LibraryLease>(entry);
}

std::size_t library_users(const std::string& path) {
  auto real_path = pkcs11::Module::real_path(path);
  if (!real_path) return 0;
  auto& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mutex);
  if (reg.pid != ::getpid()) return 0;
  auto found = reg.entries.find(*real_path);
  return found == reg.entries.end() ? 0 : found->second->users;
}

}  // namespace hsmactor
