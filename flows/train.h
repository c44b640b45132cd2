// Training a classifier (flows/classifier.h): mini-batch Adam (Kingma & Ba 2015) or SGD with
// momentum, a learning-rate schedule, L2 weight decay, or full-batch L-BFGS through Ceres
// (solvers/optimize.h); evaluation each epoch, a wall-clock budget, and checkpoints to resume from.
//
// Interruption (solvers/interrupt.h: SIGINT/SIGTERM): mini-batch training stops after the current
// batch, puts θ back to the end of the last completed epoch (what the checkpoint holds) and
// returns with `interrupted` set. The checkpoint stores θ, the Adam moments / SGD velocity, the
// step count and the epoch, and epoch e shuffles with seed + e, so resuming repeats the
// interrupted epoch exactly: the result equals an uninterrupted run. Full-batch L-BFGS keeps its
// memory inside Ceres: it writes no checkpoint, and an interrupted run must start again.
// Numerical health: a non-finite loss or θ throws NumericalError before the epoch's checkpoint is
// written, so the last checkpoint on disk is always the last good epoch.
//
//   Adam:  m ← β₁m + (1−β₁)g,  v ← β₂v + (1−β₂)g²,  θ ← θ − η_e m̂ / (√v̂ + ε)   (bias-corrected)
//   SGD:   v ← μv + g,  θ ← θ − η_e v                                           (heavy ball)
//   g = ∇L_batch + λθ (weight decay);  cosine schedule η_e = η ½(1 + cos(π e / E)) over E epochs.
// With a time budget B the schedule follows whichever is further along, epochs or time: before
// each batch η = η ½(1 + cos(π max(e/E, s/B))) with s the training seconds spent, so the rate
// anneals to zero when the budget ends (such runs depend on the machine's speed anyway).
//
// Data parallelism (TrainOptions::workers, solvers/workers.h; issue 17): every worker shuffles
// the same way and splits each mini-batch of n samples into count() contiguous slices, worker r
// evaluating samples [⌊nr/P⌋, ⌊n(r+1)/P⌋). The gradient of the batch's mean loss is
// Σ_r (n_r/n) ∇L_r, summed with Workers::Sum together with the losses, the correct counts and
// rank 0's clock, so that every worker takes the same step with the same learning rate and θ
// stays the same on all of them (checked at the end: std::logic_error if not). Rank 0's clock
// decides the time budget; the evaluations are split by batches and summed. The result equals
// the serial run's up to the order of the additions (the slices' sums, then Sum's): a relative
// difference of round-off size per step, which the optimiser carries on (docs/parallel.md gives
// the tolerance the tests hold). Only rank 0 reads and writes the checkpoint; it broadcasts what
// it read. A NumericalError on one worker is passed to all of them (FirstError) so that every
// worker throws it. Full-batch L-BFGS splits the full-batch objective by batches (worker r takes
// every count()-th batch) and sums the partial losses and gradients, so Ceres takes the same
// iterations on every worker; with a time budget rank 0's clock stops them all. (An interrupt
// reaches Ceres on each worker by itself: under mpirun, where every rank gets the signal, they
// may stop one iteration apart and mpirun's kill ends the run; it keeps no checkpoint anyway.)
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "flows/classifier.h"
#include "flows/datasets.h"
#include "solvers/optimize.h"
#include "solvers/workers.h"

