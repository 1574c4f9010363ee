// hsmactor-soak: N mixed requests from C caller threads through the fault
// module, with injected stale sessions, token pulls and killed session actors;
// prints what it saw and exits non-zero on any duplicate, hang, tracker
// violation, wrong answer or error the faults do not explain.
//
//   bazel run -c opt //tools/soak:hsmactor-soak -- --requests 1000000
//       --callers 64 --stale-rate 0.01 --pulls 3 --kills 10    (one line)
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>

#include "hsmactor.hpp"
#include "hsmactor_caf.hpp"
#include "testing/fault_control.hpp"
#include "tools/soak/options.hpp"
#include "tools/soak/soak.hpp"
#include "tools/soak/soak_token.hpp"

int main(int argc, char** argv) {
  using namespace hsmactor;
  auto options = soak::parse_options(argc, argv);
  if (!options) {
    std::cerr << options.error().message() << "\n" << soak::usage();
    return 2;
  }
  if (options->help) {
    std::cout << soak::usage();
    return 0;
  }
  try {
    const std::string module =
        options->module.empty() ? fault::fault_module_path() : options->module;
    auto token_files = soak::SoakToken::create(module, options->token_dir);
    fault::FaultControl faults(module);
    std::cout << "module:              " << module << "\n"
              << "token directory:     " << token_files->dir() << "\n"
              << "seed:                " << options->seed << ", stale rate " << options->stale_rate
              << ", " << options->pulls << " pulls, " << options->kills << " kills, window "
              << options->window << ", max_sessions " << options->sessions << ", "
              << options->stream_percent << "% streams\n"
              << std::flush;
    Hsm hsm;
    TokenOptions token_options;
    token_options.module_path = token_files->test_token().module_path;
    token_options.label = token_files->test_token().label;
    token_options.pin = token_files->test_token().user_pin;
    token_options.max_sessions = options->sessions;
    // Room for every outstanding request: overloaded would be a failure.
    token_options.queue_limit = options->callers * options->window + 64;
    // Longer than any fault lasts: deadline_exceeded would be a failure too.
    token_options.default_deadline = std::chrono::seconds(120);
    auto token = hsm.open_token(token_options);
    if (!token) {
      std::cerr << "open_token failed: " << token.error().message() << "\n";
      return 2;
    }
    auto* run = new soak::Soak(*options, *token, faults, *token_files, &actor_system(hsm));
    soak::Report report = run->run();
    report.print(std::cout);
    std::cout << std::flush;
    if (report.hangs != 0 || report.not_sent != 0) {
      // Late answers may still arrive and need the run's state: leave as is.
      std::_Exit(1);
    }
    delete run;
    token->close();
    return report.passed() ? 0 : 1;
  } catch (const std::exception& failure) {
    std::cerr << "hsmactor-soak: " << failure.what() << "\n";
    return 2;
  }
}
