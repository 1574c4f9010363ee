#include "asio/hsmactor_asio_fixture.hpp"

#include <stdexcept>
#include <utility>

namespace hsmactor::testing {
namespace {

AsioTestToken make_asio_test_token() {
  AsioTestToken made;
  made.token = create_test_token("asio-test");
  LoggedInSession session(made.token);
  made.keys = create_test_keys(session.session());
  auto ec = session.session().export_public_key(made.keys.ec256.public_key);
  if (!ec) throw std::runtime_error("cannot export the EC test key: " + ec.error().message());
  made.ec256_public = std::move(*ec);
  return made;
}

}  // namespace

const AsioTestToken& asio_test_token() {
  static const AsioTestToken instance = make_asio_test_token();
  return instance;
}

Token open_test_token(Hsm& hsm, std::shared_ptr<Executor> executor, std::size_t max_sessions) {
  const AsioTestToken& test_token = asio_test_token();
  TokenOptions options;
  options.module_path = test_token.token.module_path;
  options.label = test_token.token.label;
  options.pin = test_token.token.user_pin;
  options.max_sessions = max_sessions;
  // Above the largest burst a test sends at once: these tests are not about
  // backpressure (overloaded), which the pool tests cover.
  options.queue_limit = 8192;
  options.executor = std::move(executor);
  auto token = hsm.open_token(options);
  if (!token) throw std::runtime_error("open_token failed: " + token.error().message());
  return *token;
}

void GateExecutor::post(Task task) noexcept {
  Executor* target = nullptr;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    target = target_;
    if (target == nullptr) held_.push_back(std::move(task));
  }
  if (target != nullptr) {
    target->post(std::move(task));
    return;
  }
  arrived_.notify_all();
}

void GateExecutor::wait_for(std::size_t count) {
  std::unique_lock<std::mutex> lock(mutex_);
  arrived_.wait(lock, [&] { return held_.size() >= count; });
}

void GateExecutor::release(Executor& target) {
  std::vector<Task> held;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    held.swap(held_);
    target_ = &target;
  }
  for (Task& task : held) target.post(std::move(task));
}

}  // namespace hsmactor::testing
