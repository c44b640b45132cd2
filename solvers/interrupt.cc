#include "solvers/interrupt.h"

#include <atomic>
#include <csignal>

namespace diffeoflow {
namespace {

std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal flag must be lock-free");

extern "C" void OnInterrupt(int signal) {
  g_signal.store(signal == 0 ? SIGINT : signal);
  std::signal(signal, SIG_DFL);  // a second Ctrl-C ends the process at once
}

}  // namespace

void InstallInterruptHandler() {
  std::signal(SIGINT, OnInterrupt);
  std::signal(SIGTERM, OnInterrupt);
}

bool InterruptRequested() { return g_signal.load() != 0; }
void RequestInterrupt() { g_signal.store(SIGINT); }
void ClearInterrupt() { g_signal.store(0); }
int InterruptSignal() { return g_signal.load(); }

}  // namespace diffeoflow
