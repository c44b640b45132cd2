#include "tests/common/allocation_counter.h"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<long> g_allocations{0};
void Count() { g_allocations.fetch_add(1, std::memory_order_relaxed); }
}  // namespace

// The real allocators behind the link's --wrap (tests/CMakeLists.txt).
extern "C" {
void* __real_malloc(std::size_t size);
void* __real_calloc(std::size_t count, std::size_t size);
void* __real_realloc(void* p, std::size_t size);
int __real_posix_memalign(void** p, std::size_t alignment, std::size_t size);
void* __real_aligned_alloc(std::size_t alignment, std::size_t size);

void* __wrap_malloc(std::size_t size) {
  Count();
  return __real_malloc(size);
}
void* __wrap_calloc(std::size_t count, std::size_t size) {
  Count();
  return __real_calloc(count, size);
}
void* __wrap_realloc(void* p, std::size_t size) {
  Count();
  return __real_realloc(p, size);
}
int __wrap_posix_memalign(void** p, std::size_t alignment, std::size_t size) {
  Count();
  return __real_posix_memalign(p, alignment, size);
}
void* __wrap_aligned_alloc(std::size_t alignment, std::size_t size) {
  Count();
  return __real_aligned_alloc(alignment, size);
}
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
  Count();
  if (void* p = __real_malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace diffeoflow::testing {

long AllocationCount() { return g_allocations.load(std::memory_order_relaxed); }

}  // namespace diffeoflow::testing
