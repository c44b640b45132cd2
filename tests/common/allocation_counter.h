// Allocations made by the test binary so far. The suites that link tests/common/
// allocation_counter.cc count
//  - every operator new (the global one is replaced: it counts, then calls malloc), and
//  - every malloc, calloc, realloc, posix_memalign and aligned_alloc called from code linked
//    statically into the binary (the diffeoflow libraries, and Eigen's heap storage inlined into
//    them): the link wraps those symbols (-Wl,--wrap), and the wrappers count, then call the real
//    function, so ASan still sees every allocation.
// For DynamicsCheckOptions::allocation_count and other no-allocation tests.
#pragma once

namespace diffeoflow::testing {

long AllocationCount();

}  // namespace diffeoflow::testing
