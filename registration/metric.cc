#include "registration/metric.h"

#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <numbers>
#include <string>
#include <vector>

#include "solvers/errors.h"

namespace diffeoflow::registration {
namespace {

using Index = Eigen::Index;

// FFTW's planner is process-wide state: initialise threads once and serialise planning and plan
// destruction.
std::mutex& PlannerMutex() {
  static std::mutex mutex;
  return mutex;
}

void InitialiseFftwThreads() {
  static std::once_flag once;
  std::call_once(once, [] {
    fftw_init_threads();
    fftw_make_planner_thread_safe();
  });
}

std::string Number(double v) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%g", v);
  return buffer;
}

}  // namespace

bool MetricOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& message) {
    if (error) *error = message;
    return false;
  };
  if (kernel == MetricKernel::kDifferential) {
    if (!(alpha_mm2 > 0.0) || !std::isfinite(alpha_mm2)) {
      return fail("--alpha must be a finite number > 0 (mm^2), got " + Number(alpha_mm2));
    }
    if (!(gamma > 0.0) || !std::isfinite(gamma)) {
      return fail("--gamma must be a finite number > 0, got " + Number(gamma));
    }
  } else if (!(gaussian_sigma_mm > 0.0) || !std::isfinite(gaussian_sigma_mm)) {
    return fail("Gaussian kernel width must be a finite number > 0 (mm), got " +
                Number(gaussian_sigma_mm));
  }
  if (padding_voxels < 0) {
    return fail("metric padding must be >= 0 voxels, got " + std::to_string(padding_voxels));
  }
  if (padding_voxels > 0 && boundary != MetricBoundary::kPeriodic) {
    return fail("metric padding applies to periodic boundaries only");
  }
  if (threads < 1) return fail("--threads must be >= 1, got " + std::to_string(threads));
  return true;
}

struct MetricOperator::Impl {
  Grid grid;
  MetricOptions options;
  std::array<int, 3> n{1, 1, 1};       // transform grid (padded), x fastest
  std::array<int, 3> offset{0, 0, 0};  // where the image grid starts inside the transform grid
  Index real_size = 0;                 // Π n
  Index spectral_size = 0;             // r2c: (n0/2+1)·n1·n2; DCT: real_size
  double* real = nullptr;
  fftw_complex* spectrum = nullptr;    // periodic only
  double* cosine = nullptr;            // reflective only: DCT coefficients
  fftw_plan forward = nullptr;
  fftw_plan backward = nullptr;
  std::vector<double> lambda;          // −Δ eigenvalue at each spectral index
  std::vector<double> symbol_k;        // K's symbol / normalisation
  std::vector<double> symbol_l;        // L's symbol / normalisation
  std::vector<double> mask;            // BandLimit workspace (per B, normalised 0/1)
  int mask_b = -1;
  double normalisation = 1.0;          // FFTW round trip multiplies by this
  double max_lambda = 0.0;
  Eigen::VectorXd work;                // one field, for norms

  ~Impl() {
    std::lock_guard<std::mutex> lock(PlannerMutex());
    if (forward) fftw_destroy_plan(forward);
    if (backward) fftw_destroy_plan(backward);
    fftw_free(real);
    fftw_free(spectrum);
    fftw_free(cosine);
  }

  bool periodic() const { return options.boundary == MetricBoundary::kPeriodic; }

  double SymbolL(double lam) const {
    if (options.kernel == MetricKernel::kDifferential) {
      return std::pow(1.0 + options.alpha_mm2 * lam, options.gamma);
    }
    const double s = options.gaussian_sigma_mm;
    return std::exp(std::min(700.0, 0.5 * s * s * lam));
  }

  // Signed wavenumber of spectral index t along axis d (periodic), or the cosine index.
  int Wavenumber(int t, int d) const {
    if (!periodic() || d == 0) return t;
    return t <= n[d] / 2 ? t : t - n[d];
  }

