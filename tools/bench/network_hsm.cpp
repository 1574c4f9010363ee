#include "tools/bench/network_hsm.hpp"

#include <stdlib.h>

#include <stdexcept>

#include "testing/fault_control.hpp"

namespace hsmactor::bench {

Result<std::unique_ptr<NetworkHsm>> NetworkHsm::install(const NetworkHsmSettings& settings,
                                                        const std::string& target_module) {
  std::unique_ptr<NetworkHsm> network(new NetworkHsm());
  network->settings_ = settings;
  network->target_path_ = target_module;
  try {
    network->module_path_ = fault::fault_module_path();
    // Read by the fault module when it first forwards a call.
    ::setenv("HSMACTOR_FAULT_TARGET", target_module.c_str(), 1);
    network->faults_ = std::make_unique<fault::FaultControl>(network->module_path_);
    network->faults_->reset();
    network->faults_->set_max_sessions(static_cast<CK_ULONG>(settings.max_sessions));
    network->faults_->set_latency("C_Sign", settings.sign_latency);
  } catch (const std::exception& failure) {
    return Error::make(Condition::invalid_argument,
                       std::string("network-hsm: ") + failure.what(), "network_hsm");
  }
  return network;
}

NetworkHsm::~NetworkHsm() = default;

unsigned long NetworkHsm::open_sessions() const { return faults_->open_sessions(); }

unsigned long NetworkHsm::violations() const { return faults_->violations(); }

unsigned long NetworkHsm::sign_calls() const { return faults_->call_count("C_Sign"); }

}  // namespace hsmactor::bench
