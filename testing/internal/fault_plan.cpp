#include "testing/internal/fault_plan.hpp"

namespace hsmactor::fault {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

/// Returns the next whitespace-separated word of `text` and drops it from it.
std::string_view next_word(std::string_view& text) {
  text = trim(text);
  std::size_t end = 0;
  while (end < text.size() && !is_space(text[end])) ++end;
  std::string_view word = text.substr(0, end);
  text.remove_prefix(end);
  return word;
}

/// Parses one clause ("C_Sign: rv=... after=2") into `plan`; returns the
/// error, empty on success.
std::string parse_clause(std::string_view clause, Plan& plan) {
  const std::size_t colon = clause.find(':');
  if (colon == std::string_view::npos) {
    return "missing ':' after the function name";
  }
  const std::string_view name = trim(clause.substr(0, colon));
  std::optional<Function> function;
  if (name != "*") {
    function = function_from_name(name);
    if (!function) return "unknown function '" + std::string(name) + "'";
  }

  std::optional<CK_RV> rv;
  std::optional<unsigned long> after;
  std::optional<unsigned long> times;
  std::optional<unsigned long> latency_us;
  std::string_view settings = clause.substr(colon + 1);
  for (std::string_view word = next_word(settings); !word.empty();
       word = next_word(settings)) {
    const std::size_t equals = word.find('=');
    if (equals == std::string_view::npos) {
      return "expected key=value, got '" + std::string(word) + "'";
    }
    const std::string_view key = word.substr(0, equals);
    const std::string_view value = word.substr(equals + 1);
    if (key == "rv") {
      rv = parse_rv(value);
      if (!rv) return "unknown return value '" + std::string(value) + "'";
      continue;
    }
    std::optional<unsigned long>* target = nullptr;
    if (key == "after") target = &after;
    if (key == "times") target = &times;
    if (key == "latency_us") target = &latency_us;
    if (target == nullptr) return "unknown setting '" + std::string(key) + "'";
    *target = parse_number(value);
    if (!*target) {
      return "'" + std::string(key) + "' needs a number, got '" +
             std::string(value) + "'";
    }
  }

  if (!rv && !latency_us) return "a clause needs rv= or latency_us=";
  if (!rv && (after || times)) return "after= and times= need rv=";
  if (rv && !function) return "rv= needs a function name, not '*'";
  if (rv) {
    plan.rules.push_back(
        PlanRule{*function, *rv, after.value_or(0), times.value_or(1)});
  }
  if (latency_us) plan.latencies.push_back(PlanLatency{function, *latency_us});
  return {};
}

}  // namespace

PlanParse parse_plan(std::string_view text) {
  PlanParse parsed;
  while (!text.empty()) {
    const std::size_t semicolon = text.find(';');
    const std::string_view clause = trim(text.substr(0, semicolon));
    text.remove_prefix(semicolon == std::string_view::npos ? text.size()
                                                           : semicolon + 1);
    if (clause.empty()) continue;
    std::string error = parse_clause(clause, parsed.plan);
    if (!error.empty()) {
      parsed.plan = Plan{};
      parsed.error = "in '" + std::string(clause) + "': " + error;
      return parsed;
    }
  }
  return parsed;
}

}  // namespace hsmactor::fault