  // Calls fn(spectral_index, k0, k1, k2) for every spectral coefficient.
  template <typename Fn>
  void ForEachMode(Fn&& fn) const {
    const int m0 = periodic() ? n[0] / 2 + 1 : n[0];
    Index idx = 0;
    for (int t2 = 0; t2 < n[2]; ++t2) {
      for (int t1 = 0; t1 < n[1]; ++t1) {
        for (int t0 = 0; t0 < m0; ++t0, ++idx) {
          fn(idx, Wavenumber(t0, 0), Wavenumber(t1, 1), Wavenumber(t2, 2));
        }
      }
    }
  }

  void Setup() {
    for (int d = 0; d < grid.dim; ++d) {
      if (grid.size[d] > 1) {
        n[d] = grid.size[d] + 2 * options.padding_voxels;
        offset[d] = options.padding_voxels;
      } else {
        n[d] = 1;
      }
    }
    real_size = static_cast<Index>(n[0]) * n[1] * n[2];
    int rank = 0;
    int dims[3];
    for (int d = grid.dim - 1; d >= 0; --d) dims[rank++] = n[d];  // FFTW: last dimension fastest
    const unsigned flags = options.measure ? FFTW_MEASURE : FFTW_ESTIMATE;
    InitialiseFftwThreads();
    std::lock_guard<std::mutex> lock(PlannerMutex());
    fftw_plan_with_nthreads(options.threads);
    real = fftw_alloc_real(real_size);
    if (periodic()) {
      spectral_size = static_cast<Index>(n[0] / 2 + 1) * n[1] * n[2];
      spectrum = fftw_alloc_complex(spectral_size);
      forward = fftw_plan_dft_r2c(rank, dims, real, spectrum, flags);
      backward = fftw_plan_dft_c2r(rank, dims, spectrum, real, flags);
      normalisation = static_cast<double>(real_size);
    } else {
      spectral_size = real_size;
      cosine = fftw_alloc_real(real_size);
      fftw_r2r_kind fwd[3] = {FFTW_REDFT10, FFTW_REDFT10, FFTW_REDFT10};
      fftw_r2r_kind bwd[3] = {FFTW_REDFT01, FFTW_REDFT01, FFTW_REDFT01};
      forward = fftw_plan_r2r(rank, dims, real, cosine, fwd, flags);
      backward = fftw_plan_r2r(rank, dims, cosine, real, bwd, flags);
      normalisation = 1.0;
      for (int d = 0; d < grid.dim; ++d) normalisation *= 2.0 * n[d];
    }
    if (!forward || !backward) throw InputError("FFTW could not plan the metric transforms");
    std::fill(real, real + real_size, 0.0);

    lambda.resize(spectral_size);
    symbol_k.resize(spectral_size);
    symbol_l.resize(spectral_size);
    const double period = periodic() ? 2.0 : 1.0;
    ForEachMode([&](Index idx, int k0, int k1, int k2) {
      const int k[3] = {k0, k1, k2};
      double lam = 0.0;
      for (int d = 0; d < grid.dim; ++d) {
        if (n[d] <= 1) continue;
        const double h = grid.spacing_mm[d];
        lam += (2.0 - 2.0 * std::cos(period * std::numbers::pi * k[d] / n[d])) / (h * h);
      }
      lambda[idx] = lam;
      max_lambda = std::max(max_lambda, lam);
      const double l = SymbolL(lam);
      symbol_l[idx] = l / normalisation;
      symbol_k[idx] = 1.0 / (l * normalisation);
    });
    work.resize(grid.dim * grid.voxels());
  }

  void LoadReal(const double* in) {
    const int nx = grid.size[0], ny = grid.size[1], nz = grid.dim == 3 ? grid.size[2] : 1;
    if (options.padding_voxels == 0) {
      std::memcpy(real, in, sizeof(double) * real_size);
      return;
    }
    std::fill(real, real + real_size, 0.0);
    for (int k = 0; k < nz; ++k) {
      for (int j = 0; j < ny; ++j) {
        const Index src = grid.index(0, j, k);
        const Index dst = offset[0] + static_cast<Index>(n[0]) *
                                          ((offset[1] + j) + static_cast<Index>(n[1]) * (offset[2] + k));
        std::memcpy(real + dst, in + src, sizeof(double) * nx);
      }
    }
  }

