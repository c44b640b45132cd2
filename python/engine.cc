// The ODE engine from Python: a pybind11 trampoline turns a Python subclass of
// `diffeoflow.Dynamics` into a solvers/dynamics.h Dynamics, and integrate() / gradient() run
// solvers/integrate.h on it with the GIL released; each f / vjp call takes the GIL back to run the
// Python method. An exception raised by a Python method (KeyboardInterrupt from Ctrl-C included:
// Python's own handler runs inside the callbacks) unwinds the solve and reaches the caller as
// itself.
#include "python/engine.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "solvers/dynamics.h"
#include "solvers/errors.h"
#include "solvers/integrate.h"

namespace py = pybind11;

namespace diffeoflow::python {
namespace {

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;

std::string TypeName(const py::handle& value) {
  return py::str(py::type::of(value).attr("__name__"));
}

std::string ShapeText(const py::array& a) {
  std::string out = "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    out += std::to_string(a.shape(d)) + (a.ndim() == 1 ? "," : d + 1 < a.ndim() ? ", " : "");
  }
  return out + ")";
}

// A real-valued array-like as float64 (C order); TypeError naming `argument` otherwise.
DoubleArray RealArray(const py::handle& value, const std::string& argument) {
  const py::array raw = py::array::ensure(value);
  const char kind = raw ? raw.dtype().kind() : 'O';
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b') {
    throw py::type_error(argument + ": expected a real-valued array, got " + TypeName(value));
  }
  return DoubleArray::ensure(raw);
}

// A 1-D real array-like (or None: empty when `none_is_empty`) as a vector.
Vector ToVector(const py::handle& value, const std::string& argument, bool none_is_empty = false) {
  if (none_is_empty && value.is_none()) return Vector();
  const DoubleArray a = RealArray(value, argument);
  if (a.ndim() != 1) {
    throw InputError(argument + ": expected a 1-D array, got shape " + ShapeText(a));
  }
  return Eigen::Map<const Vector>(a.data(), a.shape(0));
}

py::array_t<double> ToArray(ConstVectorRef v) {
  py::array_t<double> out(v.size());
  std::copy(v.data(), v.data() + v.size(), out.mutable_data());
  return out;
}

// `states` (k vectors of size n) as a C-ordered k × n array.
py::array_t<double> StatesToArray(const std::vector<Vector>& states, Eigen::Index n) {
  py::array_t<double> out({static_cast<py::ssize_t>(states.size()), static_cast<py::ssize_t>(n)});
  double* p = out.mutable_data();
  for (const Vector& s : states) p = std::copy(s.data(), s.data() + n, p);
  return out;
}

// Copies what a Python method returned into `out`: a 1-D array-like of out.size() numbers.
void CopyReturned(const py::handle& value, const std::string& what, VectorRef out) {
  const DoubleArray a = RealArray(value, what);
  if (a.ndim() != 1 || a.shape(0) != out.size()) {
    throw InputError(what + ": expected shape (" + std::to_string(out.size()) + ",), got " +
                     ShapeText(a));
  }
  std::copy(a.data(), a.data() + out.size(), out.data());
}

[[noreturn]] void NotDefined(const char* signature) {
  PyErr_SetString(PyExc_NotImplementedError,
                  (std::string("diffeoflow.Dynamics subclasses define ") + signature).c_str());
  throw py::error_already_set();
}

// A Dynamics whose f and vjp are methods of a Python object (the trampoline below). Python sees
// copies of x, θ and a (a method may keep them) and returns new arrays, which are copied out.
class PythonDynamics : public Dynamics {
 public:
  PythonDynamics(Eigen::Index state_dim, Eigen::Index param_dim)
      : state_dim_(state_dim), param_dim_(param_dim) {
    if (state_dim < 1) throw InputError("state_dim must be >= 1, got " + std::to_string(state_dim));
    if (param_dim < 0) throw InputError("param_dim must be >= 0, got " + std::to_string(param_dim));
  }

  Eigen::Index state_dim() const override { return state_dim_; }
  Eigen::Index param_dim() const override { return param_dim_; }

  // What a Python subclass defines (as f and vjp).
  virtual py::object Field(double, py::array_t<double>, py::array_t<double>) {
    NotDefined("f(t, x, theta) -> dx/dt");
  }
  virtual py::object Vjp(double, py::array_t<double>, py::array_t<double>, py::array_t<double>) {
    NotDefined("vjp(t, x, theta, a) -> (a @ df/dx, a @ df/dtheta)");
  }

