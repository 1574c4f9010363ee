#include "testing/fault_control.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>
#include <vector>

namespace hsmactor::fault {
namespace {

// Set by testing/BUILD.bazel: "<repository>/testing/libhsmactor_fault.so",
// with the repository named as the workspace that builds us named it.
constexpr const char* kRunfilesPath = HSMACTOR_FAULT_RUNFILE;

bool is_file(const std::string& path) { return access(path.c_str(), R_OK) == 0; }

std::string executable_path() {
  std::vector<char> buffer(4096);
  const ssize_t n = readlink("/proc/self/exe", buffer.data(), buffer.size());
  if (n <= 0 || static_cast<std::size_t>(n) >= buffer.size()) return {};
  return std::string(buffer.data(), static_cast<std::size_t>(n));
}

/// Resolves `name` in `handle` into `function`; throws if it is missing.
template <typename F>
void resolve(void* handle, const char* name, F& function) {
  function = reinterpret_cast<F>(dlsym(handle, name));
  if (function == nullptr) {
    throw std::runtime_error(std::string("fault module lacks ") + name);
  }
}

}  // namespace

std::string fault_module_path() {
  std::vector<std::string> candidates;
  if (const char* explicit_path = std::getenv("HSMACTOR_FAULT_MODULE")) {
    candidates.push_back(explicit_path);
  }
  for (const char* variable : {"TEST_SRCDIR", "RUNFILES_DIR"}) {
    if (const char* dir = std::getenv(variable)) {
      candidates.push_back(std::string(dir) + "/" + kRunfilesPath);
    }
  }
  const std::string executable = executable_path();
  if (!executable.empty()) {
    candidates.push_back(executable + ".runfiles/" + kRunfilesPath);
  }
  for (const std::string& candidate : candidates) {
    if (is_file(candidate)) return candidate;
  }
  std::string tried;
  for (const std::string& candidate : candidates) tried += "\n  " + candidate;
  throw std::runtime_error(
      "libhsmactor_fault.so not found (add @hsmactor//testing:fault_module "
      "to the test's data, or set HSMACTOR_FAULT_MODULE); tried:" +
      tried);
}

FaultControl::FaultControl(const std::string& path) {
  handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle_ == nullptr) {
    throw std::runtime_error("cannot load fault module " + path + ": " +
                             dlerror());
  }
  try {
    resolve(handle_, "hsmactor_fault_reset", reset_);
    resolve(handle_, "hsmactor_fault_reset_counts", reset_counts_);
    resolve(handle_, "hsmactor_fault_load_plan", load_plan_);
    resolve(handle_, "hsmactor_fault_add_rule", add_rule_);
    resolve(handle_, "hsmactor_fault_invalidate_all_sessions",
            invalidate_all_);
    resolve(handle_, "hsmactor_fault_invalidate_session", invalidate_session_);
    resolve(handle_, "hsmactor_fault_remove_token", remove_token_);
    resolve(handle_, "hsmactor_fault_insert_token", insert_token_);
    resolve(handle_, "hsmactor_fault_set_max_sessions", set_max_sessions_);
    resolve(handle_, "hsmactor_fault_set_latency_us", set_latency_us_);
    resolve(handle_, "hsmactor_fault_call_count", call_count_);
    resolve(handle_, "hsmactor_fault_open_sessions", open_sessions_);
    resolve(handle_, "hsmactor_fault_violations", violations_);
    resolve(handle_, "hsmactor_fault_last_violation", last_violation_);
    resolve(handle_, "hsmactor_fault_max_concurrency", max_concurrency_);
    resolve(handle_, "hsmactor_fault_threads_inside", threads_inside_);
  } catch (...) {
    dlclose(handle_);
    throw;
  }
}

FaultControl::~FaultControl() { dlclose(handle_); }

void FaultControl::reset() const { reset_(); }

void FaultControl::reset_counts() const { reset_counts_(); }

void FaultControl::load_plan(const std::string& plan) const {
  if (load_plan_(plan.c_str()) != 0) {
    throw std::invalid_argument("fault plan does not parse: " + plan);
  }
}

void FaultControl::add_rule(const std::string& function, CK_RV rv,
                            unsigned long after, unsigned long times) const {
  if (add_rule_(function.c_str(), rv, after, times) != 0) {
    throw std::invalid_argument("unknown PKCS#11 function " + function);
  }
}

void FaultControl::invalidate_all_sessions() const { invalidate_all_(); }

void FaultControl::invalidate_session(CK_SESSION_HANDLE session) const {
  invalidate_session_(session);
}

void FaultControl::remove_token() const { remove_token_(); }

void FaultControl::insert_token() const { insert_token_(); }

void FaultControl::set_max_sessions(CK_ULONG max) const {
  set_max_sessions_(max);
}

void FaultControl::set_latency(const std::string& function,
                               std::chrono::microseconds latency) const {
  if (set_latency_us_(function.c_str(),
                      static_cast<unsigned long>(latency.count())) != 0) {
    throw std::invalid_argument("unknown PKCS#11 function " + function);
  }
}

void FaultControl::set_latency_all(std::chrono::microseconds latency) const {
  set_latency_us_(nullptr, static_cast<unsigned long>(latency.count()));
}

unsigned long FaultControl::call_count(const std::string& function) const {
  const unsigned long count = call_count_(function.c_str());
  if (count == ~0UL) {
    throw std::invalid_argument("unknown PKCS#11 function " + function);
  }
  return count;
}

unsigned long FaultControl::open_sessions() const { return open_sessions_(); }

unsigned long FaultControl::violations() const { return violations_(); }

std::string FaultControl::last_violation() const {
  const std::size_t length = last_violation_(nullptr, 0);
  if (length == 0) return {};
  // A longer description may land between the two calls; keep what fits.
  std::vector<char> buffer(length + 256);
  last_violation_(buffer.data(), buffer.size());
  return std::string(buffer.data());
}

unsigned long FaultControl::max_concurrency() const {
  return max_concurrency_();
}

unsigned long FaultControl::threads_inside() const { return threads_inside_(); }

}  // namespace hsmactor::fault
