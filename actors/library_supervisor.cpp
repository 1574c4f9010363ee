#include "actors/library_supervisor.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <unordered_map>

#include "actors/process.hpp"
#include "actors/session_actor.hpp"
#include "pkcs11/rv.hpp"

namespace hsmactor {
namespace {

using Clock = std::chrono::steady_clock;

struct TokenLogin {
  pkcs11::Session login_session;
  std::shared_ptr<const Pin> pin;
  std::uint64_t users = 0;
  /// A process-unique epoch, never a counter that restarts (see the header).
  std::uint64_t generation = next_epoch();
  /// The token's login was made by our C_Login (not found already there), so
  /// ending it is ours to do.
  bool login_is_ours = false;
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

  TokenLogin& token(CK_SLOT_ID slot) {
    auto& login = tokens[slot];
    stats.generation = std::max(stats.generation, login.generation);
    return login;
  }

  /// Gives `login` a new generation; stats.generation is the newest one.
  void renew_generation(TokenLogin& login) {
    login.generation = next_epoch();
    stats.generation = login.generation;
  }

  Result<void> log_in(TokenLogin& login, CK_SLOT_ID slot, const Pin& pin) {
    (void)login.login_session.close();
    login.login_is_ours = false;
    auto opened = module->open_session(slot);
    if (!opened) return opened.error().in_operation("login");
    auto made = opened->login_made_here(CKU_USER, pin);
    if (!made) return made.error();
    login.login_session = std::move(*opened);
    login.login_is_ours = *made;
    stats.logins++;
    return success();
  }

  /// Ends the token's login if we made it (rule 11), and closes its session.
  void end_login(TokenLogin& login) {
    if (login.login_session.is_open()) {
      if (login.login_is_ours) (void)login.login_session.logout();
      (void)login.login_session.close();
    }
    login.login_is_ours = false;
    login.pin.reset();
  }

  void finish_stop() {
    for (auto& [slot, login] : tokens) {
      end_login(login);
      login.users = 0;
    }
    if (owns_module && options.finalize_on_stop) {
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
  // In a child forked from a parent that had initialised the module, SoftHSM2
  // 2.6.1 answers CKR_CRYPTOKI_ALREADY_INITIALIZED (probed: it keeps the
  // parent's copied state and has no fork detection), and C_Finalize there
  // can block forever on a mutex a parent thread held at the fork. So a
  // child only calls C_Initialize; the registry tells us when that answer
  // means our own (the parent's) initialisation.
  auto outcome = st.module->initialize();
  if (!outcome) return outcome.error();
  st.owns_module = *outcome == pkcs11::InitOutcome::initialized ||
                   st.options.already_initialized_is_ours;
  st.started = true;
  st.stats.owns_module = st.owns_module;
  return success();
}

// What a heal finds before it changes anything.
enum class TokenHealth { sound, module_not_initialized, token_unusable, login_lost };

struct HealthCheck {
  TokenHealth health = TokenHealth::sound;
  std::optional<Error> error;  // for token_unusable
};

// Looks at the actual state: heals are rare, so a C_GetTokenInfo and a
// C_GetSessionInfo are cheap next to trusting a generation that may be older
// than the last loss of the login.
HealthCheck check_token(SupervisorState& st, TokenLogin& login, CK_SLOT_ID slot) {
  auto info = st.module->token_info(slot);
  if (!info) {
    if (info.error().rv() == CKR_CRYPTOKI_NOT_INITIALIZED) {
      return {TokenHealth::module_not_initialized, std::nullopt};
    }
    return {TokenHealth::token_unusable, info.error()};
  }
  if (login.pin) {
    if (!login.login_session.is_open()) return {TokenHealth::login_lost, std::nullopt};
    auto session_info = login.login_session.info();
    if (!session_info) {
      if (session_info.error().rv() == CKR_CRYPTOKI_NOT_INITIALIZED) {
        return {TokenHealth::module_not_initialized, std::nullopt};
      }
      return {TokenHealth::login_lost, std::nullopt};
    }
    if (!session_info->logged_in()) return {TokenHealth::login_lost, std::nullopt};
  }
  return {};
}

Result<std::uint64_t> heal(SupervisorState& st, CK_SLOT_ID slot, CK_RV rv,
                           std::uint64_t seen_generation) {
  auto& login = st.token(slot);
  auto check = check_token(st, login, slot);
  // Healed already, and still sound: the session only needs the new generation.
  if (check.health == TokenHealth::sound && login.generation != seen_generation) {
    return login.generation;
  }
  if (login.last_failure && Clock::now() - login.last_failure_at < st.options.heal_backoff) {
    return *login.last_failure;
  }
  auto record_failure = [&](const Error& error) -> Result<std::uint64_t> {
    st.stats.heal_failures++;
    login.last_failure = error.in_operation("heal");
    login.last_failure_at = Clock::now();
    return *login.last_failure;
  };
  if (check.health == TokenHealth::module_not_initialized ||
      (rv == CKR_CRYPTOKI_NOT_INITIALIZED && check.health != TokenHealth::sound)) {
    // Someone finalised the module under us: every handle is gone.
    auto outcome = st.module->initialize();
    if (!outcome) return record_failure(outcome.error());
    if (*outcome == pkcs11::InitOutcome::initialized) st.owns_module = true;
    st.stats.reinitializations++;
    for (auto& [other_slot, other] : st.tokens) {
      // The handle died with the finalisation, and so did the login.
      other.login_session.abandon();
      other.login_is_ours = false;
      st.renew_generation(other);
    }
    check = check_token(st, login, slot);
  }
  if (check.health == TokenHealth::token_unusable) return record_failure(*check.error);
  if (check.health == TokenHealth::module_not_initialized) {
    return record_failure(Error::from_rv(CKR_CRYPTOKI_NOT_INITIALIZED, "C_GetTokenInfo"));
  }
  if (check.health == TokenHealth::login_lost) {
    auto done = st.log_in(login, slot, *login.pin);
    if (!done) return record_failure(done.error());
  }
  login.last_failure.reset();
  st.renew_generation(login);
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
        // The last user of the token: only now may the login end.
        if (--login.users == 0) self->state.end_login(login);
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
