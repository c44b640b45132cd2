// Image similarity terms E(I; J) between a warped moving image I = I0 ∘ φ⁻¹ and the fixed image J,
// with their gradients with respect to I (the "image force" an LDDMM adjoint starts from).
// Both are discretised integrals: a sum over voxels times the voxel volume (mm^dim), so their
// values do not change scale with the resolution of a pyramid level.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <Eigen/Core>

#include "registration/image.h"

namespace diffeoflow {
class ThreadPool;
}  // namespace diffeoflow

namespace diffeoflow::registration {

// The similarity a registration matches the images with (--similarity): the SSD of Beg et al.
// 2005, or local normalised cross-correlation (LocalNcc below), which is invariant to an affine
// change of intensity within each window.
enum class SimilarityMeasure { kSsd, kLocalNcc };
std::string SimilarityName(SimilarityMeasure similarity);  // "ssd", "ncc"
// InputError naming `argument` unless name is "ssd" or "ncc".
SimilarityMeasure ParseSimilarity(const std::string& name,
                                  const std::string& argument = "--similarity");
// A similarity a registration may leave to its defaults (RegistrationOptions::ResolvedFor):
// "auto" while unset.
std::string SimilarityName(const std::optional<SimilarityMeasure>& similarity);
// Unset for "auto"; otherwise ParseSimilarity (whose error also names "auto").
std::optional<SimilarityMeasure> ParseSimilarityOrAuto(const std::string& name,
                                                       const std::string& argument = "--similarity");

// Σ_x (a(x) − b(x))², with no weight and no voxel volume: the "SSD" figure reported in
// metrics.json (ssd_initial, ssd_final).
double SumOfSquaredDifferences(const Eigen::Ref<const Eigen::VectorXd>& a,
                               const Eigen::Ref<const Eigen::VectorXd>& b);

// The SSD data term of Beg et al. 2005:
//   E(I) = (1/σ²) Σ_x (I(x) − J(x))² · voxel_volume,     ∂E/∂I(x) = 2 (I(x) − J(x)) · voxel_volume / σ².
// σ > 0 (intensity units); throws InputError otherwise. `gradient` (grid.voxels() values) is
// overwritten.
double SsdEnergy(const Grid& grid, const Eigen::Ref<const Eigen::VectorXd>& warped,
                 const Eigen::Ref<const Eigen::VectorXd>& fixed, double sigma);
double SsdEnergyAndGradient(const Grid& grid, const Eigen::Ref<const Eigen::VectorXd>& warped,
                            const Eigen::Ref<const Eigen::VectorXd>& fixed, double sigma,
                            Eigen::Ref<Eigen::VectorXd> gradient);

struct LocalNccOptions {
  int radius = 2;          // window (2r+1)^dim voxels, truncated at the borders; r >= 1
  double epsilon = 1e-5;   // regulariser in the denominator (intensity⁴ units), > 0
  // Floors on the windowed variances (intensity² units), >= 0: B + ε_I and C + ε_J stand for B
  // and C in the denominator, so cc ≤ C/(C + ε_J) — a window where the fixed image J is nearly
  // flat cannot score, however strong I is there — and, when ε_I scales with I's intensity², cc
  // stays invariant to I ↦ a I + b.
  double moving_variance_floor = 0.0;  // ε_I
  double fixed_variance_floor = 0.0;   // ε_J
  double weight = 1.0;     // multiplies the energy (plays the role of 1/σ²), > 0
};

// Local normalised cross-correlation (as in ANTs' SyN CC metric, with the exact gradient):
// for every voxel x with window W(x) of n_x voxels,
//   A = Σ_W I J − (Σ_W I)(Σ_W J)/n_x,   B = Σ_W I² − (Σ_W I)²/n_x,   C = Σ_W J² − (Σ_W J)²/n_x,
//   cc(x) = A² / ((B + ε_I)(C + ε_J) + ε),
//   E(I) = −weight · Σ_x cc(x) · voxel_volume            (E ∈ [−weight·volume, 0]; lower is better)
// and, with d = (B + ε_I)(C + ε_J) + ε,
//   ∂E/∂I(y) = −weight·volume · Σ_{x: y ∈ W(x)} [ 2A/d (J(y) − J̄_x) − 2A²(C + ε_J)/d² (I(y) − Ī_x) ],
// evaluated with box sums in O(voxels) independent of r. Gradient and value are exact derivatives
// of each other (tested against central differences).
class LocalNcc {
 public:
  // Throws InputError for invalid options. With a pool (not owned; it must outlive this object)
  // the loops over voxels run on its ranges, and the results are the same bits as without.
  LocalNcc(const Grid& grid, const LocalNccOptions& options = {}, ThreadPool* pool = nullptr);
  ~LocalNcc();
  LocalNcc(const LocalNcc&) = delete;
  LocalNcc& operator=(const LocalNcc&) = delete;
  LocalNcc(LocalNcc&&) noexcept;
  LocalNcc& operator=(LocalNcc&&) noexcept;

  double Energy(const Eigen::Ref<const Eigen::VectorXd>& warped,
                const Eigen::Ref<const Eigen::VectorXd>& fixed);
  // `gradient` (grid.voxels() values) is overwritten. Does not allocate.
  double EnergyAndGradient(const Eigen::Ref<const Eigen::VectorXd>& warped,
                           const Eigen::Ref<const Eigen::VectorXd>& fixed,
                           Eigen::Ref<Eigen::VectorXd> gradient);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace diffeoflow::registration
