#include "solvers/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace diffeoflow {
namespace {

// Every index of [0, n) is visited exactly once, by the range the documented split gives it, for
// thread counts below, equal to and above n.
TEST(ThreadPool, RangesCoverEveryIndexOnceWithTheDocumentedSplit) {
  for (const int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    ASSERT_EQ(pool.threads(), threads);
    for (const std::ptrdiff_t n : {0, 1, 4, 1000, 1001}) {
      std::vector<int> owner(static_cast<std::size_t>(n), -1);
      std::vector<int> visits(static_cast<std::size_t>(n), 0);
      pool.ForRanges(n, [&](std::ptrdiff_t begin, std::ptrdiff_t end, int range) {
        EXPECT_EQ(begin, n * range / threads);
        EXPECT_EQ(end, n * (range + 1) / threads);
        for (std::ptrdiff_t i = begin; i < end; ++i) {
          ++visits[static_cast<std::size_t>(i)];
          owner[static_cast<std::size_t>(i)] = range;
        }
      });
      for (std::ptrdiff_t i = 0; i < n; ++i) {
        EXPECT_EQ(visits[static_cast<std::size_t>(i)], 1) << threads << " " << n << " " << i;
      }
    }
  }
}

// Many runs in a row (the hand-over while the workers still watch for work) and runs after a
// pause longer than the watch (workers asleep on the condition variable) each call job(i) once
// for every i, on distinct threads, and return only after all calls finished.
TEST(ThreadPool, RunsBackToBackAndAfterTheWorkersSlept) {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> calls(3);
  for (int round = 0; round < 2000; ++round) {
    if (round % 500 == 499) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    std::vector<std::thread::id> ids(3);
    pool.Run([&](int i) {
      ids[static_cast<std::size_t>(i)] = std::this_thread::get_id();
      calls[static_cast<std::size_t>(i)].fetch_add(1);
    });
    EXPECT_EQ(ids[0], std::this_thread::get_id());
    EXPECT_NE(ids[1], ids[0]);
    EXPECT_NE(ids[2], ids[0]);
    EXPECT_NE(ids[1], ids[2]);
    for (int i = 0; i < 3; ++i) ASSERT_EQ(calls[static_cast<std::size_t>(i)].load(), round + 1);
  }
}

// An exception in a worker's share or in the caller's reaches Run's caller after every share
// finished, and the pool keeps working.
TEST(ThreadPool, RethrowsAnExceptionOfAnyShareAndStaysUsable) {
  ThreadPool pool(2);
  for (const int thrower : {1, 0}) {
    std::atomic<int> finished{0};
    try {
      pool.Run([&](int i) {
        if (i == thrower) throw std::runtime_error("share " + std::to_string(i));
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        finished.fetch_add(1);
      });
      ADD_FAILURE() << "no exception from share " << thrower;
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()), "share " + std::to_string(thrower));
    }
    EXPECT_EQ(finished.load(), 1);  // the other share ran to its end before Run returned
    int sum = 0;
    std::vector<int> part(2, 0);
    pool.Run([&](int i) { part[static_cast<std::size_t>(i)] = i + 1; });
    for (int p : part) sum += p;
    EXPECT_EQ(sum, 3);
  }
}

}  // namespace
}  // namespace diffeoflow
