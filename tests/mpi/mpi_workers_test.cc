// MpiWorkers (mpi/mpi_workers.h) under `mpirun -np 2` (tests/CMakeLists.txt): the sums, the
// in-item-order sum against the serial one bit for bit, broadcasts and the first error. Every
// rank runs every test; mpirun fails when any rank does.
#include <mpi.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include "mpi/mpi_workers.h"

namespace {

using diffeoflow::Workers;
using diffeoflow::mpi::MpiWorkers;

TEST(MpiWorkers, RunsOnTwoRanks) {
  MpiWorkers workers;
  ASSERT_EQ(workers.count(), 2) << "run this test with mpirun -np 2";
  int rank = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  EXPECT_EQ(workers.rank(), rank);
}

TEST(MpiWorkers, SumAddsEveryRanksArrayOnEveryRank) {
  MpiWorkers workers;
  const int r = workers.rank();
  std::vector<double> data = {1.0 + r, 10.0 * (r + 1), -0.5 * r};
  workers.Sum(data.data(), data.size());
  const int p = workers.count();
  EXPECT_EQ(data[0], p + p * (p - 1) / 2.0);
  EXPECT_EQ(data[1], 10.0 * p * (p + 1) / 2.0);
  EXPECT_EQ(data[2], -0.5 * p * (p - 1) / 2.0);
  workers.Sum(nullptr, 0);  // nothing to add is allowed
}

// Data-parallel training relies on every rank getting the same bits from Sum (flows/train.h).
TEST(MpiWorkers, SumGivesEveryRankTheSameBits) {
  MpiWorkers workers;
  for (std::size_t n : {std::size_t{7}, std::size_t{29290}, std::size_t{1} << 20}) {
    std::mt19937_64 rng(17 + static_cast<unsigned>(workers.rank()));
    std::normal_distribution<double> normal;
    std::vector<double> data(n);
    for (double& x : data) x = normal(rng) * std::exp(10.0 * normal(rng));
    workers.Sum(data.data(), n);
    std::vector<double> first = data;
    workers.Broadcast(first.data(), n, 0);
    EXPECT_EQ(std::memcmp(first.data(), data.data(), n * sizeof(double)), 0) << n << " doubles";
  }
}

// Items whose sum depends on the order of the additions: 1e16 absorbs a following 1.0 but not a
// preceding 1.0 + 1.0 = 2.0, so any order but the index order gives other bits.
std::vector<std::vector<double>> OrderSensitiveItems(int total, std::size_t n) {
  std::vector<std::vector<double>> items(static_cast<std::size_t>(total), std::vector<double>(n));
  for (int i = 0; i < total; ++i) {
    for (std::size_t k = 0; k < n; ++k) {
      const double big = (i % 3 == 2) ? (i % 2 ? -1e16 : 1e16) : 1.0;
      items[static_cast<std::size_t>(i)][k] = big * (1.0 + 1e-3 * static_cast<double>(k)) + 0.1 * i;
    }
  }
  return items;
}

TEST(MpiWorkers, SumInItemOrderEqualsTheSerialSumBitForBitWithUnevenOwnership) {
  MpiWorkers workers;
  constexpr int kTotal = 11;
  constexpr std::size_t kN = 5;
  const auto items = OrderSensitiveItems(kTotal, kN);
  // Rank 0 owns 0, 1, 2, 5, 9, 10 and rank 1 the other five: runs of different lengths.
  const std::vector<int> rank0 = {0, 1, 2, 5, 9, 10};
  std::vector<Workers::Item> mine, all;
  for (int i = 0; i < kTotal; ++i) {
    const bool zero = std::find(rank0.begin(), rank0.end(), i) != rank0.end();
    const Workers::Item item{i, items[static_cast<std::size_t>(i)].data()};
    all.push_back(item);
    if (zero == (workers.rank() == 0)) mine.push_back(item);
  }
  std::vector<double> parallel(kN, -1.0), serial(kN, -2.0), reversed(kN, 0.0);
  workers.SumInItemOrder(mine, kTotal, parallel.data(), kN);
  diffeoflow::SerialWorkers().SumInItemOrder(all, kTotal, serial.data(), kN);
  EXPECT_EQ(std::memcmp(parallel.data(), serial.data(), kN * sizeof(double)), 0)
      << parallel[0] << " vs " << serial[0];
  // The items are order-sensitive: adding them backwards gives other bits.
  for (int i = kTotal - 1; i >= 0; --i) {
    for (std::size_t k = 0; k < kN; ++k) reversed[k] += items[static_cast<std::size_t>(i)][k];
  }
  EXPECT_NE(std::memcmp(reversed.data(), serial.data(), kN * sizeof(double)), 0);
}

TEST(MpiWorkers, SumInItemOrderWithTheRoundRobinOwnershipAndNoItemsOnARank) {
  MpiWorkers workers;
  const auto items = OrderSensitiveItems(7, 3);
  std::vector<Workers::Item> all;
  for (int i = 0; i < 7; ++i) all.push_back({i, items[static_cast<std::size_t>(i)].data()});
  std::vector<double> serial(3), parallel(3);
  diffeoflow::SerialWorkers().SumInItemOrder(all, 7, serial.data(), 3);
  std::vector<Workers::Item> mine;
  for (int i : diffeoflow::OwnedItems(7, workers)) mine.push_back(all[static_cast<std::size_t>(i)]);
  workers.SumInItemOrder(mine, 7, parallel.data(), 3);
  EXPECT_EQ(std::memcmp(parallel.data(), serial.data(), sizeof(serial[0]) * 3), 0);
  // Every item on rank 1, none on rank 0.
  std::fill(parallel.begin(), parallel.end(), 0.0);
  workers.SumInItemOrder(workers.rank() == 1 ? all : std::vector<Workers::Item>{}, 7,
                         parallel.data(), 3);
  EXPECT_EQ(std::memcmp(parallel.data(), serial.data(), sizeof(serial[0]) * 3), 0);
}

TEST(MpiWorkers, SumInItemOrderRefusesAMissingOrDoubledItemOnEveryRank) {
  MpiWorkers workers;
  const std::vector<double> value = {1.0};
  std::vector<double> out(1);
  // Item 1 is missing: every rank throws (none is left waiting for the others).
  std::vector<Workers::Item> mine;
  if (workers.rank() == 0) mine.push_back({0, value.data()});
  EXPECT_THROW(workers.SumInItemOrder(mine, 2, out.data(), 1), std::invalid_argument);
  // Item 0 on both ranks.
  EXPECT_THROW(workers.SumInItemOrder({{0, value.data()}}, 2, out.data(), 1),
               std::invalid_argument);
  // Afterwards the workers still agree.
  std::vector<double> one = {1.0};
  workers.Sum(one.data(), 1);
  EXPECT_EQ(one[0], workers.count());
}

TEST(MpiWorkers, BroadcastCopiesTheRootsArrayFromEitherRoot) {
  MpiWorkers workers;
  for (int root = 0; root < workers.count(); ++root) {
    std::vector<double> data(4, static_cast<double>(workers.rank()));
    if (workers.rank() == root) data = {3.5, -1.0, root + 0.25, 1e300};
    workers.Broadcast(data.data(), data.size(), root);
    EXPECT_EQ(data, (std::vector<double>{3.5, -1.0, root + 0.25, 1e300})) << "root " << root;
  }
  double x = 0.0;
  EXPECT_THROW(workers.Broadcast(&x, 1, workers.count()), std::invalid_argument);
}

TEST(MpiWorkers, FirstErrorGivesTheLowestFailingRanksMessageToEveryRank) {
  MpiWorkers workers;
  EXPECT_EQ(workers.FirstError(""), "");
  // Only rank 1 fails.
  const std::string from_one = workers.FirstError(
      workers.rank() == 1 ? "subject B.nii.gz: cannot read the file" : "");
  EXPECT_EQ(from_one, "subject B.nii.gz: cannot read the file");
  // Both fail: rank 0's message wins.
  const std::string both = workers.FirstError("failed on rank " + std::to_string(workers.rank()));
  EXPECT_EQ(both, "failed on rank 0");
  // A long message arrives whole.
  const std::string long_message(100000, 'x');
  EXPECT_EQ(workers.FirstError(workers.rank() == 1 ? long_message : ""), long_message);
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  const int status = RUN_ALL_TESTS();
  MPI_Finalize();
  return status;
}
