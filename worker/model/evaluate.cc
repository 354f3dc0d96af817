#include "worker/model/evaluate.h"

#include <algorithm>
#include <string>

namespace tessera::model {

Result<EvalResult> Evaluate(Model& model, const data::Dataset& dataset, int64_t batch_size) {
  if (batch_size < 1) {
    return Status::InvalidArgument("Evaluate: batch_size must be >= 1, got " +
                                   std::to_string(batch_size));
  }
  EvalResult result;
  double loss_sum = 0;
  for (int64_t begin = 0; begin < dataset.num_examples; begin += batch_size) {
    const int64_t end = std::min(dataset.num_examples, begin + batch_size);
    TESSERA_ASSIGN_OR_RETURN(const LossResult r, model.Forward(dataset.FeatureRows(begin, end),
                                                               dataset.LabelRows(begin, end)));
    loss_sum += r.loss * static_cast<double>(r.count);
    result.correct += r.correct;
    result.count += r.count;
  }
  result.loss = result.count > 0 ? loss_sum / static_cast<double>(result.count) : 0.0;
  return result;
}

}  // namespace tessera::model