namespace diffeoflow::flows {

enum class LearningRateSchedule { kConstant, kCosine };

struct TrainOptions {
  Optimizer optimizer = Optimizer::kAdam;  // kAdam, kGradientDescent (SGD + momentum), kLbfgs
  int epochs = 100;                         // L-BFGS: iterations
  int batch = 128;
  double learning_rate = 1e-2;
  double momentum = 0.9;                    // SGD
  double weight_decay = 0.0;
  LearningRateSchedule schedule = LearningRateSchedule::kCosine;
  double time_budget_seconds = 0.0;         // > 0: stop training when it is used up
  unsigned seed = 1;                        // batch order (epoch e uses seed + e)
  // Mirror each training image left–right with probability ½, drawn afresh for every sample in
  // every epoch (a hash of seed, epoch and the sample's place in the epoch's order, so that a
  // resumed run and every data-parallel worker draw the same). Needs image samples (a
  // sample_shape of channels × height × width); test and evaluation images are never mirrored.
  bool horizontal_flip = false;
  // Translate each training image by (dy, dx) drawn uniformly from {−shift, …, shift}², afresh for
  // every sample in every epoch (the same hash as the mirroring, other bits), filling the pixels
  // that enter with 0, the background of the pixels / 255 scaling (after mirroring, when both are
  // on). 0: none. Needs image samples larger than 2·shift in height and width.
  int shift = 0;
  // Label smoothing ε of the training loss: the target (1 − ε) onehot + ε / classes (Szegedy et
  // al. 2016). The reported training loss is that smoothed loss; the test loss and every
  // accuracy are the plain ones. 0: none.
  double label_smoothing = 0.0;
  std::string checkpoint;                   // HDF5 path written after every epoch; empty: none
  bool resume = false;                      // continue from `checkpoint` when it exists
  // Samples an evaluation (accuracy, test probabilities) runs at a time. It needs no gradient,
  // so a larger batch costs only memory: an MLP field gains from fewer, larger GEMMs, while a
  // convolutional field holds tens of kB of activations a sample in every layer, so it evaluates
  // at most `batch` samples at a time (EvaluationBatch).
  Index eval_batch = 1024;
  Index EvaluationBatch(const Classifier& model) const;
  // The final training accuracy is measured on at most this many training samples (0: all).
  Index max_eval_train = 10000;
  // Called on every worker after each epoch (the command line prints on rank 0 only).
  std::function<void(const struct EpochReport&)> progress;
  // The workers that share every batch (see the top of this file); the serial one by default.
  Workers* workers = &Serial();

  void Validate() const;  // InputError naming the flag
};

struct EpochReport {
  int epoch = 0;                 // 1-based
  double train_loss = 0.0;       // mean over the epoch's batches
  double train_accuracy = 0.0;   // of the epoch's batches, as they were seen
  double test_loss = 0.0;
  double test_accuracy = 0.0;
  double nfe_forward = 0.0;      // per batch, on average
  double nfe_backward = 0.0;
  double samples_per_second = 0.0;  // training samples processed per second of training
  double elapsed_seconds = 0.0;     // since the start of this run
};

struct TrainSummary {
  std::vector<EpochReport> history;
  int epochs = 0;              // completed (including those before a resume)
  int start_epoch = 0;         // epochs already done when this run started (resume)
  double train_accuracy = 0.0; // of the final θ over (up to max_eval_train of) the training set
  double test_accuracy = 0.0;
  double test_loss = 0.0;
  double samples_per_second = 0.0;
  double nfe_forward = 0.0;    // per batch, on average over the run
  double nfe_backward = 0.0;
  double wall_seconds = 0.0;   // training time of this run
  Index parameters = 0;
  Termination termination_type = Termination::kIterationLimit;
  // The message: "epochs", "time budget", "interrupted", "converged: ..." (metrics.json).
  std::string termination;
  bool interrupted = false;    // SIGINT/SIGTERM: θ is the last checkpointed one; nothing evaluated
  std::string BriefReport() const;
  std::string FullReport() const;
};

// Whether `Train` with `horizontal_flip` mirrors the sample at `position` (0-based) of epoch
// `epoch`'s shuffled order: the top bit of a SplitMix64 hash of (seed, epoch, position), so that
// every worker and a resumed run draw the same, about half of the samples.
bool MirroredInEpoch(unsigned seed, int epoch, Index position);

// The translation (dy, dx), each in {−shift, …, shift}, by which `Train` with `shift` moves the
// sample at `position` of epoch `epoch`'s order: two further fields of the same hash, so that
// every worker and a resumed run draw the same, independently of the mirroring.
std::pair<int, int> ShiftInEpoch(unsigned seed, int epoch, Index position, int shift);

// Copies an image (channels × height × width, row-major) into `out`, mirrored left–right when
// `mirrored`, then moved by dy rows down and dx columns right: with m(q) = width − 1 − q when
// mirrored (else q), out(c, r, q) = in(c, r − dy, m(q − dx)), 0 where r − dy or q − dx falls
// outside the image. One pass for both of Train's augmentations.
void CopyAugmented(const double* in, Index channels, Index height, Index width, bool mirrored,
                   int dy, int dx, double* out);

// Mean loss and accuracy of θ on a data set, or on its first `limit` samples (0: all); with several
// workers each evaluates every count()-th batch and the sums are combined (the same on every
// worker).
std::pair<double, double> Accuracy(Classifier& model, const Vector& theta, const Dataset& data,
                                   Index batch = 1024, Workers& workers = Serial(),
                                   Index limit = 0);

// Trains θ in place.
TrainSummary Train(Classifier& model, Vector& theta, const Dataset& train, const Dataset& test,
                   const TrainOptions& options);

}  // namespace diffeoflow::flows
