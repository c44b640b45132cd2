// The Python module `diffeoflow` (DESIGN.md: python/): the registration and classifier libraries
// on NumPy arrays, with the command line's option names, defaults and error messages.
//
// Array convention: axis 0 is x, axis 1 is y, axis 2 is z — arr[i, j, k] is voxel (i, j, k), as
// nibabel's get_fdata() gives a NIfTI image. Any memory order and any real dtype is accepted:
// register, compare and apply read float32 and float64 arrays (native byte order, aligned) in
// place through their strides (registration/image_view.h), without a copy; other dtypes are
// converted by NumPy to one float64 array first. Returned
// arrays are Fortran-ordered float64 in the same convention. Vector fields have the component as
// their last axis: shape (nx, ny, 2) or (nx, ny, nz, 3).
//
// Options of register/compare are the CLI flags (apps/registration_flags.h) with underscores for
// dashes: they are parsed by the same CLI11 definitions, so names, defaults, checks and messages
// are the command line's.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <Eigen/Core>

#include "apps/command.h"
#include "apps/inspect.h"
#include "apps/registration_flags.h"
#include "apps/train_command.h"
#include "flows/own_data.h"
#include "flows/trained_model.h"
#include "python/engine.h"
#include "registration/image.h"
#include "registration/image_io.h"
#include "registration/outputs/comparison.h"
#include "registration/outputs/register_outputs.h"
#include "registration/register.h"
#include "registration/transform_chain.h"
#include "registration/world_space.h"
#include "solvers/atomic_file.h"
#include "solvers/errors.h"
#include "solvers/interrupt.h"
#include "solvers/read_file.h"

namespace py = pybind11;

namespace diffeoflow::python {
namespace {

using registration::Grid;
using registration::Image;
using registration::ImageFormat;
using registration::Interpolation;
using registration::RegistrationResult;

using FortranArray = py::array_t<double, py::array::f_style | py::array::forcecast>;

// --- images -------------------------------------------------------------------------------------

Eigen::Matrix4d AffineOf(const Grid& g) {
  Eigen::Matrix4d a = Eigen::Matrix4d::Identity();
  for (int c = 0; c < 3; ++c) a.block<3, 1>(0, c) = g.direction.col(c) * g.spacing_mm[c];
  a.block<3, 1>(0, 3) = Eigen::Vector3d(g.origin_mm[0], g.origin_mm[1], g.origin_mm[2]);
  return a;
}

py::array_t<double> MatrixToArray(const Eigen::Matrix4d& m) {
  py::array_t<double> out({4, 4});
  auto r = out.mutable_unchecked<2>();
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) r(i, j) = m(i, j);
  }
  return out;
}

// Grid geometry from `spacing` (a sequence of dim positive numbers) or `affine` (4 × 4 voxel to
// world mm, as NIfTI's sform and nibabel's img.affine); unit spacing when both are None.
void SetGeometry(Grid* g, const py::object& spacing, const py::object& affine,
                 const std::string& argument) {
  if (!spacing.is_none() && !affine.is_none()) {
    throw InputError(argument + ": give spacing or affine, not both");
  }
  if (!spacing.is_none()) {
    const auto s = spacing.cast<std::vector<double>>();
    if (static_cast<int>(s.size()) != g->dim) {
      throw InputError(argument + ": spacing has " + std::to_string(s.size()) +
                       " values, expected " + std::to_string(g->dim) + " (one an axis)");
    }
    for (int d = 0; d < g->dim; ++d) {
      if (!(std::isfinite(s[d]) && s[d] > 0)) {
        throw InputError(argument + ": spacing must be finite and > 0, got " +
                         std::to_string(s[d]));
      }
      g->spacing_mm[d] = s[d];
    }
  }
  if (!affine.is_none()) {
    const auto a = FortranArray::ensure(affine);
    if (!a || a.ndim() != 2 || a.shape(0) != 4 || a.shape(1) != 4) {
      throw InputError(argument + ": affine must be a 4 x 4 array (voxel to world mm)");
    }
    auto r = a.unchecked<2>();
    for (int c = 0; c < 3; ++c) {
      Eigen::Vector3d column(r(0, c), r(1, c), r(2, c));
      const double norm = column.norm();
      if (!std::isfinite(norm) || norm == 0.0) {
        if (c < g->dim) {
          throw InputError(argument + ": affine column " + std::to_string(c) +
                           " is zero or not finite");
        }
        column = Eigen::Vector3d::Unit(c);  // the unused axis of a 2-D image
      }
      const double length = column.norm();
      g->spacing_mm[c] = length;
      g->direction.col(c) = column / length;
      g->origin_mm[c] = r(c, 3);
    }
    if (std::abs(g->direction.determinant()) < 1e-6) {
      throw InputError(argument + ": affine is singular");
    }
  }
}

// An input image, read through a view (registration/image_view.h): of the caller's array itself
// when it is float32 or float64 in native byte order with element-aligned data and strides (any
// order, negative strides included), of a float64 array NumPy converted it to otherwise, or of the
// image read from a file.
struct InputImage {
  py::object array;             // the array viewed (kept alive as long as the view), or None
  std::shared_ptr<Image> file;  // the image read from a path, or null
  registration::ImageView view;
};