  void f(double t, ConstVectorRef x, ConstVectorRef theta, VectorRef dxdt) override {
    py::gil_scoped_acquire gil;
    CopyReturned(Field(t, ToArray(x), ToArray(theta)), "Dynamics.f", dxdt);
  }

  void vjp(double t, ConstVectorRef x, ConstVectorRef theta, ConstVectorRef a, VectorRef a_x,
           VectorRef a_theta) override {
    py::gil_scoped_acquire gil;
    const py::object out = Vjp(t, ToArray(x), ToArray(theta), ToArray(a));
    if (!py::isinstance<py::tuple>(out) || py::len(out) != 2) {
      throw py::type_error("Dynamics.vjp: expected a tuple (a_x, a_theta), got " + TypeName(out));
    }
    const py::tuple pair = out.cast<py::tuple>();
    CopyReturned(pair[0], "Dynamics.vjp a_x", a_x);
    CopyReturned(pair[1], "Dynamics.vjp a_theta", a_theta);
  }

 private:
  Eigen::Index state_dim_, param_dim_;
};

class PythonDynamicsTrampoline : public PythonDynamics {
 public:
  using PythonDynamics::PythonDynamics;
  py::object Field(double t, py::array_t<double> x, py::array_t<double> theta) override {
    PYBIND11_OVERRIDE_NAME(py::object, PythonDynamics, "f", Field, t, x, theta);
  }
  py::object Vjp(double t, py::array_t<double> x, py::array_t<double> theta,
                 py::array_t<double> a) override {
    PYBIND11_OVERRIDE_NAME(py::object, PythonDynamics, "vjp", Vjp, t, x, theta, a);
  }
};

// The solver keywords shared by integrate() and gradient().
struct SolverArguments {
  std::string solver;
  int steps;
  double rtol, atol, t0;
  int max_steps;

  SolverOptions Resolve() const {
    SolverOptions options;
    options.method = ParseMethod(solver, "solver");
    options.steps = steps;
    options.rtol = rtol;
    options.atol = atol;
    options.t0 = t0;
    options.max_steps = max_steps;
    options.Validate();
    return options;
  }
};

// x0, theta and the output times of integrate() and gradient().
struct InitialValueProblem {
  Vector x0, theta;
  std::vector<double> times;

  InitialValueProblem(const py::handle& x, const py::handle& p, const py::handle& t)
      : x0(ToVector(x, "x0")), theta(ToVector(p, "theta", true)) {
    const Vector v = ToVector(t, "times");
    times.assign(v.data(), v.data() + v.size());
  }
};

py::tuple RunIntegrate(PythonDynamics& dynamics, const py::object& x0, const py::object& theta,
                       const py::object& times, const std::string& solver, int steps,
                       double rtol, double atol, double t0, int max_steps, bool dense_output) {
  SolverOptions options = SolverArguments{solver, steps, rtol, atol, t0, max_steps}.Resolve();
  options.dense_output = dense_output;
  const InitialValueProblem problem(x0, theta, times);
  Solution solution;
  {
    py::gil_scoped_release release;
    solution = Integrate(dynamics, problem.x0, problem.theta, problem.times, options);
  }
  return py::make_tuple(StatesToArray(solution.states, dynamics.state_dim()), solution.summary);
}

// The loss of gradient(): L = Σ_i g_i · x(t_i) for an array g of ∂L/∂x(t_i), or a Python
// callable states -> (L, g).
TrajectoryLoss LossFrom(const py::object& loss_gradients, std::size_t times, Eigen::Index n) {
  if (PyCallable_Check(loss_gradients.ptr())) {
    return [loss_gradients, n](const std::vector<Vector>& states, std::vector<Vector>& grads) {
      py::gil_scoped_acquire gil;
      const py::object out = loss_gradients(StatesToArray(states, n));
      if (!py::isinstance<py::tuple>(out) || py::len(out) != 2) {
        throw py::type_error("loss_gradients: a callable returns (loss, gradients), got " +
                             TypeName(out));
      }
      const py::tuple pair = out.cast<py::tuple>();
      const DoubleArray g = RealArray(pair[1], "loss_gradients");
      if (g.ndim() != 2 || g.shape(0) != static_cast<py::ssize_t>(grads.size()) ||
          g.shape(1) != n) {
        throw InputError("loss_gradients: the callable's gradients have shape " + ShapeText(g) +
                         ", expected (" + std::to_string(grads.size()) + ", " +
                         std::to_string(n) + ")");
      }
      for (std::size_t i = 0; i < grads.size(); ++i) {
        grads[i] = Eigen::Map<const Vector>(g.data() + i * n, n);
      }
      return pair[0].cast<double>();
    };
  }
  const DoubleArray g = RealArray(loss_gradients, "loss_gradients");
  if (g.ndim() != 2 || g.shape(0) != static_cast<py::ssize_t>(times) || g.shape(1) != n) {
    throw InputError("loss_gradients: expected shape (" + std::to_string(times) + ", " +
                     std::to_string(n) + ") (one row a time), got " + ShapeText(g));
  }
  std::vector<Vector> rows;
  for (std::size_t i = 0; i < times; ++i) {
    rows.emplace_back(Eigen::Map<const Vector>(g.data() + i * n, n));
  }
  return [rows = std::move(rows)](const std::vector<Vector>& states, std::vector<Vector>& grads) {
    double loss = 0.0;
    for (std::size_t i = 0; i < states.size(); ++i) {
      grads[i] = rows[i];
      loss += rows[i].dot(states[i]);
    }
    return loss;
  };
}

