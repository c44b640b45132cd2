// The metric of the space V of velocity fields in LDDMM: the operator L = (I − αΔ)^γ and its
// inverse K = L⁻¹ (the reproducing kernel), applied by FFT (FFTW, real-to-complex transforms,
// planned once per grid and reused).
//
//   ‖v‖²_V = ⟨L v, v⟩,     v = K m for a momentum m,     ⟨m, K m⟩ = ‖K m‖²_V.
//
// Beg, Miller, Trouvé, Younes, "Computing large deformation metric mappings via geodesic flows of
// diffeomorphisms", IJCV 61(2), 2005 (the operator L = (−αΔ + γ)^2 family); Vialard, Risser,
// Rueckert, Cotter, "Diffeomorphic 3D image registration via geodesic shooting using an efficient
// adjoint calculation", IJCV 97(2), 2012; Zhang, Fletcher, "Fast diffeomorphic image registration
// via Fourier-approximated Lie algebras" (FLASH), IJCV 127, 2019 (band-limited velocities).
//
// Discretisation. Δ is the standard (2·dim+1)-point finite-difference Laplacian with spacing h_d in
// mm. On a periodic grid of n_d voxels the Fourier mode k is an eigenvector of −Δ with eigenvalue
//   λ(k) = Σ_d (2 − 2 cos(2π k_d / n_d)) / h_d²,
// so L has the symbol (1 + α λ(k))^γ and K the symbol (1 + α λ(k))^(−γ): L and K are exact
// inverses on the grid (to round-off), both symmetric positive definite with respect to the plain
// dot product; K's symbol is 1 at k = 0, so constant fields (translations) pass unchanged.
//
// Gaussian alternative (MetricKernel::kGaussian): K has the symbol exp(−σ² λ(k) / 2) — the heat
// kernel of the same discrete Laplacian at time σ²/2, i.e. a discrete Gaussian of standard
// deviation ≈ σ mm — and L the reciprocal symbol (exponent capped at 700 to stay finite: L is very
// ill-conditioned for a wide Gaussian; use it only on smooth fields).
//
// Boundaries (the answer to periodic wrap-around):
//  - kPeriodic (default): the grid is a torus. Mass near one border acts on the opposite border.
//    For registration of images with background near the borders this is harmless, and it is the
//    only choice for which the "exact inverse" property holds together with the textbook symbol.
//  - padding_voxels p > 0 (periodic only): fields are zero-padded by p voxels on both sides of each
//    axis of length > 1, transformed on the padded torus, and cropped. K_p = Pᵀ K P and
//    L_p = Pᵀ L P stay symmetric positive definite, and wrap-around vanishes for supports more
//    than a kernel width from the border, but L_p K_p ≠ I near the borders. Use ApplyK only (e.g.
//    for smoothing a gradient) with padding; energies that must match the gradient exactly
//    should use p = 0 or kReflective.
//  - kReflective: Neumann (mirror) boundaries via the DCT-II (FFTW REDFT10/REDFT01). The
//    eigenvalue is λ(k) = Σ_d (2 − 2 cos(π k_d / n_d)) / h_d², k_d = 0..n_d−1. No wrap-around, L and
//    K exact inverses and symmetric positive definite; velocities have zero normal derivative at
//    the borders.
//
// Units: α in mm² (√α is the kernel's length scale), γ dimensionless, σ in mm. Defaults α = 9 mm²,
// γ = 2 suit a 256 × 256 image of unit spacing (kernel scale ≈ 3 voxels, smooth enough that maps
// stay diffeomorphic, flexible enough to match a disc to a C shape); keep α in mm² when changing
// resolution so that the metric is the same at every level of a pyramid.
//
// Inner products are discretised integrals: ⟨a, b⟩ = Σ_voxels Σ_components a·b · voxel_volume_mm.
//
// Threads: FFTW's own threads (fftw_plan_with_nthreads); planning is serialised process-wide.
// One MetricOperator serves one caller at a time (it owns its buffers); Apply* do not allocate.
#pragma once

#include <memory>
#include <string>

#include <Eigen/Core>

#include "registration/image.h"