// Whether `a`'s elements of `itemsize` bytes can be read in place as a typed array: an aligned
// start and strides that are whole elements.
bool ElementAligned(const py::array& a, py::ssize_t itemsize) {
  if (reinterpret_cast<std::uintptr_t>(a.data()) % static_cast<std::uintptr_t>(itemsize) != 0) {
    return false;
  }
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    if (a.strides(d) % itemsize != 0) return false;
  }
  return true;
}

// An image from a path (str or os.PathLike, read as the CLI reads it) or an array (2-D or 3-D,
// axis 0 = x), without a copy of a float32 or float64 array.
InputImage ToInput(const py::handle& value, const py::object& spacing, const py::object& affine,
                   const std::string& argument) {
  const py::module_ os = py::module_::import("os");
  if (py::isinstance<py::str>(value) || py::isinstance(value, os.attr("PathLike"))) {
    if (!spacing.is_none() || !affine.is_none()) {
      throw InputError(argument + ": spacing and affine are for arrays; a file has its own");
    }
    const std::string path = py::str(os.attr("fspath")(value));
    registration::FormatFromPath(path, argument);
    InputImage in;
    in.file = std::make_shared<Image>(registration::ReadImage(path, {true, argument}));
    in.view = *in.file;
    return in;
  }
  const py::array raw = py::array::ensure(value);
  if (!raw || raw.dtype().kind() == 'O') {
    throw py::type_error(argument + ": expected a NumPy array or a path, got " +
                         std::string(py::str(py::type::of(value).attr("__name__"))));
  }
  const char kind = raw.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b') {
    throw py::type_error(argument + ": expected a real-valued array, got dtype " +
                         std::string(py::str(raw.dtype())));
  }
  if (raw.ndim() != 2 && raw.ndim() != 3) {
    throw InputError(argument + ": expected a 2-D or 3-D array, got " +
                     std::to_string(raw.ndim()) + "-D");
  }
  InputImage in;
  registration::ImageView& view = in.view;
  view.grid.dim = static_cast<int>(raw.ndim());
  for (int d = 0; d < view.grid.dim; ++d) {
    if (raw.shape(d) < 1 || raw.shape(d) > std::numeric_limits<int>::max()) {
      throw InputError(argument + ": empty or too large axis " + std::to_string(d));
    }
    view.grid.size[static_cast<std::size_t>(d)] = static_cast<int>(raw.shape(d));
  }
  // float64 and float32 (the dtypes of images) are read in place, whatever their strides; other
  // dtypes (and byte-swapped or misaligned arrays) through one NumPy conversion to float64.
  const bool is_double = raw.dtype().is(py::dtype::of<double>());
  const bool is_float = raw.dtype().is(py::dtype::of<float>());
  py::array viewed = raw;
  if (!((is_double || is_float) && ElementAligned(raw, raw.itemsize()))) {
    viewed = FortranArray::ensure(raw);
  }
  view.element = viewed.dtype().is(py::dtype::of<float>()) ? ElementType::kFloat32
                                                           : ElementType::kFloat64;
  view.source_type = view.element;
  view.data = viewed.data();
  for (int d = 0; d < view.grid.dim; ++d) {
    view.strides[static_cast<std::size_t>(d)] = viewed.strides(d) / viewed.itemsize();
  }
  in.array = viewed;
  SetGeometry(&view.grid, spacing, affine, argument);
  return in;
}

// `voxels × components` doubles in x-fastest, component-major order as an array of shape
// (nx, ny[, nz][, components]).
py::array FieldToArray(const Grid& g, const double* data, int components) {
  std::vector<py::ssize_t> shape;
  for (int d = 0; d < g.dim; ++d) shape.push_back(g.size[static_cast<std::size_t>(d)]);
  if (components > 1) shape.push_back(components);
  FortranArray out(shape);
  std::copy(data, data + g.voxels() * components, out.mutable_data());
  return out;
}

py::array ImageToArray(const Image& image) {
  return FieldToArray(image.grid, image.data.data(), 1);
}

// The arguments of apply(): the image, the interpolation and the value outside the image's field
// of view (None: its background), checked as `diffeoflow apply` checks them.
struct ApplyInput {
  InputImage image;
  Interpolation interpolation = Interpolation::kLinear;
  std::optional<double> outside;

  ApplyInput(const py::object& source, const std::string& method,
             const py::object& default_value, const py::object& spacing,
             const py::object& affine)
      : image(ToInput(source, spacing, affine, "image")) {
    if (method == "nearest") {
      interpolation = Interpolation::kNearest;
    } else if (method == "label") {
      interpolation = Interpolation::kLabel;
    } else if (method != "linear") {
      throw InputError("interpolation: expected linear, nearest or label, got '" + method + "'");
    }
    if (!default_value.is_none()) {
      outside = default_value.cast<double>();
      if (!std::isfinite(*outside)) throw InputError("default_value: expected a finite number");
    }
  }
};

// The image `warp` returns, computed without the GIL, as an array.
template <typename Warp>
py::array WarpedWithoutGil(Warp&& warp) {
  Image warped;
  {
    py::gil_scoped_release release;
    warped = warp();
  }
  return ImageToArray(warped);
}

// --- long calls: without the GIL, Ctrl-C through solvers/interrupt.h ----------------------------

