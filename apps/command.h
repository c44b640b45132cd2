// Subcommands of the `diffeoflow` binary register themselves here; apps/main.cc builds the CLI11
// application from the registry. Each subcommand lives in its own apps/cmd_<name>.cc:
//
//   namespace { diffeoflow::app::CommandRegistration reg{"register", "One pairwise registration",
//       [](CLI::App& sub) { /* add options; return the function that runs it */ }}; }
//
// Every subcommand gets the common flags (--quiet, --threads, --seed) from CommonFlags.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace diffeoflow::app {

struct CommonFlags {
  bool quiet = false;
  int threads = 0;  // 0: all cores
  unsigned seed = 1;
  // True when progress lines should be drawn (a terminal on stderr and not --quiet).
  bool ShowProgress() const;
};

// Setup adds the subcommand's options to `sub` (which already has the common flags bound to
// `common`) and returns the function to run once parsing succeeded. The function returns the
// process exit status. Errors a user causes are thrown as diffeoflow::InputError.
using CommandSetup =
    std::function<std::function<int()>(CLI::App& sub, const CommonFlags& common)>;

struct Command {
  std::string name;
  std::string description;
  CommandSetup setup;
};

std::vector<Command>& CommandRegistry();

struct CommandRegistration {
  CommandRegistration(std::string name, std::string description, CommandSetup setup) {
    CommandRegistry().push_back({std::move(name), std::move(description), std::move(setup)});
  }
};

}  // namespace diffeoflow::app
