// Fuzzes the fault module's plan parser (testing/internal/fault_plan).
//
// Properties, for any text:
// - parse_plan never throws; it either parses (no error) or says why, naming
//   the clause, and then installs nothing;
// - every rule names a real function and the latency entries a real function
//   or '*';
// - a parsed plan, written back in the documented syntax (rv as a CKR_* name
//   where the header has one, else hex), parses to the same plan;
// - function and CKR_* names round-trip, and so do numbers written in decimal
//   and hex.
#include "testing/internal/fault_plan.hpp"

#include <string>

#include "testing/internal/fault_names.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/fuzz_text.hpp"

namespace hsmactor::fault {
namespace {

std::string rv_text(CK_RV rv) {
  const char* name = rv_name(rv);
  return name != nullptr ? std::string(name) : "0x" + fuzz::hex(rv);
}

std::string write(const Plan& plan) {
  std::string text;
  for (const PlanRule& rule : plan.rules) {
    text += std::string(function_name(rule.function)) + ": rv=" + rv_text(rule.rv) +
            " after=" + std::to_string(rule.after) + " times=0x" + fuzz::hex(rule.times) + "; ";
  }
  for (const PlanLatency& latency : plan.latencies) {
    text += std::string(latency.function ? function_name(*latency.function) : "*") +
            ":latency_us=" + std::to_string(latency.us) + ";";
  }
  return text;
}

bool same(const Plan& a, const Plan& b) {
  if (a.rules.size() != b.rules.size() || a.latencies.size() != b.latencies.size()) return false;
  for (std::size_t i = 0; i < a.rules.size(); ++i) {
    const PlanRule& x = a.rules[i];
    const PlanRule& y = b.rules[i];
    if (x.function != y.function || x.rv != y.rv || x.after != y.after || x.times != y.times) {
      return false;
    }
  }
  for (std::size_t i = 0; i < a.latencies.size(); ++i) {
    if (a.latencies[i].function != b.latencies[i].function ||
        a.latencies[i].us != b.latencies[i].us) {
      return false;
    }
  }
  return true;
}

void check_function(Function function) {
  FUZZ_CHECK(index_of(function) < kFunctionCount, "a function is in the list");
  const char* name = function_name(function);
  FUZZ_CHECK(name != nullptr && fuzz::starts_with(name, "C_"), "a function has a C_* name");
  auto back = function_from_name(name);
  FUZZ_CHECK(back && *back == function, "function names round-trip");
}

}  // namespace
}  // namespace hsmactor::fault

HSMACTOR_FUZZ_ENTRY(text) {
  using namespace hsmactor::fault;
  PlanParse parsed = parse_plan(text);
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.plan.rules.empty() && parsed.plan.latencies.empty(),
               "a rejected plan installs nothing");
    FUZZ_CHECK(hsmactor::fuzz::starts_with(parsed.error, "in '"), "the error names the clause");
  } else {
    for (const PlanRule& rule : parsed.plan.rules) {
      check_function(rule.function);
      if (const char* name = rv_name(rule.rv)) {
        auto back = parse_rv(name);
        FUZZ_CHECK(back && *back == rule.rv, "CKR_* names round-trip");
      }
    }
    for (const PlanLatency& latency : parsed.plan.latencies) {
      if (latency.function) check_function(*latency.function);
    }
    const std::string written = write(parsed.plan);
    PlanParse again = parse_plan(written);
    FUZZ_CHECK(again.ok(), "a written plan parses");
    FUZZ_CHECK(same(parsed.plan, again.plan), "a written plan parses to the same plan");
  }

  // Any word as a number: decimal and hex agree with each other.
  if (auto number = parse_number(text)) {
    auto decimal = parse_number(std::to_string(*number));
    auto hex = parse_number("0x" + hsmactor::fuzz::hex(*number));
    FUZZ_CHECK(decimal && *decimal == *number, "decimal round-trips");
    FUZZ_CHECK(hex && *hex == *number, "hex round-trips");
    auto rv = parse_rv(text);
    FUZZ_CHECK(rv && *rv == *number, "a number is a return value");
  }
}
