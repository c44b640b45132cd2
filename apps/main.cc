// The `diffeoflow` command line: one binary, subcommands from the registry (apps/command.h).
#include <unistd.h>

#include <cstdio>
#include <exception>
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

namespace {

// One error line on stderr in one write(2): under mpirun the ranks' stderr and mpirun's own abort
// banner share a pipe, and a line written in pieces could be split by the banner (lines under
// PIPE_BUF bytes are written whole).
void ErrorLine(const std::string& line) {
  const std::string text = line + "\n";
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(STDERR_FILENO, text.data() + done, text.size() - done);
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

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
    ErrorLine("diffeoflow: error: " + message + " (see --help)");
    return 2;
  }
  // Under mpirun a failing rank stops every rank (apps/process_workers.h): its error line names
  // the rank, and mpirun exits with the same status as the serial program would.
  try {
    for (auto& [sub, run] : runners) {
      if (sub->parsed()) return FinishWorkers(run());
    }
  } catch (const diffeoflow::InputError& e) {
    ErrorLine("diffeoflow: error: " + std::string(e.what()) + RankNote());
    return FailWorkers(2);
  } catch (const diffeoflow::NumericalError& e) {
    ErrorLine("diffeoflow: numerical failure: " + std::string(e.what()) + RankNote());
    return FailWorkers(3);
  } catch (const std::exception& e) {
    ErrorLine("diffeoflow: error: " + std::string(e.what()) + RankNote());
    return FailWorkers(1);
  }
  return 1;
}
