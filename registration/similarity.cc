#include "registration/similarity.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "solvers/errors.h"
#include "solvers/thread_pool.h"

namespace diffeoflow::registration {
namespace {

using Index = Eigen::Index;

void CheckLength(Index actual, Index expected, const char* what) {
  if (actual != expected) {
    throw InputError(std::string(what) + ": expected " + std::to_string(expected) +
                     " values, got " + std::to_string(actual));
  }
}

void CheckSigma(double sigma) {
  if (!(sigma > 0.0) || !std::isfinite(sigma)) {
    throw InputError("--sigma must be a finite number > 0, got " + std::to_string(sigma));
  }
}

}  // namespace

std::string SimilarityName(SimilarityMeasure similarity) {
  return similarity == SimilarityMeasure::kSsd ? "ssd" : "ncc";
}

SimilarityMeasure ParseSimilarity(const std::string& name, const std::string& argument) {
  if (name == "ssd") return SimilarityMeasure::kSsd;
  if (name == "ncc") return SimilarityMeasure::kLocalNcc;
  throw InputError(argument + ": unknown similarity '" + name + "' (expected ssd or ncc)");
}

std::string SimilarityName(const std::optional<SimilarityMeasure>& similarity) {
  return similarity ? SimilarityName(*similarity) : "auto";
}

std::optional<SimilarityMeasure> ParseSimilarityOrAuto(const std::string& name,
                                                       const std::string& argument) {
  if (name == "auto") return std::nullopt;
  if (name == "ssd" || name == "ncc") return ParseSimilarity(name, argument);
  throw InputError(argument + ": unknown similarity '" + name + "' (expected auto, ssd or ncc)");
}

double SumOfSquaredDifferences(const Eigen::Ref<const Eigen::VectorXd>& a,
                               const Eigen::Ref<const Eigen::VectorXd>& b) {
  CheckLength(b.size(), a.size(), "SumOfSquaredDifferences");
  return (a - b).squaredNorm();
}

double SsdEnergy(const Grid& grid, const Eigen::Ref<const Eigen::VectorXd>& warped,
                 const Eigen::Ref<const Eigen::VectorXd>& fixed, double sigma) {
  CheckSigma(sigma);
  CheckLength(warped.size(), grid.voxels(), "SsdEnergy warped image");
  CheckLength(fixed.size(), grid.voxels(), "SsdEnergy fixed image");
  return (warped - fixed).squaredNorm() * grid.voxel_volume_mm() / (sigma * sigma);
}

double SsdEnergyAndGradient(const Grid& grid, const Eigen::Ref<const Eigen::VectorXd>& warped,
                            const Eigen::Ref<const Eigen::VectorXd>& fixed, double sigma,
                            Eigen::Ref<Eigen::VectorXd> gradient) {
  CheckSigma(sigma);
  CheckLength(warped.size(), grid.voxels(), "SsdEnergy warped image");
  CheckLength(fixed.size(), grid.voxels(), "SsdEnergy fixed image");
  CheckLength(gradient.size(), grid.voxels(), "SsdEnergy gradient");
  const double scale = grid.voxel_volume_mm() / (sigma * sigma);
  double energy = 0.0;
  for (Index i = 0; i < warped.size(); ++i) {
    const double r = warped[i] - fixed[i];
    energy += r * r;
    gradient[i] = 2.0 * scale * r;
  }
  return energy * scale;
}

struct LocalNcc::Impl {
  Grid grid;
  LocalNccOptions options;
  ThreadPool* pool = nullptr;  // not owned; null: serial
  // Box sums over the windows; after the first pass they are reused for the gradient's terms.
  Eigen::VectorXd s_i, s_j, s_ii, s_jj, s_ij;
  Eigen::VectorXd scratch;                // one field for the sliding-window sums
  std::vector<std::vector<double>> lines;  // prefix sums along one line, one per range

