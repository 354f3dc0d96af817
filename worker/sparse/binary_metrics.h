// Metrics of a binary classifier from its logits: ROC AUC, mean log-loss, accuracy.
//
// Thread safety: the free functions are pure; a BinaryEval belongs to the thread that
// runs its workload's evaluation.
#pragma once

#include <cstdint>
#include <vector>

#include "worker/sparse/workload.h"

namespace tessera::worker::sparse {

// Area under the ROC curve of `scores` against 0/1 `labels` (the Mann-Whitney statistic;
// tied scores count one half). 0.5 when one class is absent.
double Auc(const std::vector<float>& scores, const std::vector<float>& labels);

// Mean -[y log p + (1-y) log(1-p)] with p = sigmoid(logit), computed stably.
double LogLoss(const std::vector<float>& logits, const std::vector<float>& labels);

// The logits and labels of one evaluation, gathered batch by batch (logreg, widedeep and
// dlrm score examples the same way, so they report the same metrics).
class BinaryEval {
 public:
  void Add(float logit, float label) {
    scores_.push_back(logit);
    labels_.push_back(label);
  }
  // AUC, log-loss and accuracy (logit > 0 read as class 1) of what was added, which is
  // then forgotten for the next evaluation.
  EvalReport TakeReport();

 private:
  std::vector<float> scores_, labels_;
};

}  // namespace tessera::worker::sparse
