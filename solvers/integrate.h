// Integration of a Dynamics on [t0, t_k] through Boost.Odeint, with recording at output times,
// and the gradient of a loss L(x(t_1), …, x(t_k)) with respect to x0 and θ in three modes.
//
// Forward: Boost.Odeint's steppers (euler, modified midpoint, runge_kutta4) and its controlled
// steppers (runge_kutta_dopri5, runge_kutta_cash_karp54, runge_kutta_fehlberg78) with our error
// checker drive every forward solve. Steps are clamped so that every output time is hit exactly.
//
// Gradients (Options in, Summary out):
//  - kDiscrete: the exact derivative of the discrete solver map. The accepted steps (t_n, h_n) are
//    kept; states are kept only at checkpoints; the backward pass replays one segment at a time
//    with the method's own Butcher tableau and back-propagates through its stages:
//        x_{n+1} = x_n + h Σ b_i k_i,   k_i = f(t_n + c_i h, y_i),   y_i = x_n + h Σ_{j<i} a_ij k_j
//        k̄_i = h b_i λ + Σ_{j>i} h a_ji ȳ_j,   (ȳ_i, θ̄_i) = vjp(y_i, k̄_i),   λ_n = λ + Σ ȳ_i.
//    Step sizes are treated as constants of the map (as is usual for a discrete adjoint).
//  - kBacksolve: the continuous adjoint (Pontryagin; Chen et al. 2018). The augmented state
//    [x, λ, θ̄] is integrated backward from t_k to t0:
//        dx/dt = f,  dλ/dt = −λᵀ ∂f/∂x,  dθ̄/dt = −λᵀ ∂f/∂θ,
//    with λ jumping by ∂L/∂x(t_i) at each output time. O(1) memory in time.
//  - kCheckpointed: the same adjoint equations for (λ, θ̄), but x(t) comes from re-integrating the
//    state forward from checkpoints, one segment at a time (cubic Hermite between the accepted
//    steps of the replay), so it does not drift when the backward flow is unstable.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "solvers/dynamics.h"

namespace diffeoflow {

enum class Method { kEuler, kMidpoint, kRk4, kDopri5, kCashKarp54, kFehlberg78 };
enum class ErrorNorm { kMax, kRms };
enum class GradientMode { kDiscrete, kBacksolve, kCheckpointed };

// "euler", "midpoint", "rk4", "dopri5", "cash-karp", "fehlberg78" (and back). ParseMethod throws
// InputError naming `argument` for an unknown name.
std::string MethodName(Method m);
Method ParseMethod(const std::string& name, const std::string& argument = "--solver");
std::string GradientModeName(GradientMode m);
GradientMode ParseGradientMode(const std::string& name, const std::string& argument = "--gradient");
bool IsAdaptive(Method m);
int MethodOrder(Method m);  // order of the solution the method propagates

// The output times t_k = k / intervals, k = 0 … intervals: equal intervals of [0, 1].
std::vector<double> UniformTimes(int intervals);

struct SolverOptions {
  Method method = Method::kRk4;
  double t0 = 0.0;
  // Fixed-step methods: the number of equal steps from t0 to the last output time. Output times
  // that fall between step boundaries shorten the step that crosses them.
  int steps = 10;
  // Adaptive methods: a step is accepted when the error norm of err_i / (atol + rtol·max(|x_i|,
  // |x_i + Δx_i|)) is ≤ 1 (Hairer–Nørsett–Wanner I, II.4).
  double rtol = 1e-6;
  double atol = 1e-8;
  ErrorNorm error_norm = ErrorNorm::kRms;
  double initial_dt = 0.0;  // 0: chosen from f(t0, x0) (Hairer–Nørsett–Wanner II.4 heuristic)
  double max_dt = 0.0;      // 0: no limit
  int max_steps = 100000;   // accepted + rejected, per solve; exceeding it throws NumericalError
  // Fail with NumericalError as soon as the state holds NaN or Inf.
  bool check_finite = true;
  // Integrate() with Dopri5 only: step freely and evaluate the output times by the stepper's
  // dense output (Hairer–Nørsett–Wanner II.6, the 4th-order continuous extension) instead of
  // shortening steps to land on them. Many output times then cost no extra steps. Gradients
  // always land on the output times, so Gradient() ignores this flag.
  bool dense_output = false;

