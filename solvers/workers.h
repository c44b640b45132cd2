// What the libraries know of running as several processes: a small reduction interface.
//
// registration/ and flows/ share work only through `Workers`; they never see MPI. The serial
// implementation (one worker, every operation the identity) is the default; the MPI one lives in
// its own folder and is chosen by apps/ when the program runs under mpirun (issue 17).
//
// Every member except rank()/count() is a collective: every worker calls it, at the same point of
// the program, with the same `n`. A worker that fails between two collectives must still reach the
// next one: it passes its error to FirstError, which all workers call before they reduce.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace diffeoflow {

class Workers {
 public:
  virtual ~Workers() = default;

  // This worker's index in [0, count()).
  virtual int rank() const = 0;
  virtual int count() const = 0;

  // Element-wise sum of `data` over all workers, in place, the result on every worker. The order
  // of the additions is the implementation's: the result equals the serial sum up to rounding.
  virtual void Sum(double* data, std::size_t n) = 0;

  // One term of SumInItemOrder: item `index` (in [0, total)) and its n values.
  struct Item {
    int index = 0;
    const double* data = nullptr;
  };
  // The sum over items spread over the workers, the same bits for any number of workers: each
  // worker passes the items it owns (every index in [0, total) owned by exactly one worker);
  // `out` (n values) receives ((0 + item_0) + item_1) + … + item_{total−1}, on every worker.
  virtual void SumInItemOrder(const std::vector<Item>& local, int total, double* out,
                              std::size_t n) = 0;

  // Copies the root worker's `data` to every worker.
  virtual void Broadcast(double* data, std::size_t n, int root) = 0;

  // Each worker passes its own error message ("" when it has none); every worker gets the message
  // of the lowest-ranked worker that had one, or "" when none had. Call it before a reduction so
  // that a failure on one worker stops all of them with the same message.
  virtual std::string FirstError(const std::string& local) = 0;
};

// One worker: the program as it runs without mpirun.
class SerialWorkers final : public Workers {
 public:
  int rank() const override { return 0; }
  int count() const override { return 1; }
  void Sum(double*, std::size_t) override {}
  void SumInItemOrder(const std::vector<Item>& local, int total, double* out,
                      std::size_t n) override;
  void Broadcast(double*, std::size_t, int) override {}
  std::string FirstError(const std::string& local) override { return local; }
};

// The process-wide serial workers, the default wherever a Workers& is optional.
Workers& Serial();

// The items of [0, total) that this worker owns: i with i mod count() == rank(), increasing.
std::vector<int> OwnedItems(int total, const Workers& workers);

// The items of [0, total) that this worker owns when item i costs cost[i] (total = cost.size();
// every worker passes the same numbers, so all agree on the split): the items, most costly first
// (ties: the lower index), go one by one to the worker with the least cost so far (ties: the one
// with fewer items, then the lower rank) — Graham's LPT rule, within 4/3 of the best split. Every
// worker gets an item when total >= count(). Increasing.
std::vector<int> BalancedItems(const std::vector<double>& cost, const Workers& workers);

// SumInItemOrder's arithmetic for the items all in hand: checks that `items` holds every index of
// [0, total) once (std::invalid_argument otherwise) and adds them in index order into `out`.
void SumItemsInOrder(std::vector<Workers::Item> items, int total, double* out, std::size_t n);

}  // namespace diffeoflow
