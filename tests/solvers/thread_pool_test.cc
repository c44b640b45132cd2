#include "solvers/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
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

// ForLines visits every line (o, q) of outer × stride exactly once, in pieces [q0, q1) that lie
// within one block, with the pool of any size and with no pool (in place, one piece a block).
TEST(ThreadPool, ForLinesVisitsEveryLineOnceWithinItsBlock) {
  for (const int threads : {0, 1, 2, 3, 5}) {
    std::unique_ptr<ThreadPool> pool;
    if (threads > 0) pool = std::make_unique<ThreadPool>(threads);
    for (const auto& [outer, stride] : {std::pair<std::ptrdiff_t, std::ptrdiff_t>{1, 1},
                                        {1, 7},
                                        {7, 1},
                                        {3, 10},
                                        {10, 3},
                                        {4, 96}}) {
      std::vector<std::atomic<int>> visits(static_cast<std::size_t>(outer * stride));
      std::atomic<int> pieces{0};
      ForLines(pool.get(), outer, stride,
               [&](std::ptrdiff_t o, std::ptrdiff_t q0, std::ptrdiff_t q1) {
        EXPECT_GE(o, 0);
        EXPECT_LT(o, outer);
        EXPECT_GE(q0, 0);
        EXPECT_LT(q0, q1);
        EXPECT_LE(q1, stride);
        for (std::ptrdiff_t q = q0; q < q1; ++q) ++visits[static_cast<std::size_t>(o * stride + q)];
        ++pieces;
      });
      for (std::size_t i = 0; i < visits.size(); ++i) {
        EXPECT_EQ(visits[i].load(), 1) << threads << " threads, " << outer << " × " << stride;
      }
      // A range's lines are contiguous: it splits at most one block with the next range.
      EXPECT_LE(pieces.load(), outer + std::max(1, threads) - 1);
      if (threads <= 1) {
        EXPECT_EQ(pieces.load(), outer);
      }
    }
    // No lines: fn is never called.
    ForLines(pool.get(), 0, 5, [](std::ptrdiff_t, std::ptrdiff_t, std::ptrdiff_t) { FAIL(); });
    ForLines(pool.get(), 5, 0, [](std::ptrdiff_t, std::ptrdiff_t, std::ptrdiff_t) { FAIL(); });
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
