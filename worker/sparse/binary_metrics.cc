#include "worker/sparse/binary_metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace tessera::worker::sparse {

double Auc(const std::vector<float>& scores, const std::vector<float>& labels) {
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Sum of the positives' ranks (1-based, ties get their average rank).
  double rank_sum = 0;
  double pos = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double avg_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (size_t k = i; k < j; ++k) {
      if (labels[order[k]] > 0.5f) {
        rank_sum += avg_rank;
        pos += 1;
      }
    }
    i = j;
  }
  const double neg = static_cast<double>(n) - pos;
  if (pos == 0 || neg == 0) return 0.5;
  return (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg);
}

double LogLoss(const std::vector<float>& logits, const std::vector<float>& labels) {
  if (logits.empty()) return 0;
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const double x = logits[i], y = labels[i];
    sum += std::max(x, 0.0) - x * y + std::log1p(std::exp(-std::fabs(x)));
  }
  return sum / static_cast<double>(logits.size());
}

EvalReport BinaryEval::TakeReport() {
  EvalReport r;
  r.examples = static_cast<int64_t>(scores_.size());
  r.test_auc = Auc(scores_, labels_);
  r.logloss = LogLoss(scores_, labels_);
  int64_t right = 0;
  for (size_t i = 0; i < scores_.size(); ++i) right += (scores_[i] > 0) == (labels_[i] > 0.5f) ? 1 : 0;
  r.accuracy = scores_.empty() ? 0.0 : static_cast<double>(right) / static_cast<double>(scores_.size());
  scores_.clear();
  labels_.clear();
  return r;
}

}  // namespace tessera::worker::sparse
