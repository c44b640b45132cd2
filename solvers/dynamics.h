// The seam of diffeoflow: a right-hand side dx/dt = f(t, x; θ) and its vector–Jacobian products.
//
//   f:    dxdt = f(t, x; θ)
//   vjp:  given a, return  a_x = aᵀ ∂f/∂x  and  a_θ = aᵀ ∂f/∂θ
//
// The integrator and the adjoint never know what moves: a batch of feature vectors through a
// network (batches are rows of one state vector), or grid points through a velocity field.
// A new model is a new Dynamics; nothing in solvers/ changes for it.
//
// Rules a Dynamics keeps:
//  - f and vjp overwrite their outputs (they never accumulate), and do not allocate: workspaces
//    belong to the Dynamics and are reused.
//  - state_dim() and param_dim() are fixed for the lifetime of the object. θ is one contiguous
//    vector, the same memory odeint, the adjoint and Ceres see.
//  - Calls are not re-entrant: one Dynamics object serves one solve at a time.
//
// The replay contract: the engine (solvers/integrate.h) owns the order of the calls and keeps the
// states the backward sweep needs; a Dynamics keeps what its vjp wants from the forward
// evaluation in numbered slots, through the three members below, and needs no cache keyed by
// the state. The defaults keep nothing (f_slot is f, vjp_slot is vjp), so f and vjp alone are a
// complete Dynamics; a Dynamics overrides the three together when a vjp that reuses its forward
// evaluation is cheaper.
//  - ReserveSlots(k) comes before any f_slot / vjp_slot with a slot < k. It may allocate; f_slot
//    and vjp_slot do not.
//  - f_slot(s, t, x, θ) evaluates f and keeps under slot s what vjp at (t, x, θ) needs, replacing
//    what the slot held.
//  - vjp_slot(s, t, x, θ, a) comes after f_slot(s, t, x, θ) with the same t, the same x and θ bit
//    for bit, and no f_slot(s, …) in between; any number of f, vjp and calls with other slots may
//    come in between. It equals vjp(t, x, θ, a).
//  - Plain f and vjp neither read nor disturb the slots; a plain vjp must work with no f before it.
// What Gradient() calls, in order (N accepted steps of an s-stage method, stages i = 1 … s):
//  - kDiscrete, fixed-step method whose N·s stage states fit the tape (GradientOptions::
//    tape_slots and tape_bytes): forward, f_slot(n·s + i, stage i of step n) for every step;
//    backward, for n = N … 1, vjp_slot(n·s + i, …) for i = s … 1. One f per stage in all.
//  - kDiscrete otherwise: a forward solve of plain f; then backward, segment by segment from the
//    last checkpoint, a replay of the segment's steps with f_slot at every stage (slots numbered
//    within the segment) followed by vjp_slot at the stages in reverse, step by step. When a
//    segment's stages do not fit the tape, its boundary states are replayed with plain f first
//    and each step is then replayed with f_slot(i) (slots 0 … s − 1) just before its vjp_slots.
//  - kBacksolve: at every evaluation of the augmented system, f_slot(0, t, x) then
//    vjp_slot(0, t, x, λ) (ReserveSlots(1) first).
//  - kCheckpointed: plain f in the forward solve and the replays; plain vjp at interpolated
//    states.
#pragma once

#include <functional>

#include <Eigen/Core>

namespace diffeoflow {

using Vector = Eigen::VectorXd;
using Matrix = Eigen::MatrixXd;
using ConstVectorRef = Eigen::Ref<const Eigen::VectorXd>;
using VectorRef = Eigen::Ref<Eigen::VectorXd>;

class Dynamics {
 public:
  virtual ~Dynamics() = default;

  virtual Eigen::Index state_dim() const = 0;
  virtual Eigen::Index param_dim() const = 0;

  // dxdt = f(t, x; θ).
  virtual void f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) = 0;

  // a_x = aᵀ ∂f/∂x (size state_dim), a_theta = aᵀ ∂f/∂θ (size param_dim). Both overwritten.
  virtual void vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a,
                   VectorRef a_x, VectorRef a_theta) = 0;

  // The replay contract (above). Non-pure: the defaults keep nothing.
  virtual void ReserveSlots(int slots);
  virtual void f_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt);
  virtual void vjp_slot(int slot, double t, ConstVectorRef x, ConstVectorRef theta,
                        ConstVectorRef a, VectorRef a_x, VectorRef a_theta);

  // The engine's own arithmetic on states (the stage combinations of the discrete adjoint's
  // Runge–Kutta steps) in pieces: job(begin, end) for ranges that partition [0, state_dim()),
  // which may run at the same time on different threads (a job touches only its range). A
  // Dynamics with worker threads runs the ranges on them, so that this arithmetic is not left to
  // one thread; the default runs job(0, state_dim()) on the caller. Must not allocate.
  using RangeJob = std::function<void(Eigen::Index begin, Eigen::Index end)>;
  virtual void ForStateRanges(const RangeJob& job);

  // ∂f/∂x as a dense matrix (state_dim × state_dim) from state_dim() vjp calls with unit vectors:
  // right for the small systems forward sensitivity (ForwardSensitivity) is meant for.
  Matrix JacobianX(double t, ConstVectorRef x, ConstVectorRef theta);

 private:
  Vector unit_, row_, theta_row_;
};

}  // namespace diffeoflow