namespace diffeoflow::registration {

enum class MetricKernel { kDifferential, kGaussian };
enum class MetricBoundary { kPeriodic, kReflective };

struct MetricOptions {
  MetricKernel kernel = MetricKernel::kDifferential;
  double alpha_mm2 = 9.0;         // α in L = (I − αΔ)^γ, > 0
  double gamma = 2.0;             // γ in L = (I − αΔ)^γ, > 0
  double gaussian_sigma_mm = 3.0; // σ of the Gaussian kernel, > 0
  MetricBoundary boundary = MetricBoundary::kPeriodic;
  int padding_voxels = 0;         // zero-padding per side (periodic only), >= 0
  int threads = 1;                // FFTW threads, >= 1
  bool measure = false;           // FFTW_MEASURE (slower to plan, faster to run) vs FFTW_ESTIMATE

  // False with a message naming the offending option (e.g. "--alpha must be > 0, got -1").
  bool IsValid(std::string* error) const;
};

class MetricOperator {
 public:
  // Plans transforms for fields on `grid` (2-D or 3-D). Throws InputError if the options are
  // invalid (message from IsValid).
  explicit MetricOperator(const Grid& grid, const MetricOptions& options = {});
  ~MetricOperator();
  MetricOperator(const MetricOperator&) = delete;
  MetricOperator& operator=(const MetricOperator&) = delete;
  MetricOperator(MetricOperator&&) noexcept;
  MetricOperator& operator=(MetricOperator&&) noexcept;

  const Grid& grid() const;
  const MetricOptions& options() const;
  // grid.dim × grid.voxels(): the length of a vector field on the grid.
  Eigen::Index field_size() const;

  // v = K m for a vector field (dim components, component-major). `m` and `v` may alias.
  void ApplyK(const Eigen::Ref<const Eigen::VectorXd>& m, Eigen::Ref<Eigen::VectorXd> v);
  // m = L v for a vector field. `v` and `m` may alias.
  void ApplyL(const Eigen::Ref<const Eigen::VectorXd>& v, Eigen::Ref<Eigen::VectorXd> m);
  // The same for one scalar field (grid.voxels() values).
  void ApplyKScalar(const Eigen::Ref<const Eigen::VectorXd>& m, Eigen::Ref<Eigen::VectorXd> v);
  void ApplyLScalar(const Eigen::Ref<const Eigen::VectorXd>& v, Eigen::Ref<Eigen::VectorXd> m);

  // ⟨a, b⟩ = Σ a·b · voxel volume (fields or scalars of equal length).
  double InnerProduct(const Eigen::Ref<const Eigen::VectorXd>& a,
                      const Eigen::Ref<const Eigen::VectorXd>& b) const;
  // ‖v‖²_V = ⟨L v, v⟩.
  double NormSquaredV(const Eigen::Ref<const Eigen::VectorXd>& v);
  // ⟨m, K m⟩ (= ‖K m‖²_V when L K = I).
  double DualNormSquared(const Eigen::Ref<const Eigen::VectorXd>& m);

  // Projects a vector field onto the band-limited subspace of FLASH: keeps the Fourier modes with
  // |k_d| <= B in every axis (signed wavenumber, periodic) — (2B+1)^dim modes a component — or the
  // cosine modes k_d <= 2B (kReflective, the same spatial frequencies), zeroing the rest. Commutes
  // with K and L and is an orthogonal projector: BandLimit ∘ BandLimit = BandLimit. B >= 0. With
  // padding the projection acts on the padded torus and is cropped (then only approximately a
  // projector). `field` and `out` may alias.
  void BandLimit(const Eigen::Ref<const Eigen::VectorXd>& field, int B,
                 Eigen::Ref<Eigen::VectorXd> out);

  // The symbols on the transform grid: L's eigenvalue for −Δ-eigenvalue λ, and λ's largest value
  // on this grid (for step-size bounds: ‖L‖₂ = SymbolL(MaxLaplacianEigenvalue())).
  double SymbolL(double laplacian_eigenvalue) const;
  double MaxLaplacianEigenvalue() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace diffeoflow::registration
