#include "actors/library_registry.hpp"

#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "actors/process.hpp"

#include "testing/fault_control.hpp"
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

TEST_CASE("16 threads acquiring one module initialise it once; on_last_release finalises it once") {
  auto& r = rig();
  r.faults.reset_counts();
  auto runtime = Runtime::create();
  std::vector<std::shared_ptr<LibraryLease>> leases(16);
  std::vector<std::string> failures(16);
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < 16; ++i) {
      threads.emplace_back([&, i] {
        auto lease = acquire_library(runtime, r.fault_path, std::chrono::seconds(30),
                                     FinalizePolicy::on_last_release);
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

namespace {

// Logs the rig's token in through `lease`'s supervisor, out again, and returns
// the token generation the login reported.
std::uint64_t login_generation(Runtime& runtime, const LibraryLease& lease) {
  auto slot = lease.module()->find_token(pkcs11::TokenSelector::by_label(rig().token.label));
  REQUIRE(slot.ok());
  PinBox box{std::make_shared<const Pin>(rig().token.user_pin)};
  auto generation = runtime
                        .ask<std::uint64_t>(lease.supervisor(), std::chrono::seconds(10),
                                            login_atom::value, std::uint64_t{*slot}, box)
                        .get();
  REQUIRE(generation.ok());
  auto stats = runtime.ask<SupervisorStats>(lease.supervisor(), std::chrono::seconds(10),
                                            stats_atom::value)
                   .get();
  REQUIRE(stats.ok());
  CHECK(stats->generation == *generation);
  auto out = runtime.ask<bool>(lease.supervisor(), std::chrono::seconds(10), logout_atom::value,
                               std::uint64_t{*slot})
                 .get();
  CHECK(out.ok());
  return *generation;
}

}  // namespace

TEST_CASE("a token's generation after its module is released and acquired again is a new one") {
  auto& r = rig();
  auto runtime = Runtime::create();
  std::vector<std::uint64_t> generations;
  for (auto policy : {FinalizePolicy::on_last_release, FinalizePolicy::on_last_release,
                      FinalizePolicy::never, FinalizePolicy::never}) {
    auto lease = acquire_library(runtime, r.fault_path, std::chrono::seconds(30), policy);
    REQUIRE(lease.ok());
    generations.push_back(login_generation(*runtime, **lease));
  }
  // A generation never comes back: a handle cached under the first cannot
  // pass for one of a later initialisation.
  const std::uint64_t unused_since = next_epoch();
  for (std::size_t i = 0; i < generations.size(); ++i) {
    CHECK(generations[i] != 0);
    CHECK(generations[i] < unused_since);
    for (std::size_t j = i + 1; j < generations.size(); ++j)
      CHECK(generations[i] != generations[j]);
  }
  // Left initialised by the `never` rounds; nothing else uses it now.
  auto plain = pkcs11::Module::load(r.fault_path);
  REQUIRE(plain.ok());
  REQUIRE((*plain)->finalize().ok());
}

TEST_CASE("on_last_release finalises: a plain C_Initialize afterwards initialises afresh") {
  auto& r = rig();
  {
    auto runtime = Runtime::create();
    auto lease = acquire_library(runtime, r.fault_path, std::chrono::seconds(30),
                                 FinalizePolicy::on_last_release);
    REQUIRE(lease.ok());
  }
  auto plain = pkcs11::Module::load(r.fault_path);
  REQUIRE(plain.ok());
  auto outcome = (*plain)->initialize();
  REQUIRE(outcome.ok());
  CHECK(*outcome == pkcs11::InitOutcome::initialized);
  REQUIRE((*plain)->finalize().ok());
}

TEST_CASE("under never the module stays initialised and a re-acquisition knows it is ours") {
  auto& r = rig();
  r.faults.reset_counts();
  auto runtime = Runtime::create();
  {
    auto lease = acquire_library(runtime, r.fault_path);  // FinalizePolicy::never
    REQUIRE(lease.ok());
  }
  CHECK(r.faults.call_count("C_Finalize") == 0);
  auto plain = pkcs11::Module::load(r.fault_path);
  REQUIRE(plain.ok());
  auto outcome = (*plain)->initialize();
  REQUIRE(outcome.ok());
  CHECK(*outcome == pkcs11::InitOutcome::already_initialized);
  {
    auto again = acquire_library(runtime, r.fault_path, std::chrono::seconds(30),
                                 FinalizePolicy::on_last_release);
    REQUIRE(again.ok());
    auto stats = runtime->ask<SupervisorStats>((*again)->supervisor(), std::chrono::seconds(10),
                                               stats_atom::value)
                     .get();
    REQUIRE(stats.ok());
    CHECK(stats->owns_module);
  }
  // That acquisition started the module with on_last_release, and it is ours.
  CHECK(r.faults.call_count("C_Finalize") == 1);
  outcome = (*plain)->initialize();
  REQUIRE(outcome.ok());
  CHECK(*outcome == pkcs11::InitOutcome::initialized);
  REQUIRE((*plain)->finalize().ok());
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
