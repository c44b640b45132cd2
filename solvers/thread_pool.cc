#include "solvers/thread_pool.h"

#include <algorithm>
#include <chrono>

namespace diffeoflow {

namespace {
// How long a thread watches an atomic before it sleeps: longer than the serial work between two
// parallel loops of an integration step (an FFT of the mesh), short enough that an idle pool
// costs nothing measurable.
constexpr std::chrono::microseconds kSpin(200);

// Polls `ready` until it returns true or kSpin has passed; returns whether it became true.
template <class Ready>
bool SpinUntil(Ready&& ready) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (int i = 0;; ++i) {
    if (ready()) return true;
    if ((i & 63) == 63 && std::chrono::steady_clock::now() >= until) return false;
  }
}
}  // namespace

ThreadPool::ThreadPool(int threads) {
  const int workers = std::max(threads, 1) - 1;
  errors_.resize(static_cast<std::size_t>(workers));
  workers_.reserve(static_cast<std::size_t>(workers));
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this, i] { Loop(i + 1); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);  // a worker between its check and its wait sees it
    stopping_.store(true, std::memory_order_release);
  }
  start_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::Run(const std::function<void(int)>& job) {
  if (workers_.empty()) {
    job(0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &job;
    pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  start_.notify_all();
  // The caller's share; its exception waits until the workers are done with `job`.
  std::exception_ptr own;
  try {
    job(0);
  } catch (...) {
    own = std::current_exception();
  }
  const auto finished = [this] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!SpinUntil(finished)) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, finished);
  }
  for (std::exception_ptr& error : errors_) {
    if (error && !own) own = error;
    error = nullptr;
  }
  if (own) std::rethrow_exception(own);
}

void ThreadPool::Loop(int index) {
  long seen = 0;
  for (;;) {
    const auto posted = [&] {
      return stopping_.load(std::memory_order_acquire) ||
             generation_.load(std::memory_order_acquire) != seen;
    };
    const std::function<void(int)>* job = nullptr;
    if (!SpinUntil(posted)) {
      std::unique_lock<std::mutex> lock(mutex_);
      start_.wait(lock, posted);
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_.load(std::memory_order_relaxed)) return;
      seen = generation_.load(std::memory_order_relaxed);
      job = job_;
    }
    try {
      (*job)(index);
    } catch (...) {
      errors_[static_cast<std::size_t>(index - 1)] = std::current_exception();
    }
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);
      done_.notify_one();
    }
  }
}

}  // namespace diffeoflow
