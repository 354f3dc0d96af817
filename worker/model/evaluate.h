// Evaluation of a model on a whole Dataset, in file order and fixed-size batches.
//
// Thread safety: uses the model, so one thread at a time per model.
#pragma once

#include <cstdint>

#include "common/status.h"
#include "worker/data/dataset.h"
#include "worker/model/model.h"

namespace tessera::model {

struct EvalResult {
  double loss = 0;  // mean loss over all examples
  int64_t correct = 0;
  int64_t count = 0;
  double accuracy() const { return count > 0 ? static_cast<double>(correct) / count : 0.0; }
};

// Runs Forward over dataset rows [0, N) in batches of batch_size (views into the dataset,
// no copy) and sums. Leaves the model's cached forward state replaced (call Backward
// before, not after). Returns InvalidArgument when batch_size < 1, or the first error of
// a Forward.
Result<EvalResult> Evaluate(Model& model, const data::Dataset& dataset, int64_t batch_size);

}  // namespace tessera::model
