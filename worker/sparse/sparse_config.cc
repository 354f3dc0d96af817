#include "worker/sparse/sparse_config.h"

#include <cmath>

namespace tessera::worker {

namespace {
Status Bad(const std::string& flag, const std::string& value, const std::string& why) {
  return Status::InvalidArgument("--" + flag + "=" + value + ": " + why);
}
}  // namespace

bool IsSparseModel(const std::string& model) {
  return model == "logreg" || model == "widedeep" || model == "word2vec" || model == "dlrm";
}

Status ValidateSparseConfig(const SparseConfig& c) {
  if (c.cross_order < 1 || c.cross_order > 3)
    return Bad("cross_order", std::to_string(c.cross_order), "must be 1, 2 or 3");
  if (c.hash_bits < 1 || c.hash_bits > 62)
    return Bad("hash_bits", std::to_string(c.hash_bits), "must be in [1, 62]");
  if (c.embed_dim < 1 || c.embed_dim > 4096)
    return Bad("embed_dim", std::to_string(c.embed_dim), "must be in [1, 4096]");
  for (int64_t w : c.bottom_mlp) {
    if (w < 1 || w > 65536) return Bad("bottom_mlp", std::to_string(w), "every width must be in [1, 65536]");
  }
  if (c.window < 1 || c.window > 100)
    return Bad("window", std::to_string(c.window), "must be in [1, 100]");
  if (c.negatives < 0 || c.negatives > 100)
    return Bad("negatives", std::to_string(c.negatives), "must be in [0, 100]");
  if (c.min_count < 1) return Bad("min_count", std::to_string(c.min_count), "must be >= 1");
  if (!(c.subsample >= 0) || !std::isfinite(c.subsample)) {
    return Bad("subsample", std::to_string(c.subsample), "must be a finite number >= 0 (0 = off)");
  }
  if (!(c.heldout_fraction > 0 && c.heldout_fraction <= 0.5)) {
    return Bad("heldout_fraction", std::to_string(c.heldout_fraction), "must be in (0, 0.5]");
  }
  if (c.heldout_pairs < 1)
    return Bad("heldout_pairs", std::to_string(c.heldout_pairs), "must be >= 1");
  return Status::OK();
}

}  // namespace tessera::worker
