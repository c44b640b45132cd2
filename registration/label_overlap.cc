#include "registration/label_overlap.h"

#include <array>
#include <cmath>
#include <map>
#include <string>

#include "solvers/errors.h"

namespace diffeoflow::registration {

double MeanDice(const Image& reference, const Image& labels) {
  std::map<long, std::array<long, 3>> counts;  // |A|, |B|, |A ∩ B|
  for (Eigen::Index i = 0; i < reference.data.size(); ++i) {
    const long a = std::lround(reference.data[i]);
    const long b = std::lround(labels.data[i]);
    if (a != 0) ++counts[a][0];
    if (b != 0) ++counts[b][1];
    if (a != 0 && a == b) ++counts[a][2];
  }
  double sum = 0.0;
  int present = 0;
  for (const auto& [label, c] : counts) {
    if (c[0] == 0) continue;  // only labels present in the reference
    sum += 2.0 * c[2] / static_cast<double>(c[0] + c[1]);
    ++present;
  }
  return present > 0 ? sum / present : 0.0;
}

int CountLabels(const Image& labels) {
  std::map<long, int> seen;
  for (Eigen::Index i = 0; i < labels.data.size(); ++i) {
    const long a = std::lround(labels.data[i]);
    if (a != 0) seen[a] = 1;
  }
  return static_cast<int>(seen.size());
}

Image MajorityVote(const std::vector<Image>& maps) {
  if (maps.empty()) throw InputError("MajorityVote: no label maps");
  Image vote = maps.front();
  for (const Image& m : maps) {
    if (!m.grid.SameShape(vote.grid)) {
      throw InputError("MajorityVote: label maps of sizes " + SizeText(vote.grid) + " and " +
                       SizeText(m.grid));
    }
  }
  std::map<long, int> count;
  for (Eigen::Index i = 0; i < vote.data.size(); ++i) {
    count.clear();
    for (const Image& m : maps) ++count[std::lround(m.data[i])];
    long best = 0;
    int best_count = -1;
    for (const auto& [label, c] : count) {
      if (c > best_count) {
        best = label;
        best_count = c;
      }
    }
    vote.data[i] = static_cast<double>(best);
  }
  return vote;
}

}  // namespace diffeoflow::registration
