// Test-only Workers: P "workers" that are threads of one process, with the collectives done
// through shared memory. Every collective is a rendezvous: each worker deposits its part, waits
// for all, reads everyone's parts, and waits again before the parts may change. It runs the
// population code as P processes would (each worker only ever sees its own items), so a test can
// check that the result is the same bits for any worker count.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "solvers/workers.h"

namespace diffeoflow::testing {

class ThreadWorkerGroup {
 public:
  explicit ThreadWorkerGroup(int count)
      : count_(count), parts_(static_cast<std::size_t>(count)),
        texts_(static_cast<std::size_t>(count)), lists_(static_cast<std::size_t>(count)) {}

  // Runs body(workers) on `count` threads, one Workers each; rethrows the first exception (by
  // rank) after all threads ended.
  void Run(const std::function<void(Workers&)>& body) {
    std::vector<std::exception_ptr> errors(static_cast<std::size_t>(count_));
    std::vector<std::thread> threads;
    for (int r = 0; r < count_; ++r) {
      threads.emplace_back([this, r, &body, &errors] {
        Member member(*this, r);
        try {
          body(member);
        } catch (...) {
          errors[static_cast<std::size_t>(r)] = std::current_exception();
        }
      });
    }
    for (std::thread& t : threads) t.join();
    for (const std::exception_ptr& e : errors) {
      if (e) std::rethrow_exception(e);
    }
  }

 private:
  class Member final : public Workers {
   public:
    Member(ThreadWorkerGroup& group, int rank) : group_(group), rank_(rank) {}
    int rank() const override { return rank_; }
    int count() const override { return group_.count_; }
    void Sum(double* data, std::size_t n) override {
      group_.parts_[Index()] = data;
      group_.Wait();
      std::vector<double> total(n, 0.0);
      for (const double* part : group_.parts_) {
        for (std::size_t k = 0; k < n; ++k) total[k] += part[k];
      }
      group_.Wait();
      std::copy(total.begin(), total.end(), data);
    }
    void SumInItemOrder(const std::vector<Item>& local, int total, double* out,
                        std::size_t n) override {
      group_.lists_[Index()] = &local;
      group_.Wait();
      std::vector<Item> all;
      for (const std::vector<Item>* list : group_.lists_) {
        all.insert(all.end(), list->begin(), list->end());
      }
      SumItemsInOrder(all, total, out, n);
      group_.Wait();
    }
    void Broadcast(double* data, std::size_t n, int root) override {
      group_.parts_[Index()] = data;
      group_.Wait();
      std::vector<double> copy(group_.parts_[static_cast<std::size_t>(root)],
                               group_.parts_[static_cast<std::size_t>(root)] + n);
      group_.Wait();
      std::copy(copy.begin(), copy.end(), data);
    }
    std::string FirstError(const std::string& local) override {
      group_.texts_[Index()] = local;
      group_.Wait();
      std::string first;
      for (const std::string& text : group_.texts_) {
        if (!text.empty()) {
          first = text;
          break;
        }
      }
      group_.Wait();
      return first;
    }

   private:
    std::size_t Index() const { return static_cast<std::size_t>(rank_); }
    ThreadWorkerGroup& group_;
    int rank_;
  };

  // A reusable barrier for the count_ workers.
  void Wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    const long generation = generation_;
    if (++arrived_ == count_) {
      arrived_ = 0;
      ++generation_;
      ready_.notify_all();
    } else {
      ready_.wait(lock, [&] { return generation_ != generation; });
    }
  }

  int count_;
  std::vector<double*> parts_;
  std::vector<std::string> texts_;
  std::vector<const std::vector<Workers::Item>*> lists_;
  std::mutex mutex_;
  std::condition_variable ready_;
  int arrived_ = 0;
  long generation_ = 0;
};

}  // namespace diffeoflow::testing
