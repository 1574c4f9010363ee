#include "pool/internal/resolve_options.hpp"

#include <string>

#include "actors/job_queue.hpp"
#include "pool/token_uri.hpp"

namespace hsmactor::internal {
namespace {

static_assert(TokenOptions::kMaxQueueLimit <= JobQueue::kMaxLimit &&
                  TokenOptions::kMaxSessions <= JobQueue::kMaxConsumers,
              "a limit open_token accepts must be one the queue honours");

Error invalid(std::string what) {
  return Error::make(Condition::invalid_argument, std::move(what), "open_token");
}

// Overwrites a string that may hold a PIN (a URI's pin-value=).
void wipe(std::string& text) {
  volatile char* bytes = text.data();
  for (std::size_t i = 0; i < text.size(); ++i) bytes[i] = '\0';
  text.clear();
}

}  // namespace

Result<TokenOptions> resolve_options(const TokenOptions& requested) {
  TokenOptions options = requested;
  struct WipeUri {
    std::string& uri;
    ~WipeUri() { wipe(uri); }
  } wipe_uri{options.uri};
  if (!options.uri.empty()) {
    auto parsed = parse_token_uri(options.uri);
    if (!parsed) return parsed.error();
    if (!parsed->label.empty()) options.label = parsed->label;
    if (!parsed->serial.empty()) options.serial = parsed->serial;
    if (!parsed->module_path.empty()) options.module_path = parsed->module_path;
    if (!parsed->pin.empty()) options.pin = parsed->pin;
  }
  if (options.module_path.empty()) {
    return invalid("no module path (option or URI module-path)");
  }
  if (options.max_sessions == 0 || options.max_sessions > TokenOptions::kMaxSessions) {
    return invalid("max_sessions must be 1 to " + std::to_string(TokenOptions::kMaxSessions));
  }
  if (options.queue_limit == 0 || options.queue_limit > TokenOptions::kMaxQueueLimit) {
    return invalid("queue_limit must be 1 to " + std::to_string(TokenOptions::kMaxQueueLimit));
  }
  if (options.default_deadline.count() <= 0 ||
      options.default_deadline > TokenOptions::kMaxDeadline) {
    return invalid("default_deadline must be more than 0 and at most " +
                   std::to_string(TokenOptions::kMaxDeadline.count()) + " hours");
  }
  if (options.coalescing_hold.count() < 0 ||
      options.coalescing_hold > TokenOptions::kMaxCoalescingHold) {
    return invalid("coalescing_hold must be 0 to " +
                   std::to_string(TokenOptions::kMaxCoalescingHold.count()) + " microseconds");
  }
  if (options.login == Login::user && options.pin.empty()) {
    return invalid(
        "no PIN for the user login (an empty TokenOptions::pin; for a token without login "
        "set TokenOptions::login = Login::none)");
  }
  if (options.login == Login::none && !options.pin.empty()) {
    return invalid("a PIN with TokenOptions::login = Login::none");
  }
  // The URI's parts are merged in: no copy of it (or its PIN) leaves here.
  wipe(options.uri);
  return options;
}

}  // namespace hsmactor::internal
