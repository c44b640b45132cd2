// A classifier whose hidden flow is a landmark-type geodesic (geodesic shooting for networks).
//
// Training is landmark registration: the training points are carried by one diffeomorphism, the
// time-1 map of the velocity field of K control points q_k with momenta p_k,
//     v_t(x) = Σ_k k(x, q_k(t)) p_k(t),   k(x, y) = exp(−‖x − y‖²/(2W²)),
// where (q, p) follow Hamilton's equations of H = ½ Σ_kl k(q_k, q_l) p_kᵀ p_l (solvers/landmarks.h).
// The flow is a geodesic, so it is determined by its initial momenta: the free variables are only
//     θ = [p_0 (K·D) | read-out weights R (C × D, column-major) | bias b (C)],
// far fewer than the time-dependent weights of an ODE-Net. The loss is
//     L(θ) = mean_m CE(softmax(R x_m(1) + b), y_m) + κ H(q_0, p_0),
// where H(q_0, p_0) = ½ ∫₀¹ ‖v_t‖²_V dt is the kinetic energy of the flow (so a minimiser is the
// geodesic of least action that separates the classes; κ = kinetic_weight).
//
// Geometry. Inputs x ∈ ℝ² are lifted to D = 2 + augment dimensions, [x; 0] (augment = 1 by default:
// an augmented flow in the sense of Dupont et al. 2019 — the plane alone admits no diffeomorphism
// that makes concentric circles linearly separable). The control points are fixed (not trained): a
// grid × grid lattice over the training inputs' bounding box (10 % margin) in the first two
// coordinates, 0 in the augmented one. The kernel width defaults to the lattice spacing.
//
// Gradients: the engine's discrete adjoint through the fixed-step solver (CarriedPoints' VJP), so
// L-BFGS (Ceres, solvers/optimize.h) sees exact derivatives of the discrete model.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "flows/datasets.h"
#include "flows/own_data.h"
#include "solvers/integrate.h"
#include "solvers/optimize.h"

namespace diffeoflow::flows {

struct ShootingClassifierOptions {
  int augment = 1;             // extra zero coordinates; 2 + augment must be 2 or 3
  int grid = 8;                // control points: grid × grid lattice
  double kernel_width = 0.0;   // W; 0: the lattice spacing
  int steps = 5;               // fixed steps on [0, 1]
  Method solver = Method::kRk4;
  double kinetic_weight = 1e-3;  // κ
  Optimizer optimizer = Optimizer::kLbfgs;  // full batch
  int iterations = 100;
  double learning_rate = 1e-2;  // gradient descent / Adam
  double max_seconds = 0.0;     // 0: no limit
  unsigned seed = 1;            // initial read-out
  std::function<void(int iteration, double loss, double elapsed_seconds)> progress;

  void Validate() const;  // InputError naming the flag
};

// The trained model: everything needed to classify new points.
struct ShootingClassifier {
  int input_dim = 2;
  int dim = 3;                 // D = input_dim + augment
  int classes = 2;
  double kernel_width = 1.0;
  int steps = 10;
  Method solver = Method::kRk4;
  Matrix control_points;       // D × K
  Matrix momenta;              // D × K, p_0
  Matrix readout;              // C × D
  Vector bias;                 // C

  Eigen::Index num_control_points() const { return control_points.cols(); }
  Eigen::Index num_parameters() const { return momenta.size() + readout.size() + bias.size(); }
  // Logits (C × N) of inputs (input_dim × N).
  Matrix Logits(const Matrix& inputs) const;
  // The lifted points x(t) at steps + 1 equally spaced times (each D × N).
  std::vector<Matrix> Paths(const Matrix& inputs) const;
  double KineticEnergy() const;  // H(q_0, p_0)
};

struct ShootingClassifierSummary {
  double train_accuracy = 0.0;
  double test_accuracy = 0.0;
  double train_loss = 0.0;     // cross-entropy (without the kinetic term)
  double test_loss = 0.0;
  Eigen::Index parameters = 0;        // trained variables: momenta + read-out
  Eigen::Index control_points = 0;
  int iterations = 0;
  int evaluations = 0;         // loss + gradient evaluations
  double nfe_forward = 0.0;    // per evaluation, on average
  double nfe_backward = 0.0;   // vjp evaluations per evaluation, on average
  double wall_seconds = 0.0;
  double samples_per_second = 0.0;  // training samples through forward + backward per second
  double kinetic_energy = 0.0;  // H(q_0, p_0) = ½ ∫ ‖v_t‖²_V dt
  double action = 0.0;          // ∫₀¹ ‖v_t‖²_V dt = 2H
  double point_action = 0.0;    // mean over training points of ∫₀¹ ‖v_t(x_m(t))‖² dt (trapezoid)
  Termination termination_type = Termination::kIterationLimit;
  std::string termination;      // the message (metrics.json "termination")
  std::string BriefReport() const;
  std::string FullReport() const;
};

// θ = [p_0 | R | b] of a model, and back (sizes must match the model's).
Vector ShootingParameters(const ShootingClassifier& model);
void SetShootingParameters(const Vector& theta, ShootingClassifier* model);

struct ShootingLossResult {
  double loss = 0.0;           // cross_entropy + κ kinetic
  double cross_entropy = 0.0;  // mean over the data
  double kinetic = 0.0;        // H(q_0, p_0)
  Eigen::Index correct = 0;
  Vector gradient;             // ∂loss/∂θ (empty unless asked for)
  long nfe_forward = 0;
  long nfe_backward = 0;       // vjp evaluations
};
// The training loss of `model` on `data` (2-D inputs) and, when `gradient`, its derivative with
// respect to θ by the discrete adjoint.
ShootingLossResult ShootingLoss(const ShootingClassifier& model, const Dataset& data,
                                double kinetic_weight, bool gradient);

// Trains on `train` (2-D inputs), evaluates on `test`; fills `model`.
ShootingClassifierSummary TrainShootingClassifier(const Dataset& train, const Dataset& test,
                                                  const ShootingClassifierOptions& options,
                                                  ShootingClassifier* model);

// The keys `train` writes to metrics.json (train_accuracy, test_accuracy, epochs,
// samples_per_second, nfe_forward, nfe_backward, wall_seconds, parameters) and model = "shooting",
// iterations, control_points, kernel_width, kinetic_energy, action, point_action, termination.
nlohmann::json ShootingMetricsJson(const ShootingClassifierSummary& summary,
                                   const ShootingClassifier& model);

// model.h5: control_points (K, D), momenta (K, D), readout/weight (C, D), readout/bias (C), with
// attributes model = "shooting", kernel_width, steps, solver, input_dim, classes, and the data
// record /data (flows/own_data.h) when `data.source` is not empty. Atomic.
void WriteShootingClassifier(const std::string& path, const ShootingClassifier& model,
                             const DataRecord& data = {});
ShootingClassifier ReadShootingClassifier(const std::string& path);

}  // namespace diffeoflow::flows