// Runs `work` with the GIL released and the library's SIGINT/SIGTERM handler installed (the
// optimisers poll it between iterations); Python's handlers are restored afterwards. Returns true
// when a signal stopped the work.
template <typename Work>
bool RunInterruptible(Work&& work) {
  struct sigaction old_int {}, old_term {};
  sigaction(SIGINT, nullptr, &old_int);
  sigaction(SIGTERM, nullptr, &old_term);
  ClearInterrupt();
  InstallInterruptHandler();
  bool interrupted = false;
  try {
    py::gil_scoped_release release;
    work();
    interrupted = InterruptRequested();
  } catch (...) {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
    ClearInterrupt();
    throw;
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  ClearInterrupt();
  return interrupted;
}

[[noreturn]] void RaiseKeyboardInterrupt() {
  PyErr_SetNone(PyExc_KeyboardInterrupt);
  throw py::error_already_set();
}

// --- progress: through Python's logging ---------------------------------------------------------

// Lines for the logger "diffeoflow" at INFO (called without the GIL; takes it).
std::function<void(const std::string&)> LogToPython() {
  return [](const std::string& line) {
    py::gil_scoped_acquire gil;
    const py::object logger = py::module_::import("logging").attr("getLogger")("diffeoflow");
    logger.attr("info")(line);
  };
}

// --- options: keyword arguments through the command line's flag definitions --------------------

// Parses `args` followed by the keyword arguments as flags of `app`: alpha=64 is `--alpha 64`,
// no_normalize=True is `--no-normalize` (False: left out). TypeError for a keyword that is no
// flag of `app` or is in `reserved` (set by the function's own arguments); InputError (ValueError)
// for a value the flag rejects, with the CLI's message.
void ParseKeywords(CLI::App& app, const py::kwargs& kwargs,
                   std::initializer_list<std::string_view> reserved,
                   std::vector<std::string> args) {
  for (const auto& [key, value] : kwargs) {
    const std::string name = py::str(key);
    std::string flag = "--" + name;
    std::replace(flag.begin(), flag.end(), '_', '-');
    if (std::find(reserved.begin(), reserved.end(), name) != reserved.end() ||
        name.find('-') != std::string::npos || app.get_option_no_throw(flag) == nullptr) {
      throw py::type_error("unexpected keyword argument '" + name + "'");
    }
    if (py::isinstance<py::bool_>(value)) {
      if (value.cast<bool>()) args.push_back(flag);
      continue;
    }
    args.push_back(flag);
    args.push_back(py::str(value));
  }
  std::vector<const char*> argv{"diffeoflow"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    throw InputError(e.what());
  }
}

// --- registration -------------------------------------------------------------------------------

// The registration options from Python keyword arguments, through the CLI's flag definitions:
// alpha=64 is parsed as `--alpha 64`, no_normalize=True as `--no-normalize`.
// `method` is empty for compare (which has no --method).
// `affine` is the CLI's --affine (none | rigid | affine) when it is a string (an array is the
// geometry of array inputs, ReadPair).
registration::RegistrationOptions OptionsFromKwargs(const std::string& method,
                                                    const py::kwargs& kwargs,
                                                    const py::object& affine) {
  CLI::App app{"diffeoflow.register"};
  app::CommonFlags common;
  app::RegistrationFlags flags;
  flags.Add(app, !method.empty());
  app.add_flag("--quiet", common.quiet);
  app.add_option("--threads", common.threads)->check(CLI::NonNegativeNumber);
  std::vector<std::string> args{"--fixed", "(array)", "--moving", "(array)", "--out", "(memory)"};
  if (!method.empty()) {
    args.push_back("--method");
    args.push_back(method);
  }
  if (py::isinstance<py::str>(affine)) {
    args.push_back("--affine");
    args.push_back(py::str(affine));
  }
  ParseKeywords(app, kwargs, {"fixed", "moving", "out", "resume", "method"}, std::move(args));
  // Progress goes to the logger, never to the terminal.
  const bool quiet = common.quiet;
  common.quiet = true;
  registration::RegistrationOptions options = flags.Resolve(common);
  if (!quiet) {
    options.progress = [log = LogToPython(), previous = std::move(options.progress)](
                           const registration::RegistrationProgress& p) {
      log(app::ProgressLine(p));
      if (previous) previous(p);
    };
  }
  options.checkpoint.clear();  // nothing is written but by save()
  options.resume = false;
  return options;
}

// A registration's result and the two images it saw (for save(): views of the caller's arrays,
// which it keeps alive, not copies).
struct PyRegistration {
  RegistrationResult result;
  InputImage fixed, moving;
  ImageFormat fixed_format = ImageFormat::kNiftiGz;

  py::object Metrics() const {
    return py::module_::import("json").attr("loads")(registration::MetricsJson(result).dump());
  }
  // The figures need images of their own: copies of the inputs for the time of the writing.
  void Save(const std::string& folder) const {
    const Image fixed_image = registration::CopyImage(fixed.view);
    const Image moving_image = registration::CopyImage(moving.view);
    const registration::MovingInFixedSpace shown(moving_image, fixed_image);
    registration::WriteRegistrationOutputs(folder, result, shown.image(), fixed_image,
                                           fixed_format);
  }
  py::array Apply(const py::object& image, const std::string& interpolation,
                  const py::object& default_value, const py::object& spacing,
                  const py::object& affine) const {
    const ApplyInput in(image, interpolation, default_value, spacing, affine);
    // The whole map x -> A(phi(x)) (transform_chain.h: the warp first, then the affine).
    registration::TransformChain chain;
    chain.Append(std::make_unique<registration::DisplacementFieldWorldTransform>(
        result.displacement, "displacement"));
    chain.Append(std::make_unique<registration::AffineWorldTransform>(result.affine, "affine"));
    return WarpedWithoutGil([&] {
      return registration::ResampleThroughChain(
          in.image.view, result.grid, chain,
          registration::AsResampleInterpolation(in.interpolation), in.outside);
    });
  }
};

// The two images of a registration, read and checked as the CLI checks them, in a result that
// Register fills.
std::shared_ptr<PyRegistration> ReadPair(const py::object& fixed, const py::object& moving,
                                         const py::object& spacing, const py::object& affine) {
  auto out = std::make_shared<PyRegistration>();
  out->fixed = ToInput(fixed, spacing, affine, "fixed");
  out->moving = ToInput(moving, spacing, affine, "moving");
  if (py::isinstance<py::str>(fixed) ||
      py::isinstance(fixed, py::module_::import("os").attr("PathLike"))) {
    out->fixed_format = registration::FormatFromPath(py::str(fixed));
  }
  registration::CheckWorldOverlap(out->moving.view.grid, out->fixed.view.grid, "moving", "fixed");
  registration::CheckRegistrationInputs(out->moving.view, out->fixed.view);
  return out;
}

std::shared_ptr<PyRegistration> RunRegistration(const py::object& fixed, const py::object& moving,
                                                const std::string& method,
                                                const py::object& spacing,
                                                const py::object& affine,
                                                const py::kwargs& kwargs) {
  if (method.empty()) throw InputError("--method: expected shooting or lddmm, got ''");
  const registration::RegistrationOptions options = OptionsFromKwargs(method, kwargs, affine);
  auto out = ReadPair(fixed, moving, spacing, py::isinstance<py::str>(affine) ? py::none() : affine);
  const bool interrupted = RunInterruptible(
      [&] { out->result = registration::Register(out->moving.view, out->fixed.view, options); });
  if (interrupted || out->result.interrupted) RaiseKeyboardInterrupt();
  return out;
}

// `diffeoflow compare`: both methods with the same options; a method that fails numerically is
// reported (None and its error in "comparison"), the other kept.
py::dict RunComparison(const py::object& fixed, const py::object& moving,
                       const py::object& spacing, const py::object& affine,
                       const py::kwargs& kwargs) {
  using registration::MethodOutcome;
  using registration::RegistrationMethod;
  const registration::RegistrationOptions options = OptionsFromKwargs("", kwargs, affine);
  const auto pair =
      ReadPair(fixed, moving, spacing, py::isinstance<py::str>(affine) ? py::none() : affine);
  MethodOutcome gd, shoot;
  gd.method = RegistrationMethod::kLddmm;
  shoot.method = RegistrationMethod::kShooting;
  py::dict out;
  for (MethodOutcome* o : {&gd, &shoot}) {
    registration::RegistrationOptions method_options = options;
    method_options.method = o->method;
    bool interrupted = false;
    try {
      interrupted = RunInterruptible(
          [&] {
            o->result = registration::Register(pair->moving.view, pair->fixed.view, method_options);
          });
    } catch (const NumericalError& e) {
      o->error = e.what();
    }
    if (interrupted || (o->result && o->result->interrupted)) RaiseKeyboardInterrupt();
    if (o->ok()) {
      auto r = std::make_shared<PyRegistration>(*pair);
      r->result = *o->result;
      out[py::str(o->name())] = r;
    } else {
      out[py::str(o->name())] = py::none();
    }
  }
  nlohmann::json comparison;
  comparison["lddmm"] = registration::ComparisonEntry(gd);
  comparison["shooting"] = registration::ComparisonEntry(shoot);
  out["comparison"] = py::module_::import("json").attr("loads")(comparison.dump());
  out["table"] = registration::ComparisonTable(gd, shoot, options.ResolvedFor(pair->fixed.view.grid),
                                               gd.ok() || shoot.ok());
  return out;
}

// --- classifiers --------------------------------------------------------------------------------

// A classifier `diffeoflow train` wrote, read back; predictions go through the standardisation
// stored with it, as `diffeoflow predict` does.
struct PyModel {
  flows::TrainedModel model;
  std::string path;
  std::string file;                   // model.h5 as train wrote it, for save()
  py::object metrics = py::none();    // metrics.json of the run, when known

  // Reads model.h5 at `model_path` (and metrics.json beside it when there is one).
  static std::shared_ptr<PyModel> Read(const std::string& model_path) {
    auto out = std::make_shared<PyModel>();
    out->model = flows::ReadTrainedModel(model_path);
    out->path = model_path;
    out->file = ReadWholeFile(model_path, "path");
    const std::filesystem::path metrics =
        std::filesystem::path(model_path).parent_path() / "metrics.json";
    if (std::filesystem::is_regular_file(metrics)) {
      out->metrics = py::module_::import("json").attr("loads")(ReadWholeFile(metrics.string()));
    }
    return out;
  }

  py::array_t<double> PredictProba(const py::object& x, long batch, int threads) const {
    using RowMajor = py::array_t<double, py::array::c_style | py::array::forcecast>;
    const py::array raw = py::array::ensure(x);
    if (!raw || (raw.dtype().kind() != 'f' && raw.dtype().kind() != 'i' &&
                 raw.dtype().kind() != 'u')) {
      throw py::type_error("x: expected a real-valued NumPy array");
    }
    if (batch < 1) throw InputError("batch must be >= 1");
    const RowMajor a = RowMajor::ensure(raw);
    if (a.ndim() < 2) {
      throw InputError("x: expected N samples along axis 0 (an N x D array or N images), got " +
                       std::to_string(a.ndim()) + "-D");
    }
    flows::Dataset data;
    data.sample_shape.assign(a.shape() + 1, a.shape() + a.ndim());
    const Eigen::Index n = a.shape(0);
    const Eigen::Index d = n == 0 ? 0 : a.size() / n;
    flows::CheckSampleShape(data.sample_shape, model.input_shape, "x", "(array)");
    // Dataset features are (input size × N), column per sample: the C-ordered N × D block read
    // column-major is exactly that.
    data.features = Eigen::Map<const Eigen::MatrixXd>(a.data(), d, n);
    for (Eigen::Index i = 0; i < data.features.size(); ++i) {
      if (!std::isfinite(data.features.data()[i])) {
        throw InputError("x: sample " + std::to_string(i / std::max<Eigen::Index>(d, 1)) +
                         " has a value that is not finite");
      }
    }
    data.labels.assign(static_cast<std::size_t>(n), 0);
    model.data.standardization.Apply(&data);
    Matrix p;
    {
      py::gil_scoped_release release;
      p = model.Probabilities(data.features, batch, threads);
    }
    if (!p.allFinite()) throw NumericalError(path + ": the model gives non-finite probabilities");
    py::array_t<double> out({static_cast<py::ssize_t>(p.cols()), static_cast<py::ssize_t>(p.rows())});
    // p is classes × N column-major: its memory is the C-ordered N × classes array.
    std::copy(p.data(), p.data() + p.size(), out.mutable_data());
    return out;
  }
};

// `diffeoflow train` in this process: data is a built-in data set's name or (x_train, y_train[,
// x_test, y_test]) arrays (N x D features or N images, integer labels), written as .npy into the
// output folder for train's own-data path. The files train writes go to `out` (a temporary folder,
// removed afterwards, when None).
std::shared_ptr<PyModel> RunTraining(const py::object& data, const std::string& model,
                                     const py::object& out, const py::kwargs& kwargs) {
  const py::module_ np = py::module_::import("numpy");
  const bool temporary = out.is_none();
  const std::string dir =
      temporary ? std::string(py::str(py::module_::import("tempfile").attr("mkdtemp")()))
                : std::string(py::str(py::module_::import("os").attr("fspath")(out)));
  struct RemoveTemporary {
    bool remove;
    std::string dir;
    ~RemoveTemporary() {
      std::error_code ignored;
      if (remove) std::filesystem::remove_all(dir, ignored);
    }
  } cleanup{temporary, dir};

  std::vector<std::string> args{"--out", dir, "--model", model};
  if (py::isinstance<py::str>(data)) {
    args.insert(args.end(), {"--dataset", std::string(py::str(data))});
  } else if (py::isinstance<py::tuple>(data) && (py::len(data) == 2 || py::len(data) == 4)) {
    EnsureOutputDirectory(dir, "out");
    const char* names[] = {"train_data", "train_labels", "test_data", "test_labels"};
    const py::tuple arrays = data.cast<py::tuple>();
    for (std::size_t i = 0; i < arrays.size(); ++i) {
      const std::string path = (std::filesystem::path(dir) / (std::string(names[i]) + ".npy")).string();
      np.attr("save")(path, np.attr("ascontiguousarray")(arrays[i]));
      std::string flag = std::string("--") + names[i];
      std::replace(flag.begin(), flag.end(), '_', '-');
      args.insert(args.end(), {flag, path});
    }
  } else {
    throw py::type_error(
        "data: expected a data set's name ('spirals', 'circles', 'moons', 'fashion-mnist') or a "
        "tuple (x_train, y_train) or (x_train, y_train, x_test, y_test)");
  }
  CLI::App app{"diffeoflow.train"};
  app::CommonFlags common;
  app::TrainFlags flags;
  app::AddTrainFlags(app, flags);
  app.add_flag("--quiet", common.quiet);
  app.add_option("--threads", common.threads)->check(CLI::NonNegativeNumber);
  app.add_option("--seed", common.seed);
  ParseKeywords(app, kwargs,
                {"dataset", "train_data", "train_labels", "test_data", "test_labels", "out",
                 "model", "data"},
                std::move(args));
  int status = 0;
  const bool interrupted =
      RunInterruptible([&] { status = app::RunTrain(flags, common, LogToPython()); });
  if (interrupted || status != 0) RaiseKeyboardInterrupt();
  return PyModel::Read((std::filesystem::path(dir) / "model.h5").string());
}

// `diffeoflow inspect --model`: geometry.json's entries and the arrays of the files, with the
// CLI's checks and messages. `model` is a Model or the path of a model.h5.
py::dict RunInspect(const py::object& model, int resolution, double margin,
                    const py::object& data, const py::object& labels, int threads,
                    unsigned seed) {
  const std::shared_ptr<PyModel> classifier =
      py::isinstance<PyModel>(model)
          ? model.cast<std::shared_ptr<PyModel>>()
          : PyModel::Read(py::str(py::module_::import("os").attr("fspath")(model)));
  app::InspectFlags flags;
  flags.model = classifier->path;
  flags.resolution = resolution;
  flags.margin = margin;
  if (!data.is_none()) flags.data = py::str(py::module_::import("os").attr("fspath")(data));
  if (!labels.is_none()) flags.labels = py::str(py::module_::import("os").attr("fspath")(labels));
  app::CommonFlags common;
  common.quiet = true;
  common.threads = threads;
  common.seed = seed;
  app::CheckInspectModelFlags(flags);
  if (!classifier->model.network) {
    throw InputError("--model: " + flags.model + ": inspect needs a network classifier, this is a " +
                     classifier->model.kind + " model");
  }
  const flows::ModelFile& file = *classifier->model.network;
  flows::ModelGeometry r;
  {
    py::gil_scoped_release release;
    r = app::InspectClassifier(file, flags, common);
  }
  py::dict out = py::module_::import("json").attr("loads")(app::GeometryJson(file, r).dump());
  const py::ssize_t n = r.resolution;
  using RowMajor = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  py::array_t<double> volume({n, n});
  Eigen::Map<RowMajor>(volume.mutable_data(), n, n) = r.volume;
  out["volume_element"] = volume;
  const auto classes = static_cast<py::ssize_t>(r.probabilities.size());
  py::array_t<double> p({n, n, classes});
  auto pr = p.mutable_unchecked<3>();
  for (py::ssize_t j = 0; j < n; ++j) {
    for (py::ssize_t i = 0; i < n; ++i) {
      for (py::ssize_t k = 0; k < classes; ++k) {
        pr(j, i, k) = r.probabilities[static_cast<std::size_t>(k)](j, i);
      }
    }
  }
  out["probabilities"] = p;
  const auto ellipses = static_cast<py::ssize_t>(r.ellipse_centres.size());
  const py::ssize_t two = 2;
  py::array_t<double> centres({ellipses, two}), metrics({ellipses, two, two});
  auto cr = centres.mutable_unchecked<2>();
  auto mr = metrics.mutable_unchecked<3>();
  for (py::ssize_t e = 0; e < ellipses; ++e) {
    for (int a = 0; a < 2; ++a) {
      cr(e, a) = r.ellipse_centres[static_cast<std::size_t>(e)][a];
      for (int b = 0; b < 2; ++b) {
        mr(e, a, b) = r.ellipse_metrics[static_cast<std::size_t>(e)](a, b);
      }
    }
  }
  out["ellipse_centres"] = centres;
  out["ellipse_metrics"] = metrics;
  py::array_t<double> points({static_cast<py::ssize_t>(r.test_points.cols()), two});
  Eigen::Map<RowMajor>(points.mutable_data(), r.test_points.cols(), 2) = r.test_points.transpose();
  out["test_points"] = points;
  out["test_labels"] = py::array(py::cast(std::vector<int>(
      r.test_labels.data(), r.test_labels.data() + r.test_labels.size())));
  return out;
}

}  // namespace
}  // namespace diffeoflow::python