  // In place: f[x] ← Σ_{y ∈ W(x)} f[y] (box of radius r, truncated at the borders). Along x by
  // prefix sums of each row; along y and z by a sliding window over whole rows/slices, so that the
  // inner loops run over contiguous memory. Each value is computed by one range, in the same
  // order whatever the ranges.
  void BoxSum(double* f) {
    const int r = options.radius;
    const Index n = grid.voxels();
    const int nx = grid.size[0];
    diffeoflow::ForRanges(pool, n / nx, [&](Index begin, Index end, int range) {
      double* line = lines[range].data();
      for (Index row = begin; row < end; ++row) {
        double* p = f + row * nx;
        line[0] = 0.0;
        for (int t = 0; t < nx; ++t) line[t + 1] = line[t] + p[t];
        for (int t = 0; t < nx; ++t) {
          p[t] = line[std::min(nx - 1, t + r) + 1] - line[std::max(0, t - r)];
        }
      }
    });
    double* tmp = scratch.data();
    for (int axis = 1; axis < grid.dim; ++axis) {
      const int len = grid.size[axis];
      if (len <= 1) continue;
      const Index stride = axis == 1 ? static_cast<Index>(nx) : static_cast<Index>(nx) * grid.size[1];
      const Index block = stride * len;
      // The blocks × stride lines along the axis, split over the ranges.
      diffeoflow::ForLines(pool, n / block, stride, [&](Index o, Index q0, Index q1) {
        const double* in = f + o * block;
        double* out = tmp + o * block;
        // t = 0: the sum of rows 0..min(r, len−1).
        for (Index q = q0; q < q1; ++q) out[q] = in[q];
        for (int t = 1; t <= std::min(r, len - 1); ++t) {
          const double* add = in + t * stride;
          for (Index q = q0; q < q1; ++q) out[q] += add[q];
        }
        for (int t = 1; t < len; ++t) {
          double* cur = out + t * stride;
          const double* prev = out + (t - 1) * stride;
          const bool has_add = t + r <= len - 1, has_sub = t - r - 1 >= 0;
          const double* add = in + (has_add ? t + r : 0) * stride;
          const double* sub = in + (has_sub ? t - r - 1 : 0) * stride;
          if (has_add && has_sub) {
            for (Index q = q0; q < q1; ++q) cur[q] = prev[q] + add[q] - sub[q];
          } else if (has_add) {
            for (Index q = q0; q < q1; ++q) cur[q] = prev[q] + add[q];
          } else if (has_sub) {
            for (Index q = q0; q < q1; ++q) cur[q] = prev[q] - sub[q];
          } else {
            for (Index q = q0; q < q1; ++q) cur[q] = prev[q];
          }
        }
      });
      diffeoflow::ForRanges(pool, n, [&](Index begin, Index end, int) {
        std::copy(tmp + begin, tmp + end, f + begin);
      });
    }
  }

  double WindowCount(int i, int j, int k) const {
    const int r = options.radius;
    const int c[3] = {i, j, k};
    double count = 1.0;
    for (int d = 0; d < grid.dim; ++d) {
      const int len = grid.size[d];
      count *= std::min(len - 1, c[d] + r) - std::max(0, c[d] - r) + 1;
    }
    return count;
  }