py::tuple RunGradient(PythonDynamics& dynamics, const py::object& x0, const py::object& theta,
                      const py::object& times, const py::object& loss_gradients,
                      const std::string& mode, const std::string& solver, int steps, double rtol,
                      double atol, double t0, int max_steps, double adjoint_rtol,
                      double adjoint_atol, int checkpoint_every, bool seminorm) {
  const SolverOptions options = SolverArguments{solver, steps, rtol, atol, t0, max_steps}.Resolve();
  GradientOptions gradient_options;
  gradient_options.mode = ParseGradientMode(mode, "mode");
  gradient_options.adjoint_rtol = adjoint_rtol;
  gradient_options.adjoint_atol = adjoint_atol;
  gradient_options.checkpoint_every = checkpoint_every;
  gradient_options.seminorm = seminorm;
  gradient_options.Validate();
  const InitialValueProblem problem(x0, theta, times);
  const TrajectoryLoss loss =
      LossFrom(loss_gradients, problem.times.size(), dynamics.state_dim());
  GradientResult result;
  {
    py::gil_scoped_release release;
    result = Gradient(dynamics, problem.x0, problem.theta, problem.times, loss, options,
                      gradient_options);
  }
  return py::make_tuple(ToArray(result.grad_x0), ToArray(result.grad_theta), result.summary);
}

}  // namespace

