// Parser for fault plans: "C_Sign: rv=CKR_DEVICE_REMOVED after=2 times=1;
// C_Login: rv=CKR_PIN_INCORRECT". The grammar is documented in
// fault_control.h; this file only turns text into values.
//
// Usage:
//   PlanParse parsed = parse_plan(getenv("HSMACTOR_FAULT_PLAN"));
//   if (!parsed.ok()) report(parsed.error);
//   for (const PlanRule& rule : parsed.plan.rules) install(rule);
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pkcs11/cryptoki.hpp"
#include "testing/internal/fault_names.hpp"

namespace hsmactor::fault {

/// "Return `rv` from `function` on calls after+1 ... after+times."
struct PlanRule {
  Function function;
  CK_RV rv;
  unsigned long after = 0;
  unsigned long times = 1;  // 0 = forever
};

/// "Sleep `us` microseconds in `function` (nullopt = every function)."
struct PlanLatency {
  std::optional<Function> function;
  unsigned long us = 0;
};

/// Everything one plan asks for, in the order written.
struct Plan {
  std::vector<PlanRule> rules;
  std::vector<PlanLatency> latencies;
};

/// A parsed plan, or why the text is not one.
struct PlanParse {
  Plan plan;
  std::string error;  // empty when the text parsed

  bool ok() const { return error.empty(); }
};

/// Returns the plan written in `text`; an empty text is an empty plan.
PlanParse parse_plan(std::string_view text);

}  // namespace hsmactor::fault
