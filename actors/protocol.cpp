#include "actors/protocol.hpp"

#include <algorithm>

namespace hsmactor {
namespace {

// caf::error's category for hsmactor errors; its 8-bit code is the Condition.
constexpr caf::atom_value kErrorCategory = caf::atom("hsmactor");

}  // namespace

caf::error to_caf_error(const Error& error) {
  WireError wire;
  wire.condition = static_cast<std::uint8_t>(error.condition());
  wire.rv = error.rv();
  wire.function = error.function();
  wire.operation = error.operation();
  wire.detail = error.detail();
  wire.category = static_cast<std::uint8_t>(error.category());
  return caf::error(static_cast<std::uint8_t>(error.condition()), kErrorCategory,
                    caf::make_message(std::move(wire)));
}

Error from_caf_error(const caf::error& error) {
  if (error.category() == kErrorCategory && error.context().match_elements<WireError>()) {
    const auto& wire = error.context().get_as<WireError>(0);
    Error result = wire.rv != CKR_OK
                       ? Error::from_rv(wire.rv, wire.function, wire.operation)
                       : Error::make(static_cast<Condition>(wire.condition), wire.detail,
                                     wire.operation);
    if (wire.rv != CKR_OK && static_cast<Condition>(wire.condition) != Condition::pkcs11_error) {
      result = result.as(static_cast<Condition>(wire.condition), wire.detail);
    } else if (wire.rv != CKR_OK && !wire.detail.empty()) {
      result = result.as(Condition::pkcs11_error, wire.detail);
    }
    return result;
  }
  if (error.category() == caf::atom("system")) {
    switch (static_cast<caf::sec>(error.code())) {
      case caf::sec::request_timeout:
        return Error::make(Condition::deadline_exceeded, "no answer before the deadline");
      case caf::sec::request_receiver_down:
        return Error::make(Condition::broken_promise, "the actor serving the request stopped");
      case caf::sec::invalid_argument:
        return Error::make(Condition::shutting_down, "the target actor is gone");
      default:
        break;
    }
  }
  if (error.category() == caf::atom("exit")) {
    return Error::make(Condition::broken_promise, "the actor serving the request exited");
  }
  return Error::make(Condition::internal_error, "unexpected actor error (category " +
                                                    caf::to_string(error.category()) + ")");
}

std::int64_t deadline_after(std::chrono::nanoseconds timeout) {
  // "Forever" in practice. Saturating here, not at INT64_MAX, leaves room for
  // the code that turns a deadline back into a timeout and adds to it.
  constexpr std::chrono::nanoseconds kLongest = std::chrono::hours(24 * 365 * 100);
  auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
      std::chrono::steady_clock::now().time_since_epoch());
  // A negative timeout has passed already; 0 would mean "no deadline".
  auto bounded = std::clamp(timeout, std::chrono::nanoseconds(0), kLongest);
  return (now + bounded).count();
}

std::chrono::nanoseconds time_left(std::int64_t deadline_ns) {
  if (deadline_ns == 0) return std::chrono::hours(24);
  auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
                 .count();
  return std::chrono::nanoseconds(deadline_ns > now ? deadline_ns - now : 0);
}

}  // namespace hsmactor