  void StoreReal(double* out) const {
    const int nx = grid.size[0], ny = grid.size[1], nz = grid.dim == 3 ? grid.size[2] : 1;
    if (options.padding_voxels == 0) {
      std::memcpy(out, real, sizeof(double) * real_size);
      return;
    }
    for (int k = 0; k < nz; ++k) {
      for (int j = 0; j < ny; ++j) {
        const Index dst = grid.index(0, j, k);
        const Index src = offset[0] + static_cast<Index>(n[0]) *
                                          ((offset[1] + j) + static_cast<Index>(n[1]) * (offset[2] + k));
        std::memcpy(out + dst, real + src, sizeof(double) * nx);
      }
    }
  }

  // out = F⁻¹ (symbol · F in) for one scalar field; in and out may alias. Without padding the
  // transforms read `in` and write `out` directly when their alignment matches the planned
  // buffers' (FFTW's new-array execute), saving two copies.
  void ApplySymbol(const double* in, const double* symbol, double* out) {
    const bool direct = options.padding_voxels == 0 &&
                        fftw_alignment_of(const_cast<double*>(in)) == fftw_alignment_of(real) &&
                        fftw_alignment_of(out) == fftw_alignment_of(real);
    // Out-of-place r2c and r2r transforms preserve their input (FFTW's default for them).
    if (direct) {
      if (periodic()) {
        fftw_execute_dft_r2c(forward, const_cast<double*>(in), spectrum);
      } else {
        fftw_execute_r2r(forward, const_cast<double*>(in), cosine);
      }
    } else {
      LoadReal(in);
      fftw_execute(forward);
    }
    if (periodic()) {
      for (Index i = 0; i < spectral_size; ++i) {
        spectrum[i][0] *= symbol[i];
        spectrum[i][1] *= symbol[i];
      }
    } else {
      for (Index i = 0; i < spectral_size; ++i) cosine[i] *= symbol[i];
    }
    if (direct) {
      if (periodic()) {
        fftw_execute_dft_c2r(backward, spectrum, out);
      } else {
        fftw_execute_r2r(backward, cosine, out);
      }
    } else {
      fftw_execute(backward);
      StoreReal(out);
    }
  }

  void ApplyField(const double* in, const double* symbol, double* out) {
    const Index n_vox = grid.voxels();
    for (int c = 0; c < grid.dim; ++c) ApplySymbol(in + c * n_vox, symbol, out + c * n_vox);
  }

  void CheckLength(Index actual, Index expected, const char* what) const {
    if (actual != expected) {
      throw InputError(std::string("MetricOperator::") + what + ": expected " +
                       std::to_string(expected) + " values, got " + std::to_string(actual));
    }
  }
};

MetricOperator::MetricOperator(const Grid& grid, const MetricOptions& options)
    : impl_(std::make_unique<Impl>()) {
  std::string error;
  if (!options.IsValid(&error)) throw InputError(error);
  if (grid.dim != 2 && grid.dim != 3) throw InputError("MetricOperator: grid must be 2-D or 3-D");
  for (int d = 0; d < 3; ++d) {
    if (grid.size[d] < 1 || !(grid.spacing_mm[d] > 0.0)) {
      throw InputError("MetricOperator: grid sizes must be >= 1 and spacings > 0");
    }
  }
  impl_->grid = grid;
  impl_->options = options;
  impl_->Setup();
}

MetricOperator::~MetricOperator() = default;
MetricOperator::MetricOperator(MetricOperator&&) noexcept = default;
MetricOperator& MetricOperator::operator=(MetricOperator&&) noexcept = default;

