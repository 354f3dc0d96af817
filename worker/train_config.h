// TrainConfig: everything `tessera train` decides about one training run, as a plain
// value with validated fields. launch/train_main.cc fills it from gflags; tests fill it
// directly. The loop that consumes it is worker/trainer.h; the reference of every flag
// is docs/training.md.
//
// Thread safety: a value; the parse/validate functions are pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/param_spec.h"
#include "common/status.h"
#include "worker/model/mlp.h"
#include "worker/sparse/sparse_config.h"

namespace tessera::worker {

// Models `--model` accepts, in the order error messages list them.
const std::vector<std::string>& KnownModels();

// "sgd", "momentum", "adagrad", "adam", "adamw". Anything else -> InvalidArgument that
// quotes the name and lists the accepted ones.
Result<OptimizerKind> ParseOptimizerKind(std::string_view name);
std::string_view OptimizerKindName(OptimizerKind kind);

struct TrainConfig {
  // Which model: one of KnownModels(). Default: "mlp".
  std::string model = "mlp";
  // Model shape and the optimizer the servers apply (stamped into every ParamSpec);
  // mlp.seed is the job's --seed. Default: MlpConfig's defaults.
  model::MlpConfig mlp;
  // Directory holding the MNIST IDX files (docs/models.md). Default: "data/mnist".
  std::string data_dir = "data/mnist";
  // Examples per step on each worker (the global batch is batch_size * W). Default: 64.
  int64_t batch_size = 64;
  // Passes over the smallest worker partition, used when steps == 0. Default: 1.
  int64_t epochs = 1;
  // Steps every worker runs; > 0 overrides epochs. Default: 0.
  int64_t steps = 0;
  // Seed of the parameter initialisers and of the data shuffle. Default: 0.
  uint64_t seed = 0;
  // Reshuffle every epoch (deterministically, docs/models.md). Default: true.
  bool shuffle = true;
  // Progress line on stderr every this many steps (worker 0); 0: none. Default: 50.
  int64_t log_every = 50;
  // Evaluate on the test split every this many steps (worker 0); 0: only at the end.
  // Default: 0.
  int64_t eval_every = 0;
  // Rows per forward pass during evaluation. Default: 1000.
  int64_t eval_batch_size = 1000;
  // Use only the first N training / test examples (0: all). Default: 0.
  int64_t train_limit = 0;
  int64_t test_limit = 0;
  // JSON-lines metrics written by worker 0 ("" = none). Default: "".
  std::string metrics_out;
  // Bounded wait of each push/pull/barrier (the job's --request_timeout_s). Default: 300 s.
  double request_timeout_s = 300;
  // Settings of the sparse models (logreg, widedeep, word2vec, dlrm; worker/sparse/).
  SparseConfig sparse;
};

// Checks every field; the first problem found is returned as InvalidArgument naming the
// flag and the bad value (unknown model lists KnownModels()). Does not touch the disk.
Status ValidateTrainConfig(const TrainConfig& config);

// Steps every worker runs: config.steps when > 0, else
// epochs * ceil(min partition size / batch_size), where the partitions are those of
// data::ShardRange over the first `train_examples` examples among `num_workers`.
// REQUIRES: ValidateTrainConfig(config) is OK, num_workers >= 1.
int64_t PlannedSteps(const TrainConfig& config, int64_t train_examples, int num_workers);

// Steps in one epoch of the smallest partition: ceil(min partition size / batch_size).
int64_t StepsPerEpoch(int64_t batch_size, int64_t train_examples, int num_workers);

}  // namespace tessera::worker
