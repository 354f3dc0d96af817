// What a training run reports: the JSON-lines metrics file (--metrics_out), the final
// summary (also printed to stdout as `summary: {...}`), and the parameter digest that
// the determinism contract is stated in. The format is specified in docs/training.md;
// tools parse it, so fields are only ever added, never renamed.
//
// Thread safety: MetricsWriter is used by the training loop's thread only; the free
// functions are pure.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/tensor.h"

namespace tessera::worker {

// Where one worker's training time went, in seconds, measured around each phase of the
// loop (worker/trainer.cc). push_s is the wait for the servers to accept this step's
// gradients; pull_s the further wait until the next step's values arrived, which in bsp
// includes waiting for the slowest worker and the servers' optimizer update.
struct PhaseTimes {
  double data_s = 0;     // next batch from the iterator (shuffle gather)
  double compute_s = 0;  // forward + backward
  double issue_s = 0;    // building and queueing push/pull requests
  double push_s = 0;     // waiting for push replies
  double pull_s = 0;     // waiting for pull replies, after the pushes completed
  double report_s = 0;   // ReportStep, progress line, metrics line
  double eval_s = 0;     // intermediate evaluations (the final one is not in train_s)
};

struct TrainSummary {
  std::string model;
  std::string sync;
  int workers = 0;
  int servers = 0;
  int64_t steps = 0;
  int64_t batch_size = 0;       // per worker
  double epochs = 0;            // steps / steps-per-epoch of the smallest partition
  int64_t samples = 0;          // trained examples over all workers (this worker's * W)
  double samples_per_sec = 0;   // samples / train_s
  double final_loss = 0;        // mean training loss of worker 0's last log window
  double test_accuracy = 0;
  double test_loss = 0;
  int64_t test_examples = 0;
  double setup_s = 0;           // data load, declare, first pull
  double train_s = 0;           // the step loop
  double final_eval_s = 0;      // final pull and evaluation
  double wall_s = 0;            // everything the worker function did
  PhaseTimes phases;
  uint64_t bytes_pushed = 0;    // by this worker
  uint64_t bytes_pulled = 0;
  // --sync=allreduce|hybrid: gradient bytes this worker all-reduced (GradSync); 0 = left
  // out of the JSON.
  uint64_t bytes_allreduced = 0;
  uint64_t params_digest = 0;
  // Sparse models only (worker/sparse/); negative = not reported, left out of the JSON.
  double test_auc = -1;           // logreg, widedeep
  double logloss = -1;            // logreg, widedeep: test log-loss
  double heldout_loss = -1;       // word2vec
  double initial_eval_loss = -1;  // the same loss before the first step
  uint64_t keys_pushed = 0;       // sparse keys this worker sent (after dedup)
  uint64_t keys_pulled = 0;
};

// FNV-1a 64 (common/hash.h) chained over the raw f32 bytes of `values` in order: the
// digest of tensor i is seeded with the digest of tensors 0..i-1.
uint64_t ParamsDigest(const std::vector<const Tensor*>& values);
// 16 lowercase hex digits.
std::string DigestHex(uint64_t digest);

// {"event":"summary", ...} on one line, without a newline.
std::string SummaryJson(const TrainSummary& summary);

// Appends JSON lines to a file, flushing each line so a crashed run keeps what it wrote.
class MetricsWriter {
 public:
  // An empty path gives a writer that writes nothing. Creates missing parent directories.
  // Returns InvalidArgument naming the path when it cannot be opened for writing.
  static Result<std::unique_ptr<MetricsWriter>> Open(const std::string& path);
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;

  // loss is written with 17 significant digits, so equal lines mean bitwise-equal losses.
  void Step(int64_t step, double epoch, double loss, double samples_per_sec);
  void Eval(int64_t step, double test_accuracy, double test_loss, int64_t examples);
  void Summary(const TrainSummary& summary);
  // A checkpoint committed while training: {"event":"checkpoint","step":..,"bytes_written":..}.
  void Checkpoint(int64_t step, uint64_t bytes_written);

 private:
  explicit MetricsWriter(std::FILE* f) : f_(f) {}
  void Line(const std::string& json);

  std::FILE* f_;  // owned; null when disabled
};

}  // namespace tessera::worker
