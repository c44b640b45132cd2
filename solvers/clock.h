// Wall time for the Summaries' wall_seconds, progress reports and time limits: one monotonic
// clock for the whole project (steady_clock: never goes back when the system time is set).
#pragma once

#include <chrono>

namespace diffeoflow {

using SteadyClock = std::chrono::steady_clock;

// Seconds elapsed since `start`.
inline double SecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

}  // namespace diffeoflow
