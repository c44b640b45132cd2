// Persistent worker threads for data-parallel loops too short to pay for starting threads on
// every call: a particle loop of shooting or LDDMM on a 64² mesh takes about 0.1–0.3 ms, about
// what creating and joining a std::thread costs.
//
// Run(job) calls job(0) on the calling thread and job(1) … job(threads − 1) on the workers, and
// returns when every call has returned. Hand-over: a worker that finished a job watches for the
// next one for a short while (kSpin) before it sleeps on a condition variable, and the caller
// watches for the workers' completion the same way, so that back-to-back loops (the stages of an
// integration step) pay no wake-up; an idle pool sleeps. An exception thrown by any call is
// rethrown by Run (the caller's first, then the workers' by index) once every call has finished.
// One Run at a time: a pool belongs to the object that created it and is used from one thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace diffeoflow {

class ThreadPool {
 public:
  // threads ≥ 1: the calling thread and threads − 1 workers (none for 1).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }
  void Run(const std::function<void(int)>& job);

  // fn(begin, end, range) over threads() contiguous ranges of [0, n): range r is
  // [n·r / threads, n·(r + 1) / threads), so the split depends on n and threads() only.
  template <class Fn>
  void ForRanges(std::ptrdiff_t n, Fn&& fn) {
    const int t = threads();
    if (t == 1) {
      fn(std::ptrdiff_t{0}, n, 0);
      return;
    }
    // One reference captured: the std::function keeps it in place, without allocating (the
    // loops run inside right-hand sides, which must not allocate).
    struct Split {
      std::ptrdiff_t n;
      int t;
      Fn& fn;
    } split{n, t, fn};
    const std::function<void(int)> job = [&split](int r) {
      split.fn(split.n * r / split.t, split.n * (r + 1) / split.t, r);
    };
    Run(job);
  }

 private:
  void Loop(int index);

  std::vector<std::thread> workers_;
  std::vector<std::exception_ptr> errors_;  // by worker index − 1
  std::mutex mutex_;
  std::condition_variable start_, done_;
  const std::function<void(int)>* job_ = nullptr;  // written under mutex_ before generation_
  std::atomic<long> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stopping_{false};
};

// How many ranges a loop is worth: the `requested` threads, but no more than one range per
// `work_per_range` units of `work`, and between 1 and 64.
inline int RangesFor(int requested, std::ptrdiff_t work, std::ptrdiff_t work_per_range) {
  const std::ptrdiff_t worthwhile = work / work_per_range;
  return static_cast<int>(std::clamp<std::ptrdiff_t>(
      std::min<std::ptrdiff_t>(requested, worthwhile), 1, 64));
}

// pool->ForRanges(n, fn), or fn(0, n, 0) in place when there is no pool.
template <class Fn>
void ForRanges(ThreadPool* pool, std::ptrdiff_t n, Fn&& fn) {
  if (pool != nullptr) {
    pool->ForRanges(n, fn);
  } else {
    fn(std::ptrdiff_t{0}, n, 0);
  }
}

// The lines of a field seen as outer × length × stride (x fastest): for each block o < outer, the
// `stride` lines along the middle axis start at o · length · stride + q, q < stride. The
// outer × stride lines are split over the pool's ranges (ForRanges over outer · stride), and
// fn(o, q0, q1) is called for each block o with the contiguous piece [q0, q1) of its lines that a
// range holds, so that a line is never split and the split depends on the counts only.
template <class Fn>
void ForLines(ThreadPool* pool, std::ptrdiff_t outer, std::ptrdiff_t stride, Fn&& fn) {
  if (outer <= 0 || stride <= 0) return;
  ForRanges(pool, outer * stride, [&](std::ptrdiff_t begin, std::ptrdiff_t end, int) {
    for (std::ptrdiff_t o = begin / stride; o * stride < end; ++o) {
      fn(o, std::max(begin, o * stride) - o * stride, std::min(end, (o + 1) * stride) - o * stride);
    }
  });
}

}  // namespace diffeoflow