  // Throws InputError naming the offending field when the options cannot be used.
  void Validate() const;
};

struct GradientOptions {
  GradientMode mode = GradientMode::kDiscrete;
  // Tolerances of the backward (adjoint) solve for the continuous modes; ≤ 0 means "same as
  // the forward solve".
  double adjoint_rtol = 0.0;
  double adjoint_atol = 0.0;
  // Seminorm (Kidger et al. 2021): the error norm of the backward solve ignores the θ̄ part of
  // the augmented state. The x and λ parts always count.
  bool seminorm = true;
  // kDiscrete and kCheckpointed: keep the state every `checkpoint_every` accepted steps
  // (0: about √N, chosen after the forward pass). Memory is O(N / checkpoint_every + checkpoint_every).
  int checkpoint_every = 0;
  // kDiscrete: the tape, the stage states kept at once for the backward sweep, with a slot of the
  // Dynamics each (solvers/dynamics.h, the replay contract). A fixed-step solve whose stage states
  // all fit is taped in its forward pass and never replayed; otherwise each segment between
  // checkpoints is replayed once onto the tape, or step by step when it does not fit. At most
  // `tape_slots` stage evaluations and `tape_bytes` bytes of stage states, but always one step.
  int tape_slots = 64;
  double tape_bytes = 256e6;

  void Validate() const;
};

struct SolveSummary {
  long nfe_forward = 0;       // f evaluations in forward solves (including replays)
  long nfe_backward = 0;      // f evaluations during the backward pass (backsolve state, replays)
  long vjp_backward = 0;      // vjp evaluations
  long steps_accepted = 0;    // forward
  long steps_rejected = 0;    // forward
  long backward_steps_accepted = 0;
  long backward_steps_rejected = 0;
  long checkpoints = 0;       // states kept as checkpoints
  long states_held_peak = 0;  // most full states held at once (checkpoints + segment + stages)
  double wall_seconds = 0.0;
  std::string BriefReport() const;
  std::string FullReport() const;
};

// States at the output times, in order.
struct Solution {
  std::vector<double> times;
  std::vector<Vector> states;
  SolveSummary summary;
};

// Integrates dx/dt = f(t, x; θ) from options.t0 and records x at each output time (sorted,
// ≥ t0; an output time equal to t0 records x0).
Solution Integrate(Dynamics& dynamics, const Vector& x0, const Vector& theta,
                   const std::vector<double>& output_times, const SolverOptions& options);

// A loss of the recorded states: returns L and sets grads[i] = ∂L/∂x(t_i) (grads is sized to the
// number of output times with zero vectors on entry).
using TrajectoryLoss =
    std::function<double(const std::vector<Vector>& states, std::vector<Vector>& grads)>;

struct GradientResult {
  double loss = 0.0;
  Vector grad_x0;
  Vector grad_theta;
  std::vector<Vector> states;  // x at the output times (from the forward pass)
  SolveSummary summary;
};

// Memory the discrete and checkpointed gradients keep from one call to the next: the tape of stage
// states and the stages' work vectors. A loop that asks for many gradients of one problem (a
// training loop, an optimiser's iterations) passes the same workspace to every call and then
// allocates the tape once; without one, every call allocates and zeroes its own (for a
// convolutional ODE-Net batch, tens of MB a call, given back to the system and faulted in again).
// It grows to the largest problem it served and is freed with the object. One call at a time.
class GradientWorkspace {
 public:
  GradientWorkspace();
  ~GradientWorkspace();
  GradientWorkspace(GradientWorkspace&&) noexcept;
  GradientWorkspace& operator=(GradientWorkspace&&) noexcept;
  GradientWorkspace(const GradientWorkspace&) = delete;
  GradientWorkspace& operator=(const GradientWorkspace&) = delete;

  struct Storage;  // defined in integrate.cc
  Storage& storage() { return *storage_; }

 private:
  std::unique_ptr<Storage> storage_;
};

// `workspace` (optional) lends the tape and work vectors (above); the results do not depend on it.
GradientResult Gradient(Dynamics& dynamics, const Vector& x0, const Vector& theta,
                        const std::vector<double>& output_times, const TrajectoryLoss& loss,
                        const SolverOptions& options, const GradientOptions& gradient_options,
                        GradientWorkspace* workspace = nullptr);

// Forward sensitivity: integrates the variational equation dJ/dt = ∂f/∂x J, J(t0) = I, with
// the state, and returns J(t_i) = ∂x(t_i)/∂x0 at each output time. Cost: state_dim vjps per f
// (Dynamics::JacobianX).
struct SensitivitySolution {
  std::vector<double> times;
  std::vector<Vector> states;
  std::vector<Matrix> jacobians;
  SolveSummary summary;
};
SensitivitySolution ForwardSensitivity(Dynamics& dynamics, const Vector& x0, const Vector& theta,
                                       const std::vector<double>& output_times,
                                       const SolverOptions& options);

}  // namespace diffeoflow
