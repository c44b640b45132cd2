// Workers (solvers/workers.h) over MPI_COMM_WORLD: the only code in diffeoflow, with apps/, that
// knows MPI. The caller owns MPI_Init/MPI_Finalize (apps/process_workers.cc); an MpiWorkers is a
// view of the world communicator while MPI is initialised.
//
//   Sum             MPI_Allreduce(MPI_SUM): the reduction order is Open MPI's. Its algorithms
//                   combine the same partial sums on every rank, so every rank gets the same bits
//                   (flows/train.cc checks this at the end of training).
//   SumInItemOrder  one accumulator passed along the items in index order: the owner of item i
//                   adds it ((0 + x₀) + x₁) + … and sends the accumulator on when the next item
//                   lives elsewhere; the owner of the last item broadcasts. The same additions in
//                   the same order as SerialWorkers, so the same bits for any number of ranks, and
//                   O(n) memory a rank (no gather of every item on rank 0).
//   Broadcast       MPI_Bcast.
//   FirstError      the lowest failing rank by MPI_Allreduce(MPI_MIN), its message by MPI_Bcast.
// Arrays longer than an int can count go in chunks.
#pragma once

#include "solvers/workers.h"

namespace diffeoflow::mpi {

class MpiWorkers final : public Workers {
 public:
  // MPI must be initialised (std::logic_error otherwise).
  MpiWorkers();

  int rank() const override { return rank_; }
  int count() const override { return count_; }
  void Sum(double* data, std::size_t n) override;
  // Every rank checks the ownership (each index of [0, total) on exactly one rank) the same way,
  // so a bad ownership throws std::invalid_argument on every rank rather than hanging one.
  void SumInItemOrder(const std::vector<Item>& local, int total, double* out,
                      std::size_t n) override;
  void Broadcast(double* data, std::size_t n, int root) override;
  std::string FirstError(const std::string& local) override;

 private:
  int rank_ = 0, count_ = 1;
};

}  // namespace diffeoflow::mpi
