#include "actors/library_registry.hpp"

#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "tests/fault/fault_control.hpp"
#include "tests/support/softhsm_token.hpp"

using namespace hsmactor;

namespace {

struct RegistryRig {
  RegistryRig()
      : fault_path(fault::fault_module_path()),
        token(testing::create_test_token("registry", fault_path)),
        faults(fault_path) {
    faults.reset();
  }
  std::string fault_path;
  testing::TestToken token;
  fault::FaultControl faults;
};

RegistryRig& rig() {
  static RegistryRig instance;
  return instance;
}

}  // namespace

TEST_CASE("16 threads acquiring one module initialise it once; the last release finalises it once") {
  auto& r = rig();
  r.faults.reset_counts();
  auto runtime = Runtime::create();
  std::vector<std::shared_ptr<LibraryLease>> leases(16);
  std::vector<std::string> failures(16);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < 16; ++i) {
      threads.emplace_back([&, i] {
        auto lease = acquire_library(runtime, r.fault_path);
        if (lease) {
          leases[i] = *lease;
        } else {
          failures[i] = lease.error().message();
        }
      });
    }
    for (auto& thread : threads) thread.join();
  }
  for (const auto& failure : failures) CHECK(failure.empty());
  CHECK(r.faults.call_count("C_Initialize") == 1);
  CHECK(library_users(r.fault_path) == 16);
  for (int i = 0; i < 15; ++i) leases[i].reset();
  CHECK(r.faults.call_count("C_Finalize") == 0);
  leases[15].reset();
  CHECK(r.faults.call_count("C_Finalize") == 1);
  CHECK(library_users(r.fault_path) == 0);
}

TEST_CASE("a module another consumer initialised is used and never finalised by us") {
  auto& r = rig();
  auto other = pkcs11::Module::load(r.fault_path);
  REQUIRE(other.ok());
  auto outcome = (*other)->initialize();
  REQUIRE(outcome.ok());
  REQUIRE(*outcome == pkcs11::InitOutcome::initialized);
  auto slot = (*other)->find_token(pkcs11::TokenSelector::by_label(r.token.label));
  REQUIRE(slot.ok());
  auto others_session = (*other)->open_session(*slot);
  REQUIRE(others_session.ok());
  r.faults.reset_counts();
  {
    auto runtime = Runtime::create();
    auto lease = acquire_library(runtime, r.fault_path);
    REQUIRE(lease.ok());
    auto stats = runtime->ask<SupervisorStats>((*lease)->supervisor(), std::chrono::seconds(10),
                                               stats_atom::value)
                     .get();
    REQUIRE(stats.ok());
    CHECK_FALSE(stats->owns_module);
  }
  CHECK(r.faults.call_count("C_Finalize") == 0);
  // The other consumer's session still works after our release.
  auto random = others_session->random(16);
  CHECK(random.ok());
  (void)others_session->close();
  REQUIRE((*other)->finalize().ok());
}

TEST_CASE("two module paths are held independently") {
  auto& r = rig();
  auto runtime = Runtime::create();
  auto through_faults = acquire_library(runtime, r.fault_path);
  REQUIRE(through_faults.ok());
  auto direct = acquire_library(runtime, testing::softhsm2_module_path());
  REQUIRE(direct.ok());
  CHECK((*through_faults)->path() != (*direct)->path());
  CHECK(library_users(r.fault_path) == 1);
  CHECK(library_users(testing::softhsm2_module_path()) == 1);
  direct->reset();
  CHECK(library_users(testing::softhsm2_module_path()) == 0);
  CHECK(library_users(r.fault_path) == 1);
}

TEST_CASE("a missing module is a typed error, not a crash") {
  auto runtime = Runtime::create();
  auto lease = acquire_library(runtime, "/nonexistent/libpkcs11.so");
  REQUIRE_FALSE(lease.ok());
  CHECK(lease.error().condition() == Condition::module_load_failed);
  CHECK(rig().faults.violations() == 0);
}
