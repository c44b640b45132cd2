#include "solvers/workers.h"

#include <algorithm>
#include <stdexcept>

namespace diffeoflow {

void SumItemsInOrder(std::vector<Workers::Item> items, int total, double* out, std::size_t n) {
  std::sort(items.begin(), items.end(),
            [](const Workers::Item& a, const Workers::Item& b) { return a.index < b.index; });
  if (static_cast<int>(items.size()) != total) {
    throw std::invalid_argument("SumInItemOrder: " + std::to_string(items.size()) +
                                " items for a total of " + std::to_string(total));
  }
  for (int i = 0; i < total; ++i) {
    if (items[static_cast<std::size_t>(i)].index != i) {
      throw std::invalid_argument("SumInItemOrder: item " + std::to_string(i) +
                                  " is missing or given twice");
    }
  }
  std::fill(out, out + n, 0.0);
  for (const Workers::Item& item : items) {
    for (std::size_t k = 0; k < n; ++k) out[k] += item.data[k];
  }
}

void SerialWorkers::SumInItemOrder(const std::vector<Item>& local, int total, double* out,
                                   std::size_t n) {
  SumItemsInOrder(local, total, out, n);
}

Workers& Serial() {
  static SerialWorkers serial;
  return serial;
}

std::vector<int> OwnedItems(int total, const Workers& workers) {
  std::vector<int> owned;
  for (int i = workers.rank(); i < total; i += workers.count()) owned.push_back(i);
  return owned;
}

std::vector<int> BalancedItems(const std::vector<double>& cost, const Workers& workers) {
  const int total = static_cast<int>(cost.size());
  std::vector<int> order(static_cast<std::size_t>(total));
  for (int i = 0; i < total; ++i) order[static_cast<std::size_t>(i)] = i;
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    const double ca = cost[static_cast<std::size_t>(a)], cb = cost[static_cast<std::size_t>(b)];
    return ca > cb || (ca == cb && a < b);
  });
  const auto count = static_cast<std::size_t>(workers.count());
  std::vector<double> load(count, 0.0);
  std::vector<int> items(count, 0);
  std::vector<int> owned;
  for (int i : order) {
    std::size_t best = 0;
    for (std::size_t w = 1; w < count; ++w) {
      if (load[w] < load[best] || (load[w] == load[best] && items[w] < items[best])) best = w;
    }
    load[best] += cost[static_cast<std::size_t>(i)];
    ++items[best];
    if (static_cast<int>(best) == workers.rank()) owned.push_back(i);
  }
  std::sort(owned.begin(), owned.end());
  return owned;
}

}  // namespace diffeoflow