  double Evaluate(const double* I, const double* J, double* gradient) {
    const Index n = grid.voxels();
    diffeoflow::ForRanges(pool, n, [&](Index begin, Index end, int) {
      for (Index x = begin; x < end; ++x) {
        s_i[x] = I[x];
        s_j[x] = J[x];
        s_ii[x] = I[x] * I[x];
        s_jj[x] = J[x] * J[x];
        s_ij[x] = I[x] * J[x];
      }
    });
    BoxSum(s_i.data());
    BoxSum(s_j.data());
    BoxSum(s_ii.data());
    BoxSum(s_jj.data());
    BoxSum(s_ij.data());
    const double eps = options.epsilon;
    const double floor_i = options.moving_variance_floor, floor_j = options.fixed_variance_floor;
    const int nx = grid.size[0], ny = grid.size[1];
    // cc(x) goes into s_ij[x] (read only at x), summed below in a fixed order.
    diffeoflow::ForRanges(pool, n / nx, [&](Index begin, Index end, int) {
      for (Index row = begin; row < end; ++row) {
        const int j = static_cast<int>(row % ny), k = static_cast<int>(row / ny);
        for (int i = 0; i < nx; ++i) {
          const Index x = row * nx + i;
          const double count = WindowCount(i, j, k);
          const double mean_i = s_i[x] / count, mean_j = s_j[x] / count;
          const double A = s_ij[x] - s_i[x] * mean_j;
          const double B = s_ii[x] - s_i[x] * mean_i;
          const double C = s_jj[x] - s_j[x] * mean_j;
          const double C_floored = C + floor_j;
          const double denom = (B + floor_i) * C_floored + eps;
          s_ij[x] = A * A / denom;
          if (gradient) {
            const double a = 2.0 * A / denom;
            const double b = 2.0 * A * A * C_floored / (denom * denom);
            // Reuse the sums as the four fields whose box sums give the gradient.
            s_i[x] = a;
            s_j[x] = a * mean_j;
            s_ii[x] = b;
            s_jj[x] = b * mean_i;
          }
        }
      }
    });
    const double total = s_ij.sum();
    const double scale = options.weight * grid.voxel_volume_mm();
    if (gradient) {
      BoxSum(s_i.data());
      BoxSum(s_j.data());
      BoxSum(s_ii.data());
      BoxSum(s_jj.data());
      diffeoflow::ForRanges(pool, n, [&](Index begin, Index end, int) {
        for (Index y = begin; y < end; ++y) {
          gradient[y] = -scale * (J[y] * s_i[y] - s_j[y] - I[y] * s_ii[y] + s_jj[y]);
        }
      });
    }
    return -scale * total;
  }
};

LocalNcc::LocalNcc(const Grid& grid, const LocalNccOptions& options, ThreadPool* pool)
    : impl_(std::make_unique<Impl>()) {
  if (options.radius < 1) {
    throw InputError("NCC window radius must be >= 1, got " + std::to_string(options.radius));
  }
  if (!(options.epsilon > 0.0) || !std::isfinite(options.epsilon)) {
    throw InputError("NCC epsilon must be > 0, got " + std::to_string(options.epsilon));
  }
  if (!(options.moving_variance_floor >= 0.0) || !std::isfinite(options.moving_variance_floor) ||
      !(options.fixed_variance_floor >= 0.0) || !std::isfinite(options.fixed_variance_floor)) {
    throw InputError("NCC variance floors must be finite and >= 0");
  }
  if (!(options.weight > 0.0) || !std::isfinite(options.weight)) {
    throw InputError("NCC weight must be > 0, got " + std::to_string(options.weight));
  }
  impl_->grid = grid;
  impl_->options = options;
  const Index n = grid.voxels();
  impl_->s_i.resize(n);
  impl_->s_j.resize(n);
  impl_->s_ii.resize(n);
  impl_->s_jj.resize(n);
  impl_->s_ij.resize(n);
  impl_->scratch.resize(n);
  impl_->pool = pool;
  impl_->lines.assign(pool != nullptr ? pool->threads() : 1,
                      std::vector<double>(static_cast<std::size_t>(grid.size[0]) + 1));
}

LocalNcc::~LocalNcc() = default;
LocalNcc::LocalNcc(LocalNcc&&) noexcept = default;
LocalNcc& LocalNcc::operator=(LocalNcc&&) noexcept = default;

double LocalNcc::Energy(const Eigen::Ref<const Eigen::VectorXd>& warped,
                        const Eigen::Ref<const Eigen::VectorXd>& fixed) {
  CheckLength(warped.size(), impl_->grid.voxels(), "LocalNcc warped image");
  CheckLength(fixed.size(), impl_->grid.voxels(), "LocalNcc fixed image");
  return impl_->Evaluate(warped.data(), fixed.data(), nullptr);
}

double LocalNcc::EnergyAndGradient(const Eigen::Ref<const Eigen::VectorXd>& warped,
                                   const Eigen::Ref<const Eigen::VectorXd>& fixed,
                                   Eigen::Ref<Eigen::VectorXd> gradient) {
  CheckLength(warped.size(), impl_->grid.voxels(), "LocalNcc warped image");
  CheckLength(fixed.size(), impl_->grid.voxels(), "LocalNcc fixed image");
  CheckLength(gradient.size(), impl_->grid.voxels(), "LocalNcc gradient");
  return impl_->Evaluate(warped.data(), fixed.data(), gradient.data());
}

}  // namespace diffeoflow::registration
