#include "worker/train_config.h"

#include <algorithm>
#include <cmath>

#include "worker/data/dataset.h"

namespace tessera::worker {

namespace {

struct OptimizerName {
  OptimizerKind kind;
  const char* name;
};
constexpr OptimizerName kOptimizers[] = {
    {OptimizerKind::kSgd, "sgd"},     {OptimizerKind::kMomentum, "momentum"},
    {OptimizerKind::kAdaGrad, "adagrad"}, {OptimizerKind::kAdam, "adam"},
    {OptimizerKind::kAdamW, "adamw"},
};

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? " or " : ", ";
    out += items[i];
  }
  return out;
}

Status Bad(const std::string& flag, const std::string& value, const std::string& why) {
  return Status::InvalidArgument("--" + flag + "=" + value + ": " + why);
}

}  // namespace

const std::vector<std::string>& KnownModels() {
  static const std::vector<std::string> models = {"mlp", "logreg", "widedeep", "word2vec", "dlrm"};
  return models;
}

Result<OptimizerKind> ParseOptimizerKind(std::string_view name) {
  for (const auto& o : kOptimizers) {
    if (name == o.name) return o.kind;
  }
  std::vector<std::string> names;
  for (const auto& o : kOptimizers) names.emplace_back(o.name);
  return Status::InvalidArgument("unknown optimizer '" + std::string(name) + "': expected " +
                                 Join(names));
}

std::string_view OptimizerKindName(OptimizerKind kind) {
  for (const auto& o : kOptimizers) {
    if (o.kind == kind) return o.name;
  }
  return "?";
}

Status ValidateTrainConfig(const TrainConfig& c) {
  const auto& models = KnownModels();
  if (std::find(models.begin(), models.end(), c.model) == models.end()) {
    return Status::InvalidArgument("unknown model '" + c.model + "': expected " + Join(models));
  }
  if (c.data_dir.empty()) return Bad("data", "", "the data directory must not be empty");
  if (c.batch_size < 1) return Bad("batch_size", std::to_string(c.batch_size), "must be >= 1");
  if (c.steps < 0) return Bad("steps", std::to_string(c.steps), "must be >= 0");
  if (c.steps == 0 && c.epochs < 1) {
    return Bad("epochs", std::to_string(c.epochs), "must be >= 1 (or give --steps > 0)");
  }
  if (c.log_every < 0) return Bad("log_every", std::to_string(c.log_every), "must be >= 0");
  if (c.eval_every < 0) return Bad("eval_every", std::to_string(c.eval_every), "must be >= 0");
  if (c.eval_batch_size < 1) {
    return Bad("eval_batch_size", std::to_string(c.eval_batch_size), "must be >= 1");
  }
  if (c.train_limit < 0) return Bad("train_limit", std::to_string(c.train_limit), "must be >= 0");
  if (c.test_limit < 0) return Bad("test_limit", std::to_string(c.test_limit), "must be >= 0");
  if (!(c.request_timeout_s > 0)) {
    return Bad("request_timeout_s", std::to_string(c.request_timeout_s), "must be > 0");
  }
  const OptimizerConfig& o = c.mlp.optimizer;
  if (!(o.lr > 0) || !std::isfinite(o.lr)) return Bad("lr", std::to_string(o.lr), "must be a finite number > 0");
  if (!(o.momentum >= 0 && o.momentum < 1)) {
    return Bad("momentum", std::to_string(o.momentum), "must be in [0, 1)");
  }
  if (!(o.weight_decay >= 0) || !std::isfinite(o.weight_decay)) {
    return Bad("weight_decay", std::to_string(o.weight_decay), "must be a finite number >= 0");
  }
  if (!(o.clip_norm >= 0) || !std::isfinite(o.clip_norm)) {
    return Bad("clip_norm", std::to_string(o.clip_norm), "must be a finite number >= 0 (0 = off)");
  }
  if (IsSparseModel(c.model)) {
    TESSERA_RETURN_IF_ERROR(ValidateSparseConfig(c.sparse));
    // The sparse loop evaluates before the first step and after the last only.
    if (c.eval_every != 0) {
      return Bad("eval_every", std::to_string(c.eval_every), "not supported for --model=" + c.model + " (use 0)");
    }
  }
  return Status::OK();
}

int64_t StepsPerEpoch(int64_t batch_size, int64_t train_examples, int num_workers) {
  int64_t min_shard = train_examples;
  for (int w = 0; w < num_workers; ++w) {
    min_shard = std::min(min_shard, data::ShardRange(train_examples, w, num_workers).size());
  }
  return std::max<int64_t>(1, (min_shard + batch_size - 1) / batch_size);
}

int64_t PlannedSteps(const TrainConfig& c, int64_t train_examples, int num_workers) {
  if (c.steps > 0) return c.steps;
  return c.epochs * StepsPerEpoch(c.batch_size, train_examples, num_workers);
}

}  // namespace tessera::worker
