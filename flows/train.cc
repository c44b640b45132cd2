#include "flows/train.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>
#include <sstream>

#include "flows/own_data.h"
#include "solvers/clock.h"
#include "solvers/errors.h"
#include "solvers/hdf5.h"
#include "solvers/interrupt.h"

namespace diffeoflow::flows {
namespace {

constexpr double kPi = 3.14159265358979323846;

using Clock = std::chrono::steady_clock;
struct OptimizerState {
  Vector m, v;     // Adam moments / SGD velocity (m)
  long step = 0;
  int epoch = 0;   // completed epochs
};

void WriteCheckpoint(const std::string& path, const Vector& theta, const OptimizerState& s) {
  h5::Writer out(path);
  const auto n = static_cast<std::uint64_t>(theta.size());
  out.WriteDoubles("theta", theta.data(), {n});
  out.WriteDoubles("optimizer/m", s.m.data(), {n});
  out.WriteDoubles("optimizer/v", s.v.data(), {n});
  out.SetAttribute("/", "format", "diffeoflow-checkpoint");
  out.SetAttribute("/", "epoch", static_cast<std::int64_t>(s.epoch));
  out.SetAttribute("/", "step", static_cast<std::int64_t>(s.step));
  out.Commit();
}

bool ReadCheckpoint(const std::string& path, Vector& theta, OptimizerState& s) {
  if (!std::filesystem::exists(path)) return false;
  h5::Reader in(path);
  if (!in.HasAttribute("/", "format") ||
      in.StringAttribute("/", "format") != "diffeoflow-checkpoint") {
    throw InputError(path + ": not a diffeoflow checkpoint (attribute format)");
  }
  const std::vector<double> th = in.ReadDoubles("theta");
  if (static_cast<Index>(th.size()) != theta.size()) {
    throw InputError(path + ": checkpoint has " + std::to_string(th.size()) +
                     " parameters, the model " + std::to_string(theta.size()) +
                     " (another architecture: --model, --channels, --hidden, --augment, the "
                     "layers' --steps or --readout differ; a checkpoint of the image odenet "
                     "written before its read-out became flatten resumes with --readout pool)");
  }
  const std::vector<double> m = in.ReadDoubles("optimizer/m"), v = in.ReadDoubles("optimizer/v");
  if (m.size() != th.size() || v.size() != th.size()) {
    throw InputError(path + ": optimizer state does not match θ");
  }
  if (!Eigen::Map<const Vector>(th.data(), theta.size()).allFinite()) {
    throw InputError(path + ": the checkpoint's θ holds NaN or Inf");
  }
  theta = Eigen::Map<const Vector>(th.data(), theta.size());
  s.m = Eigen::Map<const Vector>(m.data(), theta.size());
  s.v = Eigen::Map<const Vector>(v.data(), theta.size());
  s.epoch = static_cast<int>(in.IntAttribute("/", "epoch"));
  s.step = in.IntAttribute("/", "step");
  return true;
}

// SplitMix64's finaliser over (seed, epoch, position) packed into one word (positions < 2^28,
// epochs < 2^12 keep them apart; beyond that they only mix).
std::uint64_t SampleHash(unsigned seed, int epoch, Index position) {
  std::uint64_t z = (static_cast<std::uint64_t>(seed) << 40) ^
                    (static_cast<std::uint64_t>(epoch) << 28) ^
                    static_cast<std::uint64_t>(position);
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return z;
}

}  // namespace

bool MirroredInEpoch(unsigned seed, int epoch, Index position) {
  return (SampleHash(seed, epoch, position) >> 63) != 0;
}

std::pair<int, int> ShiftInEpoch(unsigned seed, int epoch, Index position, int shift) {
  if (shift <= 0) return {0, 0};
  // Two 24-bit fields below the mirroring's top bit; the modulo bias is at most
  // (2·shift + 1) / 2^24, below 10^-5 for shifts up to 80 pixels.
  const std::uint64_t z = SampleHash(seed, epoch, position);
  const auto span = static_cast<std::uint64_t>(2 * shift + 1);
  const auto dy = static_cast<int>(((z >> 8) & 0xffffffULL) % span) - shift;
  const auto dx = static_cast<int>(((z >> 32) & 0xffffffULL) % span) - shift;
  return {dy, dx};
}

void CopyAugmented(const double* in, Index channels, Index height, Index width, bool mirrored,
                   int dy, int dx, double* out) {
  const Index plane = height * width;
  std::fill(out, out + channels * plane, 0.0);
  // Columns q of `out` that come from inside the image: 0 ≤ q − dx < width.
  const Index q0 = std::max<Index>(0, dx), q1 = std::min<Index>(width, width + dx);
  if (q0 >= q1) return;
  for (Index c = 0; c < channels; ++c) {
    for (Index r = std::max<Index>(0, dy); r < std::min<Index>(height, height + dy); ++r) {
      const double* row = in + c * plane + (r - dy) * width;
      double* to = out + c * plane + r * width;
      if (mirrored) {
        for (Index q = q0; q < q1; ++q) to[q] = row[width - 1 - (q - dx)];
      } else {
        std::copy(row + (q0 - dx), row + (q1 - dx), to + q0);
      }
    }
  }
}

void TrainOptions::Validate() const {
  if (epochs < 1) throw InputError("--epochs must be ≥ 1 (got " + std::to_string(epochs) + ")");
  if (batch < 1) throw InputError("--batch must be ≥ 1 (got " + std::to_string(batch) + ")");
  if (!(learning_rate > 0.0)) throw InputError("--lr must be > 0");
  if (!(momentum >= 0.0 && momentum < 1.0)) throw InputError("--momentum must be in [0, 1)");
  if (!(weight_decay >= 0.0)) throw InputError("--weight-decay must be ≥ 0");
  if (shift < 0) throw InputError("--shift must be ≥ 0 (got " + std::to_string(shift) + ")");
  if (!(label_smoothing >= 0.0 && label_smoothing < 1.0)) {
    throw InputError("--label-smoothing must be in [0, 1) (got " +
                     std::to_string(label_smoothing) + ")");
  }
  if (!(time_budget_seconds >= 0.0)) throw InputError("--time-budget must be ≥ 0");
  if (resume && checkpoint.empty()) throw InputError("--resume needs a checkpoint path");
}

std::string TrainSummary::BriefReport() const {
  std::ostringstream s;
  s << "epochs " << epochs << ", train accuracy " << train_accuracy << ", test accuracy "
    << test_accuracy << ", " << samples_per_second << " samples/s, NFE " << nfe_forward << " + "
    << nfe_backward << " per batch, " << wall_seconds << " s (" << termination << ")";
  return s.str();
}

std::string TrainSummary::FullReport() const {
  std::ostringstream s;
  s << "parameters      " << parameters << "\n"
    << "epochs          " << epochs << " (" << start_epoch << " before this run)\n"
    << "train accuracy  " << train_accuracy << "\n"
    << "test accuracy   " << test_accuracy << "\n"
    << "test loss       " << test_loss << "\n"
    << "samples/s       " << samples_per_second << "\n"
    << "NFE per batch   " << nfe_forward << " forward, " << nfe_backward << " backward\n"
    << "termination     " << TerminationName(termination_type) << ": " << termination << "\n"
    << "interrupted     " << (interrupted ? "yes" : "no") << "\n"
    << "wall time       " << wall_seconds << " s\n";
  return s.str();
}

std::pair<double, double> Accuracy(Classifier& model, const Vector& theta, const Dataset& data,
                                   Index batch, Workers& workers, Index limit) {
  double sums[2] = {0.0, 0.0};  // loss × samples, correct
  const Index size = limit > 0 ? std::min(limit, data.size()) : data.size();
  const Index stride = batch * workers.count();
  for (Index start = batch * workers.rank(); start < size; start += stride) {
    const Index n = std::min(batch, size - start);
    const BatchResult r = model.Evaluate(theta, data.features.middleCols(start, n),
                                         data.labels.data() + start, nullptr);
    sums[0] += r.loss * static_cast<double>(n);
    sums[1] += static_cast<double>(r.correct);
  }
  workers.Sum(sums, 2);
  const auto total = static_cast<double>(std::max<Index>(size, 1));
  return {sums[0] / total, sums[1] / total};
}

Index TrainOptions::EvaluationBatch(const Classifier& model) const {
  return model.spec().convolutional() ? std::min<Index>(eval_batch, batch) : eval_batch;
}

TrainSummary Train(Classifier& model, Vector& theta, const Dataset& train, const Dataset& test,
                   const TrainOptions& options) {
  options.Validate();
  if (train.size() < 1) throw InputError("training set is empty");
  if (theta.size() != model.param_dim()) throw InputError("θ does not match the model");
  // The augmentations need images and mini-batches; each is refused naming its flag.
  const auto check_augmentation = [&](const std::string& flag) {
    const auto& shape = train.sample_shape;
    if (shape.size() != 3 || shape[0] * shape[1] * shape[2] != train.feature_count()) {
      throw InputError(flag + " needs image samples (channels × height × width); the training "
                       "set '" + train.name + "' has " + SampleShapeText(shape));
    }
    if (options.optimizer == Optimizer::kLbfgs) {
      throw InputError(flag + " applies to mini-batch training (--optimizer adam or sgd), not "
                       "to full-batch lbfgs");
    }
  };
  if (options.horizontal_flip) check_augmentation("--flip");
  if (options.shift > 0) {
    check_augmentation("--shift");
    const Index smaller = std::min(train.sample_shape[1], train.sample_shape[2]);
    if (2 * static_cast<Index>(options.shift) >= smaller) {
      throw InputError("--shift " + std::to_string(options.shift) + " moves the training "
                       "images of '" + train.name + "' (" + SampleShapeText(train.sample_shape) +
                       ") out of their frame (expected a shift below half their height and "
                       "width, at most " + std::to_string((smaller - 1) / 2) + ")");
    }
  }
  const Index P = theta.size();
  TrainSummary summary;
  summary.parameters = P;
  Workers& workers = *options.workers;
  const Index eval_batch = options.EvaluationBatch(model);
  const bool root = workers.rank() == 0;
  OptimizerState state;
  state.m = Vector::Zero(P);
  state.v = Vector::Zero(P);
  if (options.resume) {
    // Rank 0 reads the checkpoint (the other ranks may not see its disk) and sends what it read.
    bool resumed = false;
    std::string error;
    if (root) {
      try {
        resumed = ReadCheckpoint(options.checkpoint, theta, state);
      } catch (const InputError& e) {
        error = e.what();
      }
    }
    error = workers.FirstError(error);
    if (!error.empty()) throw InputError(error);
    if (workers.count() > 1) {
      Vector header(3);
      header << (resumed ? 1.0 : 0.0), state.epoch, static_cast<double>(state.step);
      workers.Broadcast(header.data(), 3, 0);
      resumed = header[0] != 0.0;
      state.epoch = static_cast<int>(header[1]);
      state.step = static_cast<long>(header[2]);
      for (Vector* v : {&theta, &state.m, &state.v}) {
        workers.Broadcast(v->data(), static_cast<std::size_t>(P), 0);
      }
    }
    if (resumed) summary.start_epoch = state.epoch;
  }
  const auto start = Clock::now();
  double train_seconds = 0.0;
  long samples = 0, batches = 0, nfe_f = 0, nfe_b = 0;
  const bool budget = options.time_budget_seconds > 0.0;
  summary.termination_type = Termination::kIterationLimit;
  summary.termination = "epochs";
  summary.epochs = state.epoch;

  auto report = [&](int epoch, double loss, double accuracy, long epoch_batches, long ef,
                    long eb) {
    EpochReport r;
    r.epoch = epoch;
    r.train_loss = loss;
    r.train_accuracy = accuracy;
    std::tie(r.test_loss, r.test_accuracy) =
        test.size() > 0 ? Accuracy(model, theta, test, eval_batch, workers)
                        : std::pair<double, double>{0.0, 0.0};
    r.nfe_forward = epoch_batches ? static_cast<double>(ef) / epoch_batches : 0.0;
    r.nfe_backward = epoch_batches ? static_cast<double>(eb) / epoch_batches : 0.0;
    r.samples_per_second = train_seconds > 0 ? samples / train_seconds : 0.0;
    r.elapsed_seconds = SecondsSince(start);
    summary.history.push_back(r);
    if (options.progress) options.progress(r);
  };

  if (options.optimizer == Optimizer::kLbfgs) {
    // Full batch: the objective is the mean loss over the whole training set.
    long evaluations = 0;
    // With several workers, worker r evaluates every count()-th batch from the r-th, and the
    // partial sums [∇ | loss | failed] are added: every worker gets the same value and gradient,
    // so Ceres takes the same iterations on all of them.
    Vector partial(P + 2);
    FunctionObjective objective(P, [&](const Vector& th, Vector* gradient) {
      double loss = 0.0;
      Vector g;
      if (gradient != nullptr) gradient->setZero(P);
      std::string failure;
      try {
        for (Index s = options.batch * workers.rank(); s < train.size();
             s += options.batch * workers.count()) {
          const Index n = std::min<Index>(options.batch, train.size() - s);
          const BatchResult r =
              model.Evaluate(th, train.features.middleCols(s, n), train.labels.data() + s,
                             gradient ? &g : nullptr, options.label_smoothing);
          const double w = static_cast<double>(n) / train.size();
          loss += w * r.loss;
          if (gradient != nullptr) *gradient += w * g;
          nfe_f += r.nfe_forward;
          nfe_b += r.nfe_backward;
          ++batches;
        }
      } catch (const NumericalError& e) {
        if (workers.count() == 1) throw;
        failure = e.what();
      }
      if (workers.count() > 1) {
        partial.head(P) = gradient != nullptr ? *gradient : Vector::Zero(P);
        partial[P] = loss;
        partial[P + 1] = failure.empty() ? 0.0 : 1.0;
        workers.Sum(partial.data(), static_cast<std::size_t>(partial.size()));
        if (partial[P + 1] > 0.0) throw NumericalError(workers.FirstError(failure));
        loss = partial[P];
        if (gradient != nullptr) *gradient = partial.head(P);
      }
      loss += 0.5 * options.weight_decay * th.squaredNorm();
      if (gradient != nullptr) *gradient += options.weight_decay * th;
      samples += train.size();
      ++evaluations;
      return loss;
    });
    OptimizerOptions o;
    o.optimizer = Optimizer::kLbfgs;
    o.max_iterations = options.epochs;
    // Several workers stop by rank 0's clock (in the callback), not each by its own.
    o.max_seconds = budget && workers.count() == 1 ? options.time_budget_seconds : 1e9;
    bool out_of_time = false;
    o.function_tolerance = 1e-12;
    o.gradient_tolerance = 1e-12;
    o.callback = [&](const IterationReport& it) {
      train_seconds = SecondsSince(start);
      ++state.epoch;
      report(state.epoch, it.cost, std::numeric_limits<double>::quiet_NaN(), batches, nfe_f, nfe_b);
      if (!budget || workers.count() == 1) return true;
      double clock = root ? SecondsSince(start) : 0.0;
      workers.Sum(&clock, 1);
      out_of_time = clock >= options.time_budget_seconds;
      return !out_of_time;
    };
    OptimizerSummary os;
    try {
      os = Minimize(objective, theta, o);
    } catch (const NumericalError& e) {
      throw NumericalError(std::string("training diverged (full-batch L-BFGS): ") + e.what());
    }
    summary.termination_type = out_of_time ? Termination::kTimeLimit : os.termination_type;
    summary.termination = out_of_time ? "time budget" : os.termination;
    (void)evaluations;
    if (!std::isfinite(os.final_cost) || !theta.allFinite()) {
      throw NumericalError("training diverged: the full-batch loss or the parameters became "
                           "NaN/Inf (try a smaller --lr or --weight-decay)");
    }
    if (os.termination_type == Termination::kInterrupted) summary.interrupted = true;
  } else {
    Vector epoch_start_theta;
    OptimizerState epoch_start_state;
    // What every batch sums over the workers after the gradient: [∇ (P) | the rest, below].
    enum Slot { kLoss, kCorrect, kNfeForward, kNfeBackward, kSlices, kFailed, kInterrupt,
                kClockBefore, kClockAfter, kSlots };
    Vector reduced(P + kSlots);
    // True on every worker when any of them saw SIGINT/SIGTERM.
    const auto interrupt_anywhere = [&] {
      double flag = InterruptRequested() ? 1.0 : 0.0;
      workers.Sum(&flag, 1);
      return flag > 0.0;
    };
    bool interrupted = false;
    for (int epoch = state.epoch; epoch < options.epochs; ++epoch) {
      if (interrupt_anywhere()) {
        summary.interrupted = true;
        break;
      }
      epoch_start_theta = theta;
      epoch_start_state = state;
      // Cosine schedule over the run's progress: the share of epochs done, or with a time budget
      // the share of the budget spent if that is larger (then the rate is updated every batch,
      // so that it reaches zero when the budget ends rather than after --epochs).
      const auto cosine_rate = [&](double progress) {
        return options.schedule == LearningRateSchedule::kCosine
                   ? options.learning_rate * 0.5 * (1.0 + std::cos(kPi * std::min(progress, 1.0)))
                   : options.learning_rate;
      };
      double rate = cosine_rate(static_cast<double>(epoch) / options.epochs);
      std::vector<Index> order(static_cast<std::size_t>(train.size()));
      std::iota(order.begin(), order.end(), 0);
      std::mt19937 rng(options.seed + static_cast<unsigned>(epoch));
      std::shuffle(order.begin(), order.end(), rng);
      double epoch_loss = 0.0;
      Index epoch_correct = 0, epoch_samples = 0;
      long epoch_batches = 0, ef = 0, eb = 0;
      bool out_of_time = false;
      Matrix x;
      std::vector<int> labels;
      Vector g;
      const auto epoch_start = Clock::now();
      for (Index s = 0; s < train.size(); s += options.batch) {
        const Index n = std::min<Index>(options.batch, train.size() - s);
        // This worker's contiguous slice [first, first + slice) of the batch.
        const Index first = n * workers.rank() / workers.count();
        const Index slice = n * (workers.rank() + 1) / workers.count() - first;
        x.resize(train.feature_count(), slice);
        labels.resize(static_cast<std::size_t>(slice));
        for (Index j = 0; j < slice; ++j) {
          const Index position = s + first + j;
          const Index i = order[static_cast<std::size_t>(position)];
          const bool mirrored =
              options.horizontal_flip && MirroredInEpoch(options.seed, epoch, position);
          const auto [dy, dx] = ShiftInEpoch(options.seed, epoch, position, options.shift);
          if (mirrored || dy != 0 || dx != 0) {
            const auto& shape = train.sample_shape;
            CopyAugmented(train.features.col(i).data(), shape[0], shape[1], shape[2], mirrored,
                          dy, dx, x.col(j).data());
          } else {
            x.col(j) = train.features.col(i);
          }
          labels[static_cast<std::size_t>(j)] = train.labels[static_cast<std::size_t>(i)];
        }
        reduced.setZero();
        if (root) reduced[P + kClockBefore] = train_seconds + SecondsSince(epoch_start);
        std::string failure;
        if (slice > 0) {
          try {
            const auto batch_index = static_cast<unsigned long>(s / options.batch);
            const auto batches_per_epoch =
                static_cast<unsigned long>((train.size() + options.batch - 1) / options.batch);
            model.UseProbe(options.seed,
                           static_cast<unsigned long>(epoch) * batches_per_epoch + batch_index);
            const BatchResult r =
                model.Evaluate(theta, x, labels.data(), &g, options.label_smoothing);
            // The slice's share of the batch mean: n_r/n, exactly 1 on a single worker.
            const double w = static_cast<double>(slice) / static_cast<double>(n);
            reduced.head(P) = w * g;
            reduced[P + kLoss] = w * r.loss;
            reduced[P + kCorrect] = static_cast<double>(r.correct);
            reduced[P + kNfeForward] = static_cast<double>(r.nfe_forward);
            reduced[P + kNfeBackward] = static_cast<double>(r.nfe_backward);
            reduced[P + kSlices] = 1.0;
          } catch (const NumericalError& e) {
            failure = e.what();
            reduced[P + kFailed] = 1.0;
          }
        }
        if (root) reduced[P + kClockAfter] = train_seconds + SecondsSince(epoch_start);
        reduced[P + kInterrupt] = InterruptRequested() ? 1.0 : 0.0;
        workers.Sum(reduced.data(), static_cast<std::size_t>(reduced.size()));
        if (reduced[P + kFailed] > 0.0) {
          throw NumericalError("training diverged in epoch " + std::to_string(epoch + 1) + ": " +
                               workers.FirstError(failure) + " (try a smaller --lr); the "
                               "checkpoint keeps the last good epoch");
        }
        if (budget) {
          const double spent = reduced[P + kClockBefore] / options.time_budget_seconds;
          const double done = (epoch + static_cast<double>(s) / static_cast<double>(train.size())) /
                              options.epochs;
          rate = cosine_rate(std::max(spent, done));
        }
        BatchResult r;
        r.loss = reduced[P + kLoss];
        r.correct = static_cast<Index>(reduced[P + kCorrect]);
        // Per slice on average: a single worker's counts when the batch is not split.
        r.nfe_forward = std::lround(reduced[P + kNfeForward] / reduced[P + kSlices]);
        r.nfe_backward = std::lround(reduced[P + kNfeBackward] / reduced[P + kSlices]);
        g = reduced.head(P);
        if (!std::isfinite(r.loss)) {
          throw NumericalError("training diverged: the loss is " + std::to_string(r.loss) +
                               " in epoch " + std::to_string(epoch + 1) +
                               " (try a smaller --lr); the checkpoint keeps the last good epoch");
        }
        if (options.weight_decay > 0.0) g += options.weight_decay * theta;
        ++state.step;
        if (options.optimizer == Optimizer::kAdam) {
          AdamStep(AdamOptions{}, state.step, rate, g, state.m, state.v, theta);
        } else {
          state.m = options.momentum * state.m + g;
          theta -= rate * state.m;
        }
        if (!theta.allFinite()) {
          throw NumericalError("training diverged: the parameters became NaN/Inf in epoch " +
                               std::to_string(epoch + 1) +
                               " (try a smaller --lr); the checkpoint keeps the last good epoch");
        }
        epoch_loss += r.loss * static_cast<double>(n);
        epoch_correct += r.correct;
        epoch_samples += n;
        ++epoch_batches;
        ef += r.nfe_forward;
        eb += r.nfe_backward;
        // Rank 0's clock decides, so every worker stops after the same batch.
        if (budget && reduced[P + kClockAfter] >= options.time_budget_seconds) {
          out_of_time = true;
          break;
        }
        if (reduced[P + kInterrupt] > 0.0) {
          interrupted = true;
          break;
        }
      }
      if (interrupted && !out_of_time) {
        // The partial epoch is dropped: θ and the optimiser state go back to the checkpoint's.
        theta = epoch_start_theta;
        state = epoch_start_state;
        summary.interrupted = true;
        break;
      }
      train_seconds += SecondsSince(epoch_start);
      samples += epoch_samples;
      batches += epoch_batches;
      nfe_f += ef;
      nfe_b += eb;
      state.epoch = epoch + 1;
      report(state.epoch, epoch_loss / std::max<Index>(epoch_samples, 1),
             static_cast<double>(epoch_correct) / std::max<Index>(epoch_samples, 1),
             epoch_batches, ef, eb);
      if (!std::isfinite(summary.history.back().test_loss)) {
        throw NumericalError("training diverged: the test loss is NaN or Inf after epoch " +
                             std::to_string(state.epoch) +
                             " (try a smaller --lr); the checkpoint keeps the last good epoch");
      }
      if (root && !options.checkpoint.empty()) WriteCheckpoint(options.checkpoint, theta, state);
      if (out_of_time) {
        summary.termination_type = Termination::kTimeLimit;
        summary.termination = "time budget";
        break;
      }
    }
  }
  if (workers.count() > 1) {
    // Every worker took the same steps from the same sums: θ must be the same bits everywhere.
    Vector first = theta;
    workers.Broadcast(first.data(), static_cast<std::size_t>(P), 0);
    double differs = std::memcmp(first.data(), theta.data(), sizeof(double) * P) != 0 ? 1.0 : 0.0;
    workers.Sum(&differs, 1);
    if (differs > 0.0) {
      throw std::logic_error("data-parallel training: θ differs between the workers after " +
                             std::to_string(state.epoch) + " epochs (the reduction gave them "
                             "different sums)");
    }
  }
  summary.epochs = state.epoch;
  summary.wall_seconds = train_seconds;
  if (summary.interrupted) {
    summary.termination_type = Termination::kInterrupted;
    summary.termination = "interrupted";
    return summary;
  }
  summary.samples_per_second = train_seconds > 0 ? samples / train_seconds : 0.0;
  summary.nfe_forward = batches ? static_cast<double>(nfe_f) / batches : 0.0;
  summary.nfe_backward = batches ? static_cast<double>(nfe_b) / batches : 0.0;
  summary.train_accuracy =
      Accuracy(model, theta, train, eval_batch, workers, options.max_eval_train).second;
  if (test.size() > 0) {
    std::tie(summary.test_loss, summary.test_accuracy) =
        Accuracy(model, theta, test, eval_batch, workers);
    if (!std::isfinite(summary.test_loss)) {
      throw NumericalError("training diverged: the final test loss is NaN or Inf (try a smaller "
                           "--lr)");
    }
  }
  return summary;
}

}  // namespace diffeoflow::flows