void BindEngine(py::module_& m) {
  py::class_<SolveSummary>(
      m, "Summary",
      "What a solve counted (solvers/integrate.h SolveSummary): f and vjp evaluations, steps\n"
      "accepted and rejected forward and backward, checkpoints, states held, wall time.")
      .def_readonly("nfe_forward", &SolveSummary::nfe_forward,
                    "f evaluations in forward solves (replays included)")
      .def_readonly("nfe_backward", &SolveSummary::nfe_backward,
                    "f evaluations during the backward pass")
      .def_readonly("vjp_backward", &SolveSummary::vjp_backward, "vjp evaluations")
      .def_readonly("steps_accepted", &SolveSummary::steps_accepted, "forward steps accepted")
      .def_readonly("steps_rejected", &SolveSummary::steps_rejected, "forward steps rejected")
      .def_readonly("backward_steps_accepted", &SolveSummary::backward_steps_accepted)
      .def_readonly("backward_steps_rejected", &SolveSummary::backward_steps_rejected)
      .def_readonly("checkpoints", &SolveSummary::checkpoints, "states kept as checkpoints")
      .def_readonly("states_held_peak", &SolveSummary::states_held_peak,
                    "most full states held at once")
      .def_readonly("wall_seconds", &SolveSummary::wall_seconds)
      .def_property_readonly(
          "nfe", [](const SolveSummary& s) { return s.nfe_forward + s.nfe_backward; },
          "f evaluations in all (nfe_forward + nfe_backward)")
      .def("brief_report", &SolveSummary::BriefReport)
      .def("full_report", &SolveSummary::FullReport)
      .def("__repr__", [](const SolveSummary& s) {
        return "<diffeoflow.Summary " + s.BriefReport() + ">";
      });

  py::class_<PythonDynamics, PythonDynamicsTrampoline>(
      m, "Dynamics",
      "Dynamics(state_dim, param_dim): a right-hand side dx/dt = f(t, x; theta) defined in\n"
      "Python, for integrate() and gradient(). A subclass calls\n"
      "super().__init__(state_dim, param_dim) and defines\n\n"
      "    f(t, x, theta) -> dx/dt                         (arrays of state_dim)\n"
      "    vjp(t, x, theta, a) -> (a @ df/dx, a @ df/dtheta)  (state_dim, param_dim)\n\n"
      "x, theta and a are float64 copies (a method may keep them); the returned values are any\n"
      "1-D array-likes of the right sizes (ValueError otherwise). vjp is needed by gradient()\n"
      "only. An exception a method raises stops the solve and reaches the caller.")
      .def(py::init<Eigen::Index, Eigen::Index>(), py::arg("state_dim"), py::arg("param_dim"))
      .def_property_readonly("state_dim", &PythonDynamics::state_dim)
      .def_property_readonly("param_dim", &PythonDynamics::param_dim)
      .def("f", &PythonDynamics::Field, py::arg("t"), py::arg("x"), py::arg("theta"),
           "f(t, x, theta) -> dx/dt: defined by subclasses.")
      .def("vjp", &PythonDynamics::Vjp, py::arg("t"), py::arg("x"), py::arg("theta"),
           py::arg("a"),
           "vjp(t, x, theta, a) -> (a_x, a_theta) with a_x = a @ df/dx, a_theta = a @ df/dtheta:\n"
           "defined by subclasses.");

  const SolverOptions defaults;
  const GradientOptions gradient_defaults;
  m.def("integrate", &RunIntegrate, py::arg("dynamics"), py::arg("x0"), py::arg("theta"),
        py::arg("times"), py::kw_only(), py::arg("solver") = MethodName(defaults.method),
        py::arg("steps") = defaults.steps, py::arg("rtol") = defaults.rtol,
        py::arg("atol") = defaults.atol, py::arg("t0") = defaults.t0,
        py::arg("max_steps") = defaults.max_steps,
        py::arg("dense_output") = defaults.dense_output,
        "integrate(dynamics, x0, theta, times, *, solver='rk4', steps=10, rtol=1e-6, atol=1e-8,\n"
        "t0=0.0, max_steps=100000, dense_output=False) -> (states, Summary)\n\n"
        "Integrates dx/dt = dynamics.f(t, x, theta) from x(t0) = x0 and returns x at each of\n"
        "`times` (sorted, >= t0) as a (len(times), state_dim) array, with the Summary (nfe,\n"
        "steps_accepted, steps_rejected, ...). solver: 'euler' | 'midpoint' | 'rk4' (fixed\n"
        "step: `steps` equal steps from t0 to times[-1]) | 'dopri5' | 'cash-karp' | 'fehlberg78'\n"
        "(adaptive: rtol, atol; dense_output=True with dopri5 interpolates the output times).\n"
        "theta may be None when param_dim is 0. The GIL is released between the calls to f.");

  m.def("gradient", &RunGradient, py::arg("dynamics"), py::arg("x0"), py::arg("theta"),
        py::arg("times"), py::arg("loss_gradients"), py::kw_only(),
        py::arg("mode") = GradientModeName(gradient_defaults.mode),
        py::arg("solver") = MethodName(defaults.method), py::arg("steps") = defaults.steps,
        py::arg("rtol") = defaults.rtol, py::arg("atol") = defaults.atol,
        py::arg("t0") = defaults.t0, py::arg("max_steps") = defaults.max_steps,
        py::arg("adjoint_rtol") = gradient_defaults.adjoint_rtol,
        py::arg("adjoint_atol") = gradient_defaults.adjoint_atol,
        py::arg("checkpoint_every") = gradient_defaults.checkpoint_every,
        py::arg("seminorm") = gradient_defaults.seminorm,
        "gradient(dynamics, x0, theta, times, loss_gradients, *, mode='discrete', solver='rk4',\n"
        "steps=10, rtol=1e-6, atol=1e-8, t0=0.0, max_steps=100000, adjoint_rtol=0,\n"
        "adjoint_atol=0, checkpoint_every=0, seminorm=True) -> (dL/dx0, dL/dtheta, Summary)\n\n"
        "The gradient of a loss L(x(t_1), ..., x(t_k)) of the states integrate() computes.\n"
        "loss_gradients: a (len(times), state_dim) array G of dL/dx(t_i), i.e.\n"
        "L = sum_i G[i] @ x(t_i), or a callable states -> (L, G) for any loss. mode:\n"
        "'discrete' (the exact derivative of the solver's steps), 'backsolve' (the continuous\n"
        "adjoint integrated backward) or\n"
        "'checkpointed' (the adjoint with x(t) re-integrated from checkpoints). adjoint_rtol/atol\n"
        "(0: as forward) and seminorm are for the continuous modes. Needs dynamics.vjp.");
}

}  // namespace diffeoflow::python
