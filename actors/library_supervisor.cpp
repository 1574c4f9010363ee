#include "actors/library_supervisor.hpp"

#include <map>
#include <optional>
#include <unordered_map>

#include "actors/session_actor.hpp"
#include "pkcs11/rv.hpp"

namespace hsmactor {
namespace {

using Clock = std::chrono::steady_clock;

struct TokenLogin {
  pkcs11::Session login_session;
  std::shared_ptr<const Pin> pin;
  std::uint64_t users = 0;
  std::uint64_t generation = 1;
  std::optional<Error> last_failure;
  Clock::time_point last_failure_at;
};

struct SupervisorState {
  std::shared_ptr<pkcs11::Module> module;
  SupervisorOptions options;
  bool started = false;
  bool owns_module = false;
  bool stopping = false;
  std::map<CK_SLOT_ID, TokenLogin> tokens;
  std::unordered_map<caf::actor_addr, session_actor> sessions;
  std::vector<caf::typed_response_promise<bool>> stop_promises;
  SupervisorStats stats;
  const char* name = "hsmactor.supervisor";

  TokenLogin& token(CK_SLOT_ID slot) { return tokens[slot]; }

  Result<void> log_in(TokenLogin& login, CK_SLOT_ID slot, const Pin& pin) {
    (void)login.login_session.close();
    auto opened = module->open_session(slot);
    if (!opened) return opened.error().in_operation("login");
    auto done = opened->login(CKU_USER, pin);
    if (!done) return done.error();
    login.login_session = std::move(*opened);
    stats.logins++;
    return success();
  }

