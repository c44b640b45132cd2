// The mesh → image map of the flows (separable passes) against the multilinear stencil it
// stands for, its transpose, and the data term's loops on a thread pool: the same bits for any
// thread count.
#include <gtest/gtest.h>

#include <random>

#include "registration/flow_problem.h"
#include "solvers/thread_pool.h"

namespace diffeoflow::registration {
namespace {

// An image grid and a coarser mesh over the same extent (another ratio on every axis, sizes
// that do not divide).
struct MeshAndImage {
  Grid mesh, image;
};

MeshAndImage Grids(int dim) {
  MeshAndImage g;
  g.image.dim = g.mesh.dim = dim;
  g.image.size = dim == 2 ? std::array<int, 3>{20, 13, 1} : std::array<int, 3>{20, 13, 9};
  g.mesh.size = dim == 2 ? std::array<int, 3>{7, 5, 1} : std::array<int, 3>{7, 5, 4};
  g.image.spacing_mm = {0.8, 1.3, 2.0};
  for (int a = 0; a < 3; ++a) {
    g.mesh.spacing_mm[a] = g.image.spacing_mm[a] * g.image.size[a] / g.mesh.size[a];
  }
  return g;
}

Eigen::VectorXd Jittered(const Grid& grid, double amplitude, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(-amplitude, amplitude);
  Eigen::VectorXd q = IdentityPositions(grid);
  for (Eigen::Index i = 0; i < q.size(); ++i) q[i] += u(rng);
  return q;
}

Eigen::VectorXd Random(Eigen::Index n, std::mt19937& rng) {
  std::normal_distribution<double> normal;
  Eigen::VectorXd v(n);
  for (Eigen::Index i = 0; i < n; ++i) v[i] = normal(rng);
  return v;
}

// The image positions by the definition in flow_problem.h: each voxel's displacement sampled
// from the mesh by the clamped multilinear stencil at its physical position, in voxel units.
template <int D>
Eigen::VectorXd PositionsByStencil(const MeshAndImage& g, const Eigen::VectorXd& mesh_q) {
  const Eigen::Index n = g.image.voxels(), nm = g.mesh.voxels();
  const Eigen::VectorXd mesh_id = IdentityPositions(g.mesh);
  const Eigen::VectorXd image_id = IdentityPositions(g.image);
  Eigen::VectorXd out(D * n);
  MultilinearStencil<D> s;
  for (Eigen::Index i = 0; i < n; ++i) {
    double x[D];
    double ratio[D];
    for (int a = 0; a < D; ++a) {
      ratio[a] = g.mesh.spacing_mm[a] / g.image.spacing_mm[a];
      x[a] = (image_id[a * n + i] + 0.5) / ratio[a] - 0.5;
    }
    s.Set(g.mesh.size, x, true);
    for (int c = 0; c < D; ++c) {
      double u = 0.0;
      for (int t = 0; t < MultilinearStencil<D>::kCorners; ++t) {
        if (s.index[t] < 0) continue;
        u += s.weight[t] * (mesh_q[c * nm + s.index[t]] - mesh_id[c * nm + s.index[t]]);
      }
      out[c * n + i] = image_id[c * n + i] + ratio[c] * u;
    }
  }
  return out;
}

class MeshToImageMapTest : public ::testing::TestWithParam<int> {};

TEST_P(MeshToImageMapTest, PositionsAreTheStencilsInterpolation) {
  const int dim = GetParam();
  const MeshAndImage g = Grids(dim);
  std::mt19937 rng(5);
  // Displacements up to 3 mesh voxels: image voxels read every cell, and the border clamps.
  const Eigen::VectorXd q = Jittered(g.mesh, 3.0, rng);
  const MeshToImageMap map(g.mesh, g.image);
  Eigen::VectorXd positions;
  map.Positions(q, &positions);
  const Eigen::VectorXd expected =
      dim == 2 ? PositionsByStencil<2>(g, q) : PositionsByStencil<3>(g, q);
  ASSERT_EQ(positions.size(), expected.size());
  EXPECT_LT((positions - expected).lpNorm<Eigen::Infinity>(), 1e-12);
  // Interpolate uses the same weights, without the identity and the ratio.
  const Eigen::VectorXd field = Random(dim * g.mesh.voxels(), rng);
  const Eigen::VectorXd mesh_id = IdentityPositions(g.mesh);
  const Eigen::VectorXd image_id = IdentityPositions(g.image);
  Eigen::VectorXd through_positions;
  map.Positions(mesh_id + field, &through_positions);
  const Eigen::VectorXd interpolated = map.Interpolate(field);
  const Eigen::Index n = g.image.voxels();
  for (int c = 0; c < dim; ++c) {
    const double ratio = g.mesh.spacing_mm[c] / g.image.spacing_mm[c];
    EXPECT_LT(((through_positions - image_id).segment(c * n, n) -
               ratio * interpolated.segment(c * n, n))
                  .lpNorm<Eigen::Infinity>(),
              1e-12);
  }
}

TEST_P(MeshToImageMapTest, PullBackIsTheTransposeOfPositions) {
  const int dim = GetParam();
  const MeshAndImage g = Grids(dim);
  std::mt19937 rng(6);
  const MeshToImageMap map(g.mesh, g.image);
  const Eigen::VectorXd mesh_id = IdentityPositions(g.mesh);
  const Eigen::VectorXd image_id = IdentityPositions(g.image);
  for (int repeat = 0; repeat < 3; ++repeat) {
    const Eigen::VectorXd u = Random(dim * g.mesh.voxels(), rng);
    const Eigen::VectorXd w = Random(dim * g.image.voxels(), rng);
    Eigen::VectorXd positions, pulled;
    map.Positions(mesh_id + u, &positions);
    map.PullBack(w, &pulled);
    const double lhs = (positions - image_id).dot(w);  // ⟨P u, w⟩
    const double rhs = u.dot(pulled);                  // ⟨u, Pᵀ w⟩
    EXPECT_NEAR(lhs, rhs, 1e-12 * (std::abs(lhs) + u.norm() * pulled.norm()));
  }
}

TEST_P(MeshToImageMapTest, SameBitsOnAnyPool) {
  const int dim = GetParam();
  const MeshAndImage g = Grids(dim);
  std::mt19937 rng(7);
  const MeshToImageMap map(g.mesh, g.image);
  const Eigen::VectorXd q = Jittered(g.mesh, 2.0, rng);
  const Eigen::VectorXd w = Random(dim * g.image.voxels(), rng);
  Eigen::VectorXd positions, pulled;
  map.Positions(q, &positions);
  map.PullBack(w, &pulled);
  for (int threads : {2, 3, 5}) {
    ThreadPool pool(threads);
    Eigen::VectorXd p, b;
    map.Positions(q, &p, &pool);
    map.PullBack(w, &b, &pool);
    EXPECT_TRUE(p == positions) << threads << " threads";
    EXPECT_TRUE(b == pulled) << threads << " threads";
  }
}

INSTANTIATE_TEST_SUITE_P(Dimensions, MeshToImageMapTest, ::testing::Values(2, 3),
                         [](const auto& info) { return std::to_string(info.param) + "d"; });

// The data term on 1, 2 and 3 threads: D, the SSD and ∂D/∂q are the same bits, for both
// similarities, on the fixed grid and read through the world, on a mesh coarser than the image.
struct DataTermCase {
  SimilarityMeasure similarity;
  bool through_world;
};

class DataTermThreads : public ::testing::TestWithParam<DataTermCase> {};

TEST_P(DataTermThreads, SameBitsForAnyThreadCount) {
  // 40³ = 64000 voxels: three ranges of at least 16384 (DataTerm's threshold).
  Grid image;
  image.dim = 3;
  image.size = {40, 40, 40};
  image.spacing_mm = {1.5, 1.5, 1.5};
  Grid mesh = image;
  mesh.size = {10, 10, 10};
  mesh.spacing_mm = {6.0, 6.0, 6.0};
  Image fixed{image, Eigen::VectorXd(image.voxels())};
  Image moving = fixed;
  for (int k = 0; k < 40; ++k) {
    for (int j = 0; j < 40; ++j) {
      for (int i = 0; i < 40; ++i) {
        const double x = i - 19.5, y = j - 20.0, z = k - 18.0;
        fixed.data[image.index(i, j, k)] = std::exp(-(x * x + y * y + 0.5 * z * z) / 150.0);
        moving.data[image.index(i, j, k)] =
            0.3 + 2.0 * std::exp(-((x - 2) * (x - 2) + y * y + z * z) / 120.0);
      }
    }
  }
  FlowProblemOptions options;
  options.sigma = 0.05;
  options.similarity = GetParam().similarity;
  if (GetParam().through_world) {
    options.moving_world_affine.topRightCorner<3, 1>() = Eigen::Vector3d(1.2, -0.7, 0.4);
  }
  const MeshToImageMap map(mesh, image);
  std::mt19937 rng(8);
  const Eigen::VectorXd q = Jittered(mesh, 0.8, rng);

  double value[3], ssd[3];
  Eigen::VectorXd gradient[3];
  for (int threads = 1; threads <= 3; ++threads) {
    options.threads = threads;
    DataTerm term(moving, fixed, options);
    value[threads - 1] = term.Evaluate(map, q, &gradient[threads - 1], &ssd[threads - 1]);
    // Without the gradient: the same value.
    EXPECT_EQ(term.Evaluate(map, q, nullptr, nullptr), value[threads - 1]);
  }
  EXPECT_GT(value[0], 0.0);
  for (int t = 1; t < 3; ++t) {
    EXPECT_EQ(value[t], value[0]) << t + 1 << " threads";
    EXPECT_EQ(ssd[t], ssd[0]) << t + 1 << " threads";
    EXPECT_TRUE(gradient[t] == gradient[0]) << t + 1 << " threads";
  }
  EXPECT_GT(gradient[0].norm(), 0.0);
}

INSTANTIATE_TEST_SUITE_P(
    Similarities, DataTermThreads,
    ::testing::Values(DataTermCase{SimilarityMeasure::kSsd, false},
                      DataTermCase{SimilarityMeasure::kLocalNcc, false},
                      DataTermCase{SimilarityMeasure::kSsd, true},
                      DataTermCase{SimilarityMeasure::kLocalNcc, true}),
    [](const auto& info) {
      return SimilarityName(info.param.similarity) +
             (info.param.through_world ? "_through_world" : "_on_grid");
    });

}  // namespace
}  // namespace diffeoflow::registration
