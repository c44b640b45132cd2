// Subcommands of the `diffeoflow` binary register themselves here; apps/main.cc builds the CLI11
// application from the registry. Each subcommand lives in its own apps/cmd_<name>.cc:
//
//   namespace { diffeoflow::app::CommandRegistration reg{"register", "One pairwise registration",
//       [](CLI::App& sub) { /* add options; return the function that runs it */ }}; }
//
// Every subcommand gets the common flags (--quiet, --threads, --seed) from CommonFlags.
#pragma once

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>

#include "solvers/errors.h"

namespace diffeoflow::app {

struct CommonFlags {
  bool quiet = false;
  int threads = 0;  // 0: all cores
  unsigned seed = 1;
  // True when progress lines should be drawn (a terminal on stderr and not --quiet).
  bool ShowProgress() const { return !quiet && isatty(fileno(stderr)) != 0; }
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

// Tests of interruption: with DIFFEOFLOW_TEST_SIGNAL_AFTER=k[:signal] in the environment the
// returned progress callback raises `signal` (default SIGINT) through the installed handler after
// the k-th report; without it, `report` itself.
template <typename Report>
std::function<void(const Report&)> WithTestSignal(std::function<void(const Report&)> report) {
  const char* after = std::getenv("DIFFEOFLOW_TEST_SIGNAL_AFTER");
  if (after == nullptr) return report;
  int count = 0, signal = SIGINT;
  if (std::sscanf(after, "%d:%d", &count, &signal) < 1 || count < 1) {
    throw InputError("DIFFEOFLOW_TEST_SIGNAL_AFTER: expected k[:signal] with k >= 1");
  }
  // Shared, so that copies of the options (one per pyramid level) count together.
  auto seen = std::make_shared<int>(0);
  return [report = std::move(report), seen, count, signal](const Report& r) {
    if (report) report(r);
    if (++*seen == count) std::raise(signal);
  };
}

struct CommandRegistration {
  CommandRegistration(std::string name, std::string description, CommandSetup setup) {
    CommandRegistry().push_back({std::move(name), std::move(description), std::move(setup)});
  }
};

}  // namespace diffeoflow::app
