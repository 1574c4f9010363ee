// The network-HSM scenario's module: hsmactor's fault-injecting PKCS#11 module
// (//testing:fault_module, in this binary's runfiles) forwarding to SoftHSM2,
// with a latency added to every C_Sign and a cap on the sessions, which the
// token also reports as ulMaxSessionCount. To the benchmark it looks like a
// partition of a network HSM: each signature costs a round trip, and only so
// many sessions exist.
//
// Usage:
//   auto network = NetworkHsm::install(options.network, kDefaultModulePath);
//   config.module_path = (*network)->module_path();   // then BenchToken::prepare
//   ... run the cells ...
//   (*network)->violations();                         // 0: no session entered twice
#pragma once

#include <memory>
#include <string>

#include "pkcs11/error.hpp"
#include "tools/bench/options.hpp"

namespace hsmactor::fault {
class FaultControl;
}

namespace hsmactor::bench {

class NetworkHsm {
 public:
  /// Finds the fault module ($HSMACTOR_FAULT_MODULE, else the runfiles), points
  /// it at `target_module` ($HSMACTOR_FAULT_TARGET, read at its first call, so
  /// this must run before anything loads it) and installs the settings' C_Sign
  /// latency and session cap. Fails with the places it looked when the module
  /// is missing.
  static Result<std::unique_ptr<NetworkHsm>> install(const NetworkHsmSettings& settings,
                                                     const std::string& target_module);
  ~NetworkHsm();
  NetworkHsm(const NetworkHsm&) = delete;
  NetworkHsm& operator=(const NetworkHsm&) = delete;

  /// Returns the fault module's path: the module every strategy loads.
  const std::string& module_path() const { return module_path_; }
  /// Returns the module the fault module forwards to.
  const std::string& target_path() const { return target_path_; }
  const NetworkHsmSettings& settings() const { return settings_; }

  /// Returns the sessions open through the module now.
  unsigned long open_sessions() const;
  /// Returns how often a thread entered a session another thread was inside
  /// (PKCS#11 forbids it; 0 for every correct client).
  unsigned long violations() const;
  /// Returns the C_Sign calls so far.
  unsigned long sign_calls() const;

 private:
  NetworkHsm() = default;

  std::unique_ptr<fault::FaultControl> faults_;
  std::string module_path_;
  std::string target_path_;
  NetworkHsmSettings settings_;
};

}  // namespace hsmactor::bench
