// Metrics of a binary classifier from its logits: ROC AUC and mean log-loss.
//
// Thread safety: pure functions.
#pragma once

#include <vector>

namespace tessera::worker::sparse {

// Area under the ROC curve of `scores` against 0/1 `labels` (the Mann-Whitney statistic;
// tied scores count one half). 0.5 when one class is absent.
double Auc(const std::vector<float>& scores, const std::vector<float>& labels);

// Mean -[y log p + (1-y) log(1-p)] with p = sigmoid(logit), computed stably.
double LogLoss(const std::vector<float>& logits, const std::vector<float>& labels);

}  // namespace tessera::worker::sparse
