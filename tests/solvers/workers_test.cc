// The work-sharing helpers of solvers/workers.h that do not need several processes: how items are
// split over workers (OwnedItems, BalancedItems) and the serial item-order sum.
#include "solvers/workers.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include <gtest/gtest.h>

namespace diffeoflow {
namespace {

// Worker `rank` of `count`, for the splitting functions (they call no collective).
class SplitOnly final : public Workers {
 public:
  SplitOnly(int rank, int count) : rank_(rank), count_(count) {}
  int rank() const override { return rank_; }
  int count() const override { return count_; }
  void Sum(double*, std::size_t) override { ADD_FAILURE() << "no collective expected"; }
  void SumInItemOrder(const std::vector<Item>&, int, double*, std::size_t) override {
    ADD_FAILURE() << "no collective expected";
  }
  void Broadcast(double*, std::size_t, int) override { ADD_FAILURE() << "no collective expected"; }
  std::string FirstError(const std::string& local) override { return local; }

 private:
  int rank_;
  int count_;
};

// Every worker's items for `cost`, by rank.
std::vector<std::vector<int>> Split(const std::vector<double>& cost, int count) {
  std::vector<std::vector<int>> split;
  for (int r = 0; r < count; ++r) split.push_back(BalancedItems(cost, SplitOnly(r, count)));
  return split;
}

double Load(const std::vector<int>& items, const std::vector<double>& cost) {
  double load = 0.0;
  for (int i : items) load += cost[static_cast<std::size_t>(i)];
  return load;
}

TEST(BalancedItems, EveryItemGoesToExactlyOneWorkerInIncreasingOrder) {
  const std::vector<double> cost = {1.2, 1.4, 1.2, 0.7, 1.0, 0.8, 0.6, 0.7, 2.5, 0.1, 0.9};
  for (int count = 1; count <= 4; ++count) {
    std::vector<int> all;
    for (const std::vector<int>& items : Split(cost, count)) {
      EXPECT_FALSE(items.empty()) << count << " workers";
      EXPECT_TRUE(std::is_sorted(items.begin(), items.end()));
      all.insert(all.end(), items.begin(), items.end());
    }
    std::sort(all.begin(), all.end());
    std::vector<int> expected(cost.size());
    std::iota(expected.begin(), expected.end(), 0);
    EXPECT_EQ(all, expected) << count << " workers";
  }
}

TEST(BalancedItems, EvensOutWhatRoundRobinLeavesUneven) {
  // Round robin gives worker 0 the four costly items (4.0 against 1.0).
  const std::vector<double> cost = {1.0, 0.25, 1.0, 0.25, 1.0, 0.25, 1.0, 0.25};
  double round_robin = 0.0;
  for (int i : OwnedItems(8, SplitOnly(0, 2))) round_robin += cost[static_cast<std::size_t>(i)];
  EXPECT_DOUBLE_EQ(round_robin, 4.0);
  const std::vector<std::vector<int>> split = Split(cost, 2);
  EXPECT_DOUBLE_EQ(Load(split[0], cost), 2.5);
  EXPECT_DOUBLE_EQ(Load(split[1], cost), 2.5);
}

TEST(BalancedItems, StaysWithinLptBoundOfTheIdealSplit) {
  const std::vector<double> cost = {5, 5, 4, 4, 3, 3, 3};  // best split over 3: 9, 9, 9
  const std::vector<std::vector<int>> split = Split(cost, 3);
  double worst = 0.0;
  for (const std::vector<int>& items : split) worst = std::max(worst, Load(items, cost));
  EXPECT_LE(worst, 4.0 / 3.0 * 9.0);
}

TEST(BalancedItems, ZeroCostsStillGiveEveryWorkerAnItem) {
  const std::vector<double> cost(5, 0.0);
  const std::vector<std::vector<int>> split = Split(cost, 3);
  EXPECT_EQ(split[0], (std::vector<int>{0, 3}));
  EXPECT_EQ(split[1], (std::vector<int>{1, 4}));
  EXPECT_EQ(split[2], (std::vector<int>{2}));
}

TEST(SumItemsInOrder, RefusesAMissingOrRepeatedItem) {
  const std::vector<double> a = {1.0}, b = {2.0};
  double out = 0.0;
  EXPECT_THROW(SumItemsInOrder({{0, a.data()}}, 2, &out, 1), std::invalid_argument);
  EXPECT_THROW(SumItemsInOrder({{0, a.data()}, {0, b.data()}}, 2, &out, 1),
               std::invalid_argument);
  SumItemsInOrder({{1, b.data()}, {0, a.data()}}, 2, &out, 1);
  EXPECT_EQ(out, 3.0);
}

}  // namespace
}  // namespace diffeoflow
