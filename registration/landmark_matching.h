// Landmark LDDMM matching: find the flow of diffeomorphisms that carries source landmarks q_0 to
// target landmarks y, with the Gaussian kernel and width convention of solvers/landmarks.h.
//
// Energy (both methods, same kernel, same data term):
//     E = ½ ∫₀¹ ‖v_t‖²_V dt + D(q(1)),   v_t(x) = Σ_j k(x, q_j(t)) p_j(t)
//     D = ‖q(1) − y‖² / (2σ²)             (inexact matching, σ > 0)
//     D = 0 subject to q(1) = y           (exact matching, σ = 0, the default)
//
// Methods.
//  - kShooting (geodesic shooting; Vialard & Risser; Younes 2010 ch. 12). The optimal path is the
//    Hamiltonian geodesic of solvers/landmarks.h, so only p_0 (N d numbers) is free and
//    ½∫‖v_t‖²_V = H(q_0, p_0) = ½ p_0ᵀ K(q_0) p_0. Solved by Ceres Levenberg–Marquardt
//    (ceres::Problem, dense QR) on the residuals
//        r = q(1; p_0) − y                              (exact)
//        r = [ Lᵀ p_0 ;  (q(1; p_0) − y)/σ ],  K(q_0) = L Lᵀ (Cholesky)   (inexact, ½‖r‖² = E)
//    with the Jacobian ∂q(1)/∂p_0 from the engine: ForwardSensitivity (one forward solve of the
//    variational equation) or the discrete adjoint (one Gradient per residual). Or by L-BFGS on E
//    (solvers/optimize.h), with the augmented Lagrangian below for exact matching.
//  - kLddmm (gradient descent on time-dependent momenta; Beg, Miller, Trouvé & Younes, IJCV 61,
//    2005, in landmark form): θ = p(t) at T nodes (TimeDependentLandmarkFlow), the kinetic energy
//    accumulated along the flow, the gradient of E by the engine's discrete adjoint, minimised by
//    Minimize (L-BFGS by default, or gradient descent / Adam). Exact matching uses the augmented
//    Lagrangian (Nocedal & Wright, Numerical Optimization, §17.3):
//        L_A(θ; λ, μ) = ½∫‖v‖² + λᵀ r + (μ/2)‖r‖²,   λ ← λ + μ r after each inner solve,
//        μ ← 10 μ when ‖r‖ fell by less than a factor 4.
// Both start from p = 0 and integrate with the same fixed-step method and `steps`.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "solvers/integrate.h"
#include "solvers/landmarks.h"
#include "solvers/optimize.h"

namespace diffeoflow::registration {

enum class LandmarkMethod { kShooting, kLddmm };
std::string LandmarkMethodName(LandmarkMethod method);  // "shooting", "lddmm"
LandmarkMethod ParseLandmarkMethod(const std::string& name,
                                   const std::string& argument = "--method");

enum class ShootingSolver { kLevenbergMarquardt, kLbfgs };
enum class ShootingJacobian { kForwardSensitivity, kAdjoint };

struct LandmarkProgress {
  int iteration = 0;
  double energy = 0.0;        // the objective being minimised
  double residual_rms = 0.0;  // √(‖q(1) − y‖² / N)
  double elapsed_seconds = 0.0;
};

struct LandmarkMatchingOptions {
  LandmarkMethod method = LandmarkMethod::kShooting;
  // Gaussian standard deviation W of the kernel, in landmark units. 0: automatic,
  // the diameter of the source shape / 8 (diameter: largest distance between two source landmarks).
  double kernel_width = 0.0;
  // σ of the data term; 0: exact matching.
  double sigma = 0.0;
  // Fixed time steps of the flow on [0, 1]; the path is recorded at every step.
  int steps = 10;
  Method solver = Method::kRk4;  // a fixed-step method: euler, midpoint or rk4
  // Exact matching stops when the residual rms falls to this (landmark units).
  double residual_tolerance = 1e-5;
  int max_iterations = 100;      // shooting: LM / L-BFGS iterations
  double max_seconds = 0.0;      // 0: no limit

  // Shooting.
  ShootingSolver shooting_solver = ShootingSolver::kLevenbergMarquardt;
  ShootingJacobian jacobian = ShootingJacobian::kAdjoint;

  // LDDMM (time-dependent momenta).
  int time_points = 0;  // T nodes of p(t); 0: steps + 1
  MomentumInterpolation interpolation = MomentumInterpolation::kLinear;
  Optimizer optimizer = Optimizer::kLbfgs;
  int max_inner_iterations = 300;   // per augmented-Lagrangian round (or in all, when σ > 0)
  int max_outer_iterations = 30;    // augmented-Lagrangian rounds
  double penalty = 100.0;           // initial μ (dimensionless: E and ‖r‖² share units)
  double learning_rate = 1e-2;      // gradient descent / Adam

  std::function<void(const LandmarkProgress&)> progress;

  // Throws InputError naming the command-line flag of the first invalid field.
  void Validate() const;
};

struct LandmarkMatchingResult {
  LandmarkMethod method = LandmarkMethod::kShooting;
  int dim = 2;
  double kernel_width = 0.0;  // the width used
  Matrix source, target;      // N × d
  std::vector<double> times;  // steps + 1
  std::vector<Vector> positions;  // q(t_k), packed (N d)
  std::vector<Vector> momenta;    // p(t_k), packed (N d)
  Vector parameters;              // the free variables: p_0 (shooting) or θ (lddmm)
  double residual_rms = 0.0;      // √(Σ_i ‖q_i(1) − y_i‖² / N)
  double kinetic_energy = 0.0;    // ½ ∫₀¹ ‖v_t‖²_V dt
  double data_term = 0.0;         // ‖q(1) − y‖² / (2σ²) (0 for exact matching)
  std::vector<double> velocity_norm_per_time;  // ‖v_{t_k}‖_V = √(p(t_k)ᵀ K(q(t_k)) p(t_k))
  int iterations = 0;
  int evaluations = 0;            // forward solves (with or without a gradient / Jacobian)
  double wall_seconds = 0.0;
  std::vector<double> loss_history;    // objective after each iteration
  std::vector<double> residual_history;  // residual rms after each iteration
  Termination termination_type = Termination::kIterationLimit;
  std::string termination;        // the message (metrics.json "termination")
  bool converged = false;
  LandmarkMatchingOptions options;

  long num_parameters() const { return parameters.size(); }
  std::string BriefReport() const;
  std::string FullReport() const;
};

// source and target: N × d (d = 2 or 3), rows are landmarks. Throws InputError for mismatched
// shapes, non-finite coordinates or invalid options.
LandmarkMatchingResult MatchLandmarks(const Matrix& source, const Matrix& target,
                                      const LandmarkMatchingOptions& options);

// Carries arbitrary points (rows of `points`, M × d) along the matched flow; returns their
// positions at every recorded time (each M × d).
std::vector<Matrix> CarryAlongMatch(const LandmarkMatchingResult& result, const Matrix& points);

}  // namespace diffeoflow::registration