PYBIND11_MODULE(diffeoflow, m) {
  using namespace diffeoflow;
  using namespace diffeoflow::python;
  m.doc() =
      "diffeoflow: LDDMM image registration, neural ODE classifiers and their ODE engine on\n"
      "NumPy arrays.\n\n"
      "Images are arrays with axis 0 = x, axis 1 = y, axis 2 = z (arr[i, j, k] is voxel\n"
      "(i, j, k), as nibabel's get_fdata() gives a NIfTI image), of any real dtype and memory\n"
      "order, or paths (.nii, .nii.gz, .png, .npy). Options are the command line's flags with\n"
      "underscores for dashes, with the same defaults and error messages: ValueError for a bad\n"
      "value, FileNotFoundError for a missing file, TypeError for an argument of the wrong type.\n"
      "Progress goes to the logging logger 'diffeoflow' (INFO); quiet=True sends none.\n"
      "Registration: register, compare, apply, load_image. Classifiers: train, load_model,\n"
      "inspect. The engine: subclass Dynamics (f, vjp), then integrate and gradient.\n"
      "Worked examples: docs/python.md.";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const MissingFileError& e) {
      PyErr_SetString(PyExc_FileNotFoundError, e.what());
    } catch (const InputError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const NumericalError& e) {
      PyErr_SetString(PyExc_ArithmeticError, e.what());
    }
  });

  py::class_<PyRegistration, std::shared_ptr<PyRegistration>>(
      m, "RegistrationResult",
      "What register() returns: arrays on the fixed grid (axis 0 = x), metrics and the files.")
      .def_property_readonly(
          "warped", [](const PyRegistration& r) { return ImageToArray(r.result.warped); },
          "The moving image resampled through the map onto the fixed grid (its intensities).")
      .def_property_readonly(
          "displacement",
          [](const PyRegistration& r) {
            return FieldToArray(r.result.displacement.grid, r.result.displacement.data.data(),
                                r.result.displacement.grid.dim);
          },
          "u in mm along the fixed image's axes, shape (nx, ny[, nz], dim): phi(x) = x + u(x).")
      .def_property_readonly(
          "inverse_displacement",
          [](const PyRegistration& r) {
            const registration::VectorField& u = r.result.inverse_displacement;
            return FieldToArray(u.grid, u.data.data(), u.grid.dim);
          },
          "The inverse map phi^-1 (the flow traced backward), u in mm along the axes of its grid:\n"
          "the moving image's grid without an affine stage, else the fixed grid (as\n"
          "inverse_displacement.nii.gz; docs/transforms.md).")
      .def_property_readonly(
          "stage_affine",
          [](const PyRegistration& r) { return MatrixToArray(r.result.affine); },
          "The affine stage's 4 x 4 world map (RAS mm, fixed world -> moving world); the whole\n"
          "map is x -> stage_affine(phi(x)). The identity with affine='none'.")
      .def_property_readonly(
          "jacobian", [](const PyRegistration& r) { return ImageToArray(r.result.jacobian); },
          "det D phi on the fixed grid.")
      .def_property_readonly(
          "velocity_norms",
          [](const PyRegistration& r) { return py::array(py::cast(r.result.velocity_norms)); },
          "||v_t||_V at the T + 1 time points.")
      .def_property_readonly("metrics", &PyRegistration::Metrics,
                             "The object the CLI writes as metrics.json, as a dict.")
      .def_property_readonly(
          "affine", [](const PyRegistration& r) { return MatrixToArray(AffineOf(r.result.grid)); },
          "The fixed grid's 4 x 4 voxel-to-world affine (the grid of every array here).")
      .def("save", &PyRegistration::Save, py::arg("folder"),
           "Writes the files of `diffeoflow register --out folder` (warped image in the fixed\n"
           "image's format, NIfTI for arrays; displacement.nii.gz, jacobian.nii.gz,\n"
           "trajectory.h5, metrics.json, summary.png).")
      .def("apply", &PyRegistration::Apply, py::arg("image"), py::arg("interpolation") = "linear",
           py::arg("default_value") = py::none(), py::kw_only(), py::arg("spacing") = py::none(),
           py::arg("affine") = py::none(),
           "image carried through the map onto the fixed grid, in world coordinates (an array\n"
           "in the moving image's world, or a path); interpolation 'linear', 'nearest' or 'label'.")
      .def("__repr__", [](const PyRegistration& r) {
        return "<diffeoflow.RegistrationResult " + r.result.BriefReport() + ">";
      });

  m.def("register", &RunRegistration, py::arg("fixed"), py::arg("moving"),
        py::arg("method") = "shooting", py::kw_only(), py::arg("spacing") = py::none(),
        py::arg("affine") = py::none(),
        "register(fixed, moving, method='shooting', *, spacing=None, affine=None, **options)\n\n"
        "One pairwise registration, as `diffeoflow register`. fixed, moving: 2-D/3-D arrays\n"
        "(axis 0 = x) or image paths. spacing (one value an axis, mm) or affine (4 x 4) give\n"
        "arrays their geometry (default: unit spacing). method: 'shooting' | 'lddmm'.\n"
        "options: the CLI flags with underscores, e.g. alpha=64, gamma=2, sigma=0.002, steps=8,\n"
        "levels=3, iterations=100, band_limit=16, optimizer='lbfgs', solver='rk4',\n"
        "similarity='auto', boundary='periodic', no_normalize=True, threads=0, quiet=True\n"
        "(sigma, steps, levels and similarity default by dimension, as on the command line).\n"
        "Releases the GIL; Ctrl-C raises KeyboardInterrupt. Bad input raises ValueError.");

  m.def("compare", &RunComparison, py::arg("fixed"), py::arg("moving"), py::kw_only(),
        py::arg("spacing") = py::none(), py::arg("affine") = py::none(),
        "compare(fixed, moving, *, spacing=None, affine=None, **options) -> dict\n\n"
        "`diffeoflow compare`: gradient descent on v_t ('lddmm') and geodesic shooting\n"
        "('shooting') with the same options (register's, without method). Returns {'lddmm':\n"
        "RegistrationResult or None, 'shooting': ..., 'comparison': comparison.json as a dict,\n"
        "'table': comparison.md}. A method that fails numerically is None, its error in\n"
        "'comparison'.");

  m.def(
      "load_image",
      [](const std::string& path) {
        registration::FormatFromPath(path, "path");
        const Image image = registration::ReadImage(path, {true, "path"});
        return py::make_tuple(ImageToArray(image), MatrixToArray(AffineOf(image.grid)));
      },
      py::arg("path"),
      "load_image(path) -> (array, affine): a .nii/.nii.gz/.png/.npy image as the CLI reads it,\n"
      "axis 0 = x (a .npy file's a[j, i] is returned as arr[i, j]), and its 4 x 4 affine.");

  m.def(
      "apply",
      [](const std::string& folder, const py::object& image, const std::string& interpolation,
         const py::object& default_value, const py::object& spacing, const py::object& affine) {
        const ApplyInput in(image, interpolation, default_value, spacing, affine);
        return WarpedWithoutGil([&] {
          return registration::ApplyRegistration(folder, in.image.view, in.interpolation,
                                                 in.outside);
        });
      },
      py::arg("folder"), py::arg("image"), py::arg("interpolation") = "linear",
      py::arg("default_value") = py::none(), py::kw_only(), py::arg("spacing") = py::none(),
      py::arg("affine") = py::none(),
      "apply(folder, image, interpolation='linear', default_value=None, *, spacing=None,\n"
      "affine=None) -> array: `diffeoflow apply --transform folder`: the map a register run\n"
      "saved in folder carried onto image (array or path), on the fixed grid.");

  py::class_<PyModel, std::shared_ptr<PyModel>>(
      m, "Model", "A classifier written by `diffeoflow train` (load_model).")
      .def("predict_proba", &PyModel::PredictProba, py::arg("x"), py::arg("batch") = 1024,
           py::arg("threads") = 1,
           "Class probabilities, shape (N, classes), of N samples (x: N x D features or N\n"
           "images, as trained), standardised as train standardised its data.")
      .def(
          "predict",
          [](const PyModel& m, const py::object& x, long batch, int threads) {
            const py::array_t<double> p = m.PredictProba(x, batch, threads);
            return py::module_::import("numpy").attr("argmax")(p, py::arg("axis") = 1);
          },
          py::arg("x"), py::arg("batch") = 1024, py::arg("threads") = 1,
          "The most probable class of each sample.")
      .def_property_readonly(
          "metrics", [](const PyModel& m) { return m.metrics; },
          "metrics.json of the training run as a dict (None when the file is not beside it).")
      .def(
          "save", [](const PyModel& m, const std::string& path) { WriteFileAtomically(path, m.file); },
          py::arg("path"), "Writes model.h5, the file train wrote, to path.")
      .def_property_readonly(
          "kind", [](const PyModel& m) { return m.model.kind; },
          "The architecture: odenet, anode, resnet, c2, mlp or shooting.")
      .def_property_readonly(
          "classes", [](const PyModel& m) { return m.model.classes; }, "Number of classes.")
      .def_property_readonly(
          "input_shape", [](const PyModel& m) { return m.model.input_shape; },
          "The shape of one sample: [D] or [channels, height, width].")
      .def_property_readonly(
          "path", [](const PyModel& m) { return m.path; },
          "The model.h5 it was read from (for train(out=None), a folder removed afterwards).")
      .def("__repr__", [](const PyModel& m) {
        return "<diffeoflow.Model " + m.model.kind + " from " + m.path + ", " +
               std::to_string(m.model.classes) + " classes>";
      });

  m.def("train", &RunTraining, py::arg("data") = "spirals", py::arg("model") = "odenet",
        py::kw_only(), py::arg("out") = py::none(),
        "train(data='spirals', model='odenet', *, out=None, **options) -> Model\n\n"
        "`diffeoflow train`: data is 'spirals' | 'circles' | 'moons' | 'fashion-mnist' or a tuple\n"
        "(x_train, y_train[, x_test, y_test]) of arrays (N x D features or N images; integer\n"
        "labels). options: train's flags with underscores (epochs=, hidden=, steps=, solver=,\n"
        "gradient=, lr=, batch=, samples=, seed=, threads=, quiet=, ...). out: the folder for\n"
        "train's files (model.h5, metrics.json, ...); None: a temporary folder, removed.\n"
        "Releases the GIL; Ctrl-C raises KeyboardInterrupt.");

  m.def(
      "load_model",
      &PyModel::Read,
      py::arg("path"), "load_model(path) -> Model: a model.h5 written by `diffeoflow train`.");

  const app::InspectFlags inspect_defaults;
  m.def("inspect", &RunInspect, py::arg("model"), py::kw_only(),
        py::arg("resolution") = inspect_defaults.resolution,
        py::arg("margin") = inspect_defaults.margin, py::arg("data") = py::none(),
        py::arg("labels") = py::none(), py::arg("threads") = 1,
        py::arg("seed") = app::CommonFlags{}.seed,
        "inspect(model, *, resolution=128, margin=0.1, data=None, labels=None, threads=1,\n"
        "seed=1) -> dict\n\n"
        "`diffeoflow inspect --model`: the geometry of a classifier on 2-D input (a Model or a\n"
        "model.h5 path) on a resolution x resolution grid of its input plane: geometry.json's\n"
        "entries (grid_min, grid_max, volume_element_ratio, kinetic_energy, fisher_rao_norm,\n"
        "accuracy, ...) and the arrays 'volume_element' (n, n) (sqrt det g of the pull-back\n"
        "metric) and 'probabilities' (n, n, classes), row j = y index j as the CLI's .npy files\n"
        "(plt.imshow(v, origin='lower', extent=(*grid_min[:1], grid_max[0], grid_min[1],\n"
        "grid_max[1])) draws them), 'ellipse_centres' (M, 2) and 'ellipse_metrics' (M, 2, 2),\n"
        "'test_points' (M, 2) and 'test_labels' (M,). data, labels: .npy files to look at\n"
        "instead of the model's own split. ValueError with the CLI's messages.");

  BindEngine(m);
}