  void finish_stop() {
    for (auto& [slot, login] : tokens) {
      if (login.login_session.is_open()) {
        (void)login.login_session.logout();
        (void)login.login_session.close();
      }
      login.pin.reset();
      login.users = 0;
    }
    if (owns_module) {
      (void)module->finalize();
      owns_module = false;
    }
    started = false;
    for (auto& promise : stop_promises) promise.deliver(true);
    stop_promises.clear();
  }
};

using supervisor_pointer = supervisor_actor::stateful_pointer<SupervisorState>;

Result<void> start_module(SupervisorState& st) {
  auto outcome = st.module->initialize();
  if (!outcome) return outcome.error();
  if (*outcome == pkcs11::InitOutcome::already_initialized && st.options.reinitialize_after_fork) {
    // What looks initialised is the parent's state, copied by fork(): drop it.
    (void)st.module->finalize();
    outcome = st.module->initialize();
    if (!outcome) return outcome.error();
  }
  st.owns_module = *outcome == pkcs11::InitOutcome::initialized;
  st.started = true;
  st.stats.owns_module = st.owns_module;
  return success();
}

Result<std::uint64_t> heal(SupervisorState& st, CK_SLOT_ID slot, CK_RV rv,
                           std::uint64_t seen_generation) {
  auto& login = st.token(slot);
  if (login.generation > seen_generation) return login.generation;  // healed already
  if (login.last_failure && Clock::now() - login.last_failure_at < st.options.heal_backoff) {
    return *login.last_failure;
  }
  auto record_failure = [&](const Error& error) -> Result<std::uint64_t> {
    st.stats.heal_failures++;
    login.last_failure = error.in_operation("heal");
    login.last_failure_at = Clock::now();
    return *login.last_failure;
  };
  auto info = st.module->token_info(slot);
  if (rv == CKR_CRYPTOKI_NOT_INITIALIZED ||
      (!info && info.error().rv() == CKR_CRYPTOKI_NOT_INITIALIZED)) {
    // Someone finalised the module under us: every handle is gone.
    auto outcome = st.module->initialize();
    if (!outcome) return record_failure(outcome.error());
    if (*outcome == pkcs11::InitOutcome::initialized) st.owns_module = true;
    st.stats.reinitializations++;
    for (auto& [other_slot, other] : st.tokens) {
      other.login_session.abandon();
      other.generation++;
    }
    info = st.module->token_info(slot);
  }
  if (!info) return record_failure(info.error());
  if (login.pin) {
    bool logged_in = false;
    if (login.login_session.is_open()) {
      auto session_info = login.login_session.info();
      logged_in = session_info && session_info->logged_in();
    }
    if (!logged_in) {
      auto done = st.log_in(login, slot, *login.pin);
      if (!done) return record_failure(done.error());
    }
  }
  login.last_failure.reset();
  login.generation++;
  st.stats.heals++;
  return login.generation;
}

supervisor_actor::behavior_type supervisor_impl(supervisor_pointer self,
                                                std::shared_ptr<pkcs11::Module> module,
                                                SupervisorOptions options) {
  self->state.module = std::move(module);
  self->state.options = options;
  self->set_down_handler([self](caf::down_msg& down) {
    auto& st = self->state;
    st.sessions.erase(down.source);
    st.stats.sessions_alive = st.sessions.size();
    if (st.stopping && st.sessions.empty()) st.finish_stop();
  });
  return {
      [self](start_atom) -> caf::result<bool> {
        auto& st = self->state;
        if (st.started) return true;
        st.stopping = false;
        auto started = start_module(st);
        if (!started) return to_caf_error(started.error());
        return true;
      },
      [self](login_atom, std::uint64_t slot, PinBox& box) -> caf::result<std::uint64_t> {
        auto& st = self->state;
        if (!box.pin) {
          return to_caf_error(Error::make(Condition::invalid_argument, "no PIN given", "login"));
        }
        auto& login = st.token(slot);
        if (login.users > 0 && login.pin) {
          // The token is logged in already, so C_Login would accept any PIN;
          // compare with the one that worked instead.
          if (!login.pin->equals(*box.pin)) {
            return to_caf_error(Error::from_rv(CKR_PIN_INCORRECT, "C_Login", "login")
                                    .as(Condition::pkcs11_error,
                                        "not the PIN the token is logged in with"));
          }
          login.users++;
          return login.generation;
        }
        auto done = st.log_in(login, slot, *box.pin);
        if (!done) return to_caf_error(done.error());
        login.pin = box.pin;
        login.users = 1;
        return login.generation;
      },
      [self](logout_atom, std::uint64_t slot) -> bool {
        auto& login = self->state.token(slot);
        if (login.users == 0) return false;
        if (--login.users == 0) {
          // The last user of the token: only now may the login end.
          (void)login.login_session.logout();
          (void)login.login_session.close();
          login.pin.reset();
        }
        return true;
      },
      [self](heal_atom, std::uint64_t slot, std::uint64_t rv,
             std::uint64_t generation) -> caf::result<std::uint64_t> {
        auto healed = heal(self->state, slot, rv, generation);
        if (!healed) return to_caf_error(healed.error());
        return *healed;
      },
      [self](spawn_atom, std::uint64_t slot) -> caf::result<session_actor> {
        auto& st = self->state;
        if (st.stopping || !st.started) {
          return to_caf_error(Error::make(Condition::shutting_down,
                                          "the module is not running", "open_session"));
        }
        auto& login = st.token(slot);
        auto session = spawn_session_actor(self, st.module, self, slot, login.generation,
                                           login.pin != nullptr);
        st.sessions.emplace(session.address(), session);
        st.stats.sessions_spawned++;
        st.stats.sessions_alive = st.sessions.size();
        return session;
      },
      [self](stop_atom) -> caf::result<bool> {
        auto& st = self->state;
        auto promise = self->make_response_promise<bool>();
        st.stop_promises.push_back(promise);
        st.stopping = true;
        if (st.sessions.empty()) {
          st.finish_stop();
        } else {
          for (auto& [address, session] : st.sessions) {
            self->send_exit(session, caf::exit_reason::user_shutdown);
          }
        }
        return promise;
      },
      [self](stats_atom) -> SupervisorStats {
        auto& st = self->state;
        SupervisorStats stats = st.stats;
        stats.owns_module = st.owns_module;
        stats.sessions_alive = st.sessions.size();
        return stats;
      },
  };
}

}  // namespace

supervisor_actor spawn_library_supervisor(caf::actor_system& system,
                                          std::shared_ptr<pkcs11::Module> module,
                                          SupervisorOptions options) {
  return system.spawn<caf::detached>(supervisor_impl, std::move(module), options);
}

}  // namespace hsmactor
