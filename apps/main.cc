// The `diffeoflow` command line: one binary, subcommands from the registry (apps/command.h).
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <iostream>
#include <map>
#include <memory>
#include <string>

#include "apps/command.h"
#include "apps/process_workers.h"
#include "solvers/errors.h"

namespace diffeoflow::app {

std::vector<Command>& CommandRegistry() {
  static std::vector<Command> registry;
  return registry;
}

}  // namespace diffeoflow::app

int main(int argc, char** argv) {
  using namespace diffeoflow::app;
  CLI::App app{"diffeoflow: neural ODEs and LDDMM registration on one ODE engine", "diffeoflow"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show the help of every subcommand");

  std::vector<std::unique_ptr<CommonFlags>> flags;
  std::map<CLI::App*, std::function<int()>> runners;
  for (const Command& command : CommandRegistry()) {
    CLI::App* sub = app.add_subcommand(command.name, command.description);
    flags.push_back(std::make_unique<CommonFlags>());
    CommonFlags& common = *flags.back();
    sub->add_flag("--quiet,-q", common.quiet, "No progress output");
    sub->add_option("--threads", common.threads, "Worker threads (0: all cores)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--seed", common.seed, "Random seed");
    runners[sub] = command.setup(*sub, common);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and friends print and succeed; every other parse error is bad input: one line
    // naming the flag, exit status 2, like an InputError from a subcommand.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    std::string message = e.what();
    for (char& c : message) {
      if (c == '\n') c = ' ';
    }
    std::cerr << "diffeoflow: error: " << message << " (see --help)\n";
    return 2;
  }
  // Under mpirun a failing rank stops every rank (apps/process_workers.h): its error line names
  // the rank, and mpirun exits with the same status as the serial program would.
  try {
    for (auto& [sub, run] : runners) {
      if (sub->parsed()) return FinishWorkers(run());
    }
  } catch (const diffeoflow::InputError& e) {
    std::cerr << "diffeoflow: error: " << e.what() << RankNote() << "\n";
    return FailWorkers(2);
  } catch (const diffeoflow::NumericalError& e) {
    std::cerr << "diffeoflow: numerical failure: " << e.what() << RankNote() << "\n";
    return FailWorkers(3);
  } catch (const std::exception& e) {
    std::cerr << "diffeoflow: error: " << e.what() << RankNote() << "\n";
    return FailWorkers(1);
  }
  return 1;
}
