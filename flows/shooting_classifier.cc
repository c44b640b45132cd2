#include "flows/shooting_classifier.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <sstream>

#include "solvers/clock.h"
#include "solvers/errors.h"
#include "solvers/hdf5.h"
#include "solvers/landmarks.h"

namespace diffeoflow::flows {
namespace {

using Clock = std::chrono::steady_clock;

Vector Flatten(const Matrix& m) { return Eigen::Map<const Vector>(m.data(), m.size()); }

// [x; 0] for inputs (input_dim × N).
Matrix Lift(const Matrix& inputs, int dim) {
  Matrix lifted = Matrix::Zero(dim, inputs.cols());
  lifted.topRows(inputs.rows()) = inputs;
  return lifted;
}

SolverOptions SolverOf(const ShootingClassifier& model) {
  SolverOptions solver;
  solver.method = model.solver;
  solver.steps = model.steps;
  return solver;
}

// Initial state [q_0, p_0, x] of the carried flow.
Vector InitialState(const ShootingClassifier& model, const Matrix& momenta, const Matrix& lifted) {
  Vector x0(2 * model.control_points.size() + lifted.size());
  x0 << Flatten(model.control_points), Flatten(momenta), Flatten(lifted);
  return x0;
}

// Mean softmax cross-entropy of logits Z (C × N); G = ∂/∂Z when non-null; counts correct.
double CrossEntropy(const Matrix& Z, const std::vector<int>& labels, Matrix* G,
                    Eigen::Index* correct) {
  const Eigen::Index n = Z.cols();
  double loss = 0.0;
  if (G != nullptr) G->resize(Z.rows(), n);
  if (correct != nullptr) *correct = 0;
  for (Eigen::Index i = 0; i < n; ++i) {
    Eigen::Index best = 0;
    const double zmax = Z.col(i).maxCoeff(&best);
    const Vector e = (Z.col(i).array() - zmax).exp().matrix();
    const double sum = e.sum();
    const int y = labels[static_cast<std::size_t>(i)];
    loss += std::log(sum) - (Z(y, i) - zmax);
    if (correct != nullptr && best == y) ++*correct;
    if (G != nullptr) {
      G->col(i) = e / (sum * static_cast<double>(n));
      (*G)(y, i) -= 1.0 / static_cast<double>(n);
    }
  }
  return loss / static_cast<double>(n);
}

struct Evaluation {
  double loss = 0.0;
  double accuracy = 0.0;
};

Evaluation Evaluate(const ShootingClassifier& model, const Dataset& data) {
  if (data.size() == 0) return {};
  const Matrix Z = model.Logits(data.features);
  Eigen::Index correct = 0;
  const double loss = CrossEntropy(Z, data.labels, nullptr, &correct);
  return {loss, static_cast<double>(correct) / static_cast<double>(data.size())};
}

void CheckData(const Dataset& data, const char* which) {
  if (data.feature_count() != 2) {
    throw InputError(std::string("train --model shooting: the ") + which +
                     " set must hold 2-D points, got " + std::to_string(data.feature_count()) +
                     " features");
  }
  if (static_cast<Eigen::Index>(data.labels.size()) != data.size()) {
    throw InputError(std::string("train --model shooting: the ") + which +
                     " set has a label count unlike its sample count");
  }
}

}  // namespace

void ShootingClassifierOptions::Validate() const {
  if (augment < 0 || augment > 1) {
    throw InputError("--augment must be 0 or 1 for --model shooting (flow in 2-D or 3-D), got " +
                     std::to_string(augment));
  }
  if (grid < 2) throw InputError("--control-grid must be ≥ 2, got " + std::to_string(grid));
  if (!(kernel_width >= 0.0) || !std::isfinite(kernel_width)) {
    throw InputError("--kernel-width must be ≥ 0 (0: lattice spacing)");
  }
  if (steps < 1) throw InputError("--steps must be ≥ 1, got " + std::to_string(steps));
  if (IsAdaptive(solver)) {
    throw InputError("--solver must be a fixed-step method (euler, midpoint, rk4) for --model "
                     "shooting, got " + MethodName(solver));
  }
  if (!(kinetic_weight >= 0.0)) throw InputError("--kinetic-weight must be ≥ 0");
  if (iterations < 1) throw InputError("--epochs must be ≥ 1, got " + std::to_string(iterations));
  if (!(learning_rate > 0.0)) throw InputError("--lr must be > 0");
  if (max_seconds < 0.0) throw InputError("--time-budget must be ≥ 0");
}

Matrix ShootingClassifier::Logits(const Matrix& inputs) const {
  const Eigen::Index n = inputs.cols();
  CarriedPoints flow(dim, control_points.cols(), n, kernel_width);
  const Vector x1 =
      Integrate(flow, InitialState(*this, momenta, Lift(inputs, dim)), Vector(), {1.0},
                SolverOf(*this))
          .states[0];
  const Eigen::Map<const Matrix> X1(x1.data() + 2 * control_points.size(), dim, n);
  return (readout * X1).colwise() + bias;
}

std::vector<Matrix> ShootingClassifier::Paths(const Matrix& inputs) const {
  const Eigen::Index n = inputs.cols();
  CarriedPoints flow(dim, control_points.cols(), n, kernel_width);
  const std::vector<double> times = UniformTimes(steps);
  const Solution sol =
      Integrate(flow, InitialState(*this, momenta, Lift(inputs, dim)), Vector(), times,
                SolverOf(*this));
  std::vector<Matrix> paths;
  for (const Vector& x : sol.states) {
    paths.push_back(Eigen::Map<const Matrix>(x.data() + 2 * control_points.size(), dim, n));
  }
  return paths;
}

double ShootingClassifier::KineticEnergy() const {
  return diffeoflow::KineticEnergy(dim, kernel_width, Flatten(control_points), Flatten(momenta));
}

std::string ShootingClassifierSummary::BriefReport() const {
  std::ostringstream out;
  out << "shooting classifier: test accuracy " << test_accuracy << ", train accuracy "
      << train_accuracy << ", " << parameters << " parameters (" << control_points
      << " control points), " << iterations << " iterations, NFE " << nfe_forward << " / "
      << nfe_backward << " per evaluation, action " << action << ", " << wall_seconds << " s ("
      << termination << ")";
  return out.str();
}

std::string ShootingClassifierSummary::FullReport() const {
  std::ostringstream out;
  out << "parameters      " << parameters << " (" << control_points << " control points)\n"
      << "iterations      " << iterations << "\n"
      << "evaluations     " << evaluations << "\n"
      << "train accuracy  " << train_accuracy << " (loss " << train_loss << ")\n"
      << "test accuracy   " << test_accuracy << " (loss " << test_loss << ")\n"
      << "NFE             " << nfe_forward << " forward, " << nfe_backward
      << " backward per evaluation\n"
      << "samples/s       " << samples_per_second << "\n"
      << "kinetic energy  " << kinetic_energy << "\n"
      << "action          " << action << " (per point " << point_action << ")\n"
      << "termination     " << TerminationName(termination_type) << ": " << termination << "\n"
      << "wall time       " << wall_seconds << " s\n";
  return out.str();
}

Vector ShootingParameters(const ShootingClassifier& model) {
  Vector theta(model.num_parameters());
  theta << Flatten(model.momenta), Flatten(model.readout), model.bias;
  return theta;
}

void SetShootingParameters(const Vector& theta, ShootingClassifier* model) {
  const Eigen::Index kd = model->control_points.size();
  const Eigen::Index C = model->classes, D = model->dim;
  if (theta.size() != kd + C * D + C) {
    throw InputError("SetShootingParameters: expected " + std::to_string(kd + C * D + C) +
                     " parameters, got " + std::to_string(theta.size()));
  }
  model->momenta = Eigen::Map<const Matrix>(theta.data(), D, model->control_points.cols());
  model->readout = Eigen::Map<const Matrix>(theta.data() + kd, C, D);
  model->bias = theta.tail(C);
}

ShootingLossResult ShootingLoss(const ShootingClassifier& model, const Dataset& data,
                                double kinetic_weight, bool gradient) {
  CheckData(data, "training");
  const Eigen::Index K = model.control_points.cols(), D = model.dim, C = model.classes;
  const Eigen::Index kd = K * D, n = data.size();
  const Matrix kernel =
      KernelMatrix(static_cast<int>(D), model.kernel_width, Flatten(model.control_points));
  const Matrix KP = model.momenta * kernel;
  ShootingLossResult result;
  result.kinetic = 0.5 * model.momenta.cwiseProduct(KP).sum();
  CarriedPoints flow(static_cast<int>(D), K, n, model.kernel_width);
  const Vector x0 = InitialState(model, model.momenta, Lift(data.features, static_cast<int>(D)));
  const SolverOptions solver = SolverOf(model);
  Matrix G, X1;
  const auto readout_loss = [&](const Vector& x1, Matrix* g_out) {
    X1 = Eigen::Map<const Matrix>(x1.data() + 2 * kd, D, n);
    const Matrix Z = (model.readout * X1).colwise() + model.bias;
    return CrossEntropy(Z, data.labels, g_out, &result.correct);
  };
  if (!gradient) {
    const Solution sol = Integrate(flow, x0, Vector(), {1.0}, solver);
    result.nfe_forward = sol.summary.nfe_forward;
    result.cross_entropy = readout_loss(sol.states[0], nullptr);
  } else {
    const TrajectoryLoss loss = [&](const std::vector<Vector>& xs, std::vector<Vector>& grads) {
      const double value = readout_loss(xs[0], &G);
      grads[0].setZero(flow.state_dim());
      const Matrix X1_bar = model.readout.transpose() * G;
      grads[0].tail(D * n) = Flatten(X1_bar);
      return value;
    };
    const GradientResult r = Gradient(flow, x0, Vector(), {1.0}, loss, solver, GradientOptions{});
    result.nfe_forward = r.summary.nfe_forward;
    result.nfe_backward = r.summary.vjp_backward;
    result.cross_entropy = r.loss;
    result.gradient.resize(model.num_parameters());
    result.gradient.head(kd) = r.grad_x0.segment(kd, kd) + kinetic_weight * Flatten(KP);
    Eigen::Map<Matrix>(result.gradient.data() + kd, C, D) = G * X1.transpose();
    result.gradient.tail(C) = G.rowwise().sum();
  }
  result.loss = result.cross_entropy + kinetic_weight * result.kinetic;
  return result;
}

ShootingClassifierSummary TrainShootingClassifier(const Dataset& train, const Dataset& test,
                                                  const ShootingClassifierOptions& options,
                                                  ShootingClassifier* model) {
  options.Validate();
  CheckData(train, "training");
  if (test.size() > 0) CheckData(test, "test");
  if (train.size() < 1) throw InputError("train --model shooting: the training set is empty");
  const auto start = Clock::now();
  ShootingClassifier& m = *model;
  m.input_dim = 2;
  m.dim = 2 + options.augment;
  m.classes = std::max(train.classes, 2);
  m.steps = options.steps;
  m.solver = options.solver;
  // Control points: a lattice over the bounding box of the training inputs.
  Eigen::Vector2d lo = train.features.rowwise().minCoeff();
  Eigen::Vector2d hi = train.features.rowwise().maxCoeff();
  const Eigen::Vector2d margin = 0.1 * (hi - lo).cwiseMax(1e-6);
  lo -= margin;
  hi += margin;
  const int g = options.grid;
  m.control_points = Matrix::Zero(m.dim, g * g);
  for (int r = 0; r < g; ++r) {
    for (int c = 0; c < g; ++c) {
      m.control_points(0, r * g + c) = lo.x() + (hi.x() - lo.x()) * c / (g - 1);
      m.control_points(1, r * g + c) = lo.y() + (hi.y() - lo.y()) * r / (g - 1);
    }
  }
  const double spacing = std::max((hi.x() - lo.x()), (hi.y() - lo.y())) / (g - 1);
  m.kernel_width = options.kernel_width > 0.0 ? options.kernel_width : spacing;
  const Eigen::Index K = m.control_points.cols(), D = m.dim, C = m.classes, n = train.size();
  const Eigen::Index kd = K * D;
  const SolverOptions solver = SolverOf(m);

  m.momenta = Matrix::Zero(D, K);
  m.readout = Matrix::Zero(C, D);
  m.bias = Vector::Zero(C);
  {
    std::mt19937 rng(options.seed);
    std::normal_distribution<double> normal(0.0, 0.1);
    m.readout = Matrix::NullaryExpr(C, D, [&] { return normal(rng); });
  }
  Vector theta = ShootingParameters(m);
  ShootingClassifier trial = m;
  long nfe_forward = 0, nfe_backward = 0;
  int evaluations = 0;
  FunctionObjective objective(theta.size(), [&](const Vector& th, Vector* grad) {
    ++evaluations;
    SetShootingParameters(th, &trial);
    ShootingLossResult r = ShootingLoss(trial, train, options.kinetic_weight, grad != nullptr);
    nfe_forward += r.nfe_forward;
    nfe_backward += r.nfe_backward;
    if (grad != nullptr) *grad = std::move(r.gradient);
    return r.loss;
  });

  OptimizerOptions opt;
  opt.optimizer = options.optimizer;
  opt.max_iterations = options.iterations;
  opt.max_seconds = options.max_seconds > 0.0 ? options.max_seconds : 1e9;
  opt.function_tolerance = 1e-10;
  opt.gradient_tolerance = 1e-10;
  opt.parameter_tolerance = 1e-12;
  opt.learning_rate = options.learning_rate;
  if (options.progress) {
    opt.callback = [&](const IterationReport& report) {
      options.progress(report.iteration, report.cost, report.elapsed_seconds);
      return true;
    };
  }
  const OptimizerSummary os = Minimize(objective, theta, opt);
  const double train_seconds = SecondsSince(start);

  SetShootingParameters(theta, &m);

  ShootingClassifierSummary s;
  const Evaluation on_train = Evaluate(m, train);
  const Evaluation on_test = Evaluate(m, test);
  s.train_accuracy = on_train.accuracy;
  s.train_loss = on_train.loss;
  s.test_accuracy = on_test.accuracy;
  s.test_loss = on_test.loss;
  s.parameters = m.num_parameters();
  s.control_points = K;
  s.iterations = os.iterations;
  s.evaluations = evaluations;
  s.nfe_forward = evaluations > 0 ? static_cast<double>(nfe_forward) / evaluations : 0.0;
  s.nfe_backward = evaluations > 0 ? static_cast<double>(nfe_backward) / evaluations : 0.0;
  s.samples_per_second =
      train_seconds > 0.0 ? static_cast<double>(evaluations) * n / train_seconds : 0.0;
  s.kinetic_energy = m.KineticEnergy();
  s.action = 2.0 * s.kinetic_energy;
  // ∫ ‖v(x_m(t))‖² dt along the recorded path (trapezoid), averaged over the training points.
  {
    const std::vector<Matrix> paths = m.Paths(train.features);
    CarriedPoints carried(static_cast<int>(D), K, n, m.kernel_width);
    const std::vector<double> times = UniformTimes(m.steps);
    LandmarkHamiltonian hamiltonian(static_cast<int>(D), K, m.kernel_width);
    Vector qp0(2 * kd);
    qp0 << Flatten(m.control_points), Flatten(m.momenta);
    const Solution geodesic = Integrate(hamiltonian, qp0, Vector(), times, solver);
    double integral = 0.0;
    for (std::size_t k = 0; k < times.size(); ++k) {
      const Vector v = LandmarkVelocity(static_cast<int>(D), m.kernel_width,
                                        geodesic.states[k].head(kd), geodesic.states[k].tail(kd),
                                        Flatten(paths[k]));
      const double w = (k == 0 || k + 1 == times.size()) ? 0.5 : 1.0;
      integral += w * v.squaredNorm() / m.steps;
    }
    s.point_action = integral / static_cast<double>(n);
  }
  s.termination_type = os.termination_type;
  s.termination = os.termination;
  s.wall_seconds = SecondsSince(start);
  return s;
}

nlohmann::json ShootingMetricsJson(const ShootingClassifierSummary& s,
                                   const ShootingClassifier& model) {
  nlohmann::json j;
  j["model"] = "shooting";
  j["train_accuracy"] = s.train_accuracy;
  j["test_accuracy"] = s.test_accuracy;
  j["train_loss"] = s.train_loss;
  j["test_loss"] = s.test_loss;
  j["epochs"] = s.iterations;  // full-batch: one iteration sees every sample
  j["iterations"] = s.iterations;
  j["evaluations"] = s.evaluations;
  j["samples_per_second"] = s.samples_per_second;
  j["nfe_forward"] = s.nfe_forward;
  j["nfe_backward"] = s.nfe_backward;
  j["wall_seconds"] = s.wall_seconds;
  j["parameters"] = s.parameters;
  j["control_points"] = s.control_points;
  j["kernel_width"] = model.kernel_width;
  j["kinetic_energy"] = s.kinetic_energy;
  j["action"] = s.action;
  j["point_action"] = s.point_action;
  j["termination"] = s.termination;
  return j;
}

void WriteShootingClassifier(const std::string& path, const ShootingClassifier& model,
                             const DataRecord& data) {
  // D × K column-major is (K, D) row-major.
  const auto rows = [](const Matrix& m) { return std::vector<double>(m.data(), m.data() + m.size()); };
  const auto row_major = [](const Matrix& m) {
    std::vector<double> out(static_cast<std::size_t>(m.size()));
    for (Eigen::Index i = 0; i < m.rows(); ++i) {
      for (Eigen::Index j = 0; j < m.cols(); ++j) out[i * m.cols() + j] = m(i, j);
    }
    return out;
  };
  const std::uint64_t K = model.control_points.cols(), D = model.dim, C = model.classes;
  h5::Writer writer(path);
  writer.SetAttribute("/", "model", "shooting");
  writer.SetAttribute("/", "kernel_width", model.kernel_width);
  writer.SetAttribute("/", "steps", std::int64_t{model.steps});
  writer.SetAttribute("/", "solver", MethodName(model.solver));
  writer.SetAttribute("/", "input_dim", std::int64_t{model.input_dim});
  writer.SetAttribute("/", "classes", std::int64_t{model.classes});
  writer.WriteDoubles("control_points", rows(model.control_points), {K, D});
  writer.WriteDoubles("momenta", rows(model.momenta), {K, D});
  writer.WriteDoubles("readout/weight", row_major(model.readout), {C, D});
  writer.WriteDoubles("readout/bias", model.bias.data(), {C});
  if (!data.source.empty()) WriteDataRecord(writer, data);
  writer.Commit();
}

ShootingClassifier ReadShootingClassifier(const std::string& path) {
  const h5::Reader reader(path);
  if (!reader.HasAttribute("/", "model") || reader.StringAttribute("/", "model") != "shooting") {
    throw InputError(path + ": not a shooting classifier (expected attribute model = \"shooting\")");
  }
  ShootingClassifier m;
  m.kernel_width = reader.DoubleAttribute("/", "kernel_width");
  m.steps = static_cast<int>(reader.IntAttribute("/", "steps"));
  m.solver = ParseMethod(reader.StringAttribute("/", "solver"), path + " solver");
  m.input_dim = static_cast<int>(reader.IntAttribute("/", "input_dim"));
  m.classes = static_cast<int>(reader.IntAttribute("/", "classes"));
  h5::Shape shape;
  const std::vector<double> q = reader.ReadDoubles("control_points", &shape);
  if (shape.size() != 2) throw InputError(path + ": control_points must be (K, D)");
  const Eigen::Index K = static_cast<Eigen::Index>(shape[0]);
  m.dim = static_cast<int>(shape[1]);
  m.control_points = Eigen::Map<const Matrix>(q.data(), m.dim, K);
  const std::vector<double> p = reader.ReadDoubles("momenta", &shape);
  if (shape != h5::Shape{static_cast<std::uint64_t>(K), static_cast<std::uint64_t>(m.dim)}) {
    throw InputError(path + ": momenta must have the shape of control_points");
  }
  m.momenta = Eigen::Map<const Matrix>(p.data(), m.dim, K);
  const std::vector<double> w = reader.ReadDoubles("readout/weight", &shape);
  if (shape != h5::Shape{static_cast<std::uint64_t>(m.classes), static_cast<std::uint64_t>(m.dim)}) {
    throw InputError(path + ": readout/weight must be (classes, D)");
  }
  m.readout = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
      w.data(), m.classes, m.dim);
  const std::vector<double> b = reader.ReadDoubles("readout/bias", &shape);
  if (b.size() != static_cast<std::size_t>(m.classes)) {
    throw InputError(path + ": readout/bias must hold one value a class");
  }
  m.bias = Eigen::Map<const Vector>(b.data(), m.classes);
  return m;
}

}  // namespace diffeoflow::flows