const Grid& MetricOperator::grid() const { return impl_->grid; }
const MetricOptions& MetricOperator::options() const { return impl_->options; }
Eigen::Index MetricOperator::field_size() const {
  return impl_->grid.dim * impl_->grid.voxels();
}

void MetricOperator::ApplyK(const Eigen::Ref<const Eigen::VectorXd>& m,
                            Eigen::Ref<Eigen::VectorXd> v) {
  impl_->CheckLength(m.size(), field_size(), "ApplyK input");
  impl_->CheckLength(v.size(), field_size(), "ApplyK output");
  impl_->ApplyField(m.data(), impl_->symbol_k.data(), v.data());
}

void MetricOperator::ApplyL(const Eigen::Ref<const Eigen::VectorXd>& v,
                            Eigen::Ref<Eigen::VectorXd> m) {
  impl_->CheckLength(v.size(), field_size(), "ApplyL input");
  impl_->CheckLength(m.size(), field_size(), "ApplyL output");
  impl_->ApplyField(v.data(), impl_->symbol_l.data(), m.data());
}

void MetricOperator::ApplyKScalar(const Eigen::Ref<const Eigen::VectorXd>& m,
                                  Eigen::Ref<Eigen::VectorXd> v) {
  impl_->CheckLength(m.size(), impl_->grid.voxels(), "ApplyKScalar input");
  impl_->CheckLength(v.size(), impl_->grid.voxels(), "ApplyKScalar output");
  impl_->ApplySymbol(m.data(), impl_->symbol_k.data(), v.data());
}

void MetricOperator::ApplyLScalar(const Eigen::Ref<const Eigen::VectorXd>& v,
                                  Eigen::Ref<Eigen::VectorXd> m) {
  impl_->CheckLength(v.size(), impl_->grid.voxels(), "ApplyLScalar input");
  impl_->CheckLength(m.size(), impl_->grid.voxels(), "ApplyLScalar output");
  impl_->ApplySymbol(v.data(), impl_->symbol_l.data(), m.data());
}

double MetricOperator::InnerProduct(const Eigen::Ref<const Eigen::VectorXd>& a,
                                    const Eigen::Ref<const Eigen::VectorXd>& b) const {
  impl_->CheckLength(b.size(), a.size(), "InnerProduct");
  return a.dot(b) * impl_->grid.voxel_volume_mm();
}

double MetricOperator::NormSquaredV(const Eigen::Ref<const Eigen::VectorXd>& v) {
  ApplyL(v, impl_->work);
  return InnerProduct(impl_->work, v);
}

double MetricOperator::DualNormSquared(const Eigen::Ref<const Eigen::VectorXd>& m) {
  ApplyK(m, impl_->work);
  return InnerProduct(impl_->work, m);
}

void MetricOperator::BandLimit(const Eigen::Ref<const Eigen::VectorXd>& field, int B,
                               Eigen::Ref<Eigen::VectorXd> out) {
  if (B < 0) throw InputError("--band-limit must be >= 0, got " + std::to_string(B));
  impl_->CheckLength(field.size(), field_size(), "BandLimit input");
  impl_->CheckLength(out.size(), field_size(), "BandLimit output");
  Impl& p = *impl_;
  if (p.mask_b != B) {
    p.mask.assign(p.spectral_size, 0.0);
    const int limit = p.periodic() ? B : 2 * B;
    p.ForEachMode([&](Index idx, int k0, int k1, int k2) {
      const bool keep = std::abs(k0) <= limit && std::abs(k1) <= limit && std::abs(k2) <= limit;
      p.mask[idx] = keep ? 1.0 / p.normalisation : 0.0;
    });
    p.mask_b = B;
  }
  p.ApplyField(field.data(), p.mask.data(), out.data());
}

double MetricOperator::SymbolL(double laplacian_eigenvalue) const {
  return impl_->SymbolL(laplacian_eigenvalue);
}

double MetricOperator::MaxLaplacianEigenvalue() const { return impl_->max_lambda; }

}  // namespace diffeoflow::registration
