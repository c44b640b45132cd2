#include "solvers/interrupt.h"

#include <csignal>

#include <gtest/gtest.h>

namespace diffeoflow {
namespace {

TEST(Interrupt, SignalSetsTheFlagAndASecondOneIsNotCaught) {
  ClearInterrupt();
  InstallInterruptHandler();
  EXPECT_FALSE(InterruptRequested());
  std::raise(SIGTERM);
  EXPECT_TRUE(InterruptRequested());
  EXPECT_EQ(InterruptSignal(), SIGTERM);
  EXPECT_EQ(std::signal(SIGTERM, SIG_DFL), SIG_DFL);  // the handler re-armed the default
  std::signal(SIGINT, SIG_DFL);
  ClearInterrupt();
  EXPECT_FALSE(InterruptRequested());
  RequestInterrupt();
  EXPECT_TRUE(InterruptRequested());
  ClearInterrupt();
}

}  // namespace
}  // namespace diffeoflow
