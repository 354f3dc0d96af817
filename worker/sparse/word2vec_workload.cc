#include "worker/sparse/word2vec_workload.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "common/hash.h"
#include "kernels/math/loss.h"
#include "worker/data/corpus.h"
#include "worker/sparse/key_index.h"
#include "worker/sparse/row_staging.h"

namespace tessera::worker::sparse {

namespace {

constexpr uint64_t kKeepSalt = 0x6b656570ULL;
constexpr uint64_t kWindowSalt = 0x77696e64ULL;
constexpr uint64_t kNoiseSalt = 0x6e6f6973ULL;
constexpr int64_t kNoiseTableSize = int64_t{1} << 22;
constexpr int64_t kEvalOffsets[] = {-2, -1, 1, 2};

float Dot(const float* a, const float* b, int64_t n) {
  float s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Pairs of one batch: pair p has input row in_row[p] and targets
// [t_off[p], t_off[p+1]) of t_row/t_label (the positive first).
struct Pairs {
  std::vector<int32_t> in_row;
  std::vector<int64_t> t_off{0};
  std::vector<int32_t> t_row;
  std::vector<float> t_label;
  void Clear() {
    in_row.clear();
    t_off.assign(1, 0);
    t_row.clear();
    t_label.clear();
  }
  int64_t size() const { return static_cast<int64_t>(in_row.size()); }
};

class Word2Vec final : public SparseWorkload {
 public:
  explicit Word2Vec(const TrainConfig& c) : c_(c), D_(c.sparse.embed_dim) {}

  Status Init(int rank, int world) {
    data::CorpusOptions o;
    o.min_count = c_.sparse.min_count;
    o.heldout_fraction = c_.sparse.heldout_fraction;
    o.limit = c_.train_limit;
    o.rank = rank;
    o.world = world;
    TESSERA_ASSIGN_OR_RETURN(corpus_, data::LoadCorpus(c_.data_dir, o));
    if (corpus_.train.empty()) {
      return Status::InvalidArgument(
          "worker " + std::to_string(rank) + " has no training tokens (" +
          std::to_string(corpus_.total_train) + " in-vocabulary tokens for " +
          std::to_string(world) + " workers)");
    }
    noise_ = data::UnigramTable(corpus_.vocab, 0.75, kNoiseTableSize);
    keep_ = data::KeepProbabilities(corpus_.vocab, c_.sparse.subsample);
    // Held-out pairs: every (p, p + d) with both inside the tail, thinned evenly to the cap.
    const int64_t n = static_cast<int64_t>(corpus_.heldout.size());
    std::vector<std::pair<int32_t, int32_t>> all;
    for (int64_t p = 0; p < n; ++p) {
      for (int64_t d : kEvalOffsets) {
        if (p + d >= 0 && p + d < n) all.emplace_back(corpus_.heldout[p], corpus_.heldout[p + d]);
      }
    }
    const double stride = std::max(
        1.0, static_cast<double>(all.size()) / static_cast<double>(c_.sparse.heldout_pairs));
    for (double i = 0; static_cast<size_t>(i) < all.size(); i += stride)
      eval_pairs_.push_back(all[static_cast<size_t>(i)]);
    // Neighbour words.
    std::string list =
        c_.sparse.neighbours.empty() ? "two,war,united,film,god" : c_.sparse.neighbours;
    std::stringstream ss(list);
    std::string w;
    while (std::getline(ss, w, ',')) {
      if (corpus_.vocab.Find(w) >= 0) probe_words_.push_back(corpus_.vocab.Find(w));
    }
    return Status::OK();
  }

  std::string name() const override { return "word2vec"; }

  std::vector<ParamSpec> SparseParams() const override { return Word2VecSparseParams(c_); }
  std::vector<model::Parameter*> DenseParameters() override { return {}; }
  int64_t local_examples() const override { return static_cast<int64_t>(corpus_.train.size()); }
  int64_t total_examples() const override { return corpus_.total_train; }
  const data::Corpus& corpus() const { return corpus_; }

  Status Prepare(std::span<const int64_t> examples, int64_t epoch, SparseBatch* batch) override {
    cur_ = &slots_[batch->slot & 1];
    cur_->Clear();
    in_index_.Reset(examples.size());
    out_index_.Reset(examples.size() * 4 * (1 + c_.sparse.negatives));
    const int64_t n = static_cast<int64_t>(corpus_.train.size());
    const uint64_t ebase = HashCombine(c_.seed, static_cast<uint64_t>(epoch));
    const auto kept = [&](int64_t p) {
      const uint64_t g = static_cast<uint64_t>(corpus_.first_index + p);
      return UnitFloat(HashCombine(ebase ^ kKeepSalt, g)) < keep_[corpus_.train[p]];
    };
    for (int64_t p : examples) {
      if (!kept(p)) continue;
      const uint64_t g = static_cast<uint64_t>(corpus_.first_index + p);
      const int64_t b = 1 + static_cast<int64_t>(HashCombine(ebase ^ kWindowSalt, g) %
                                                 static_cast<uint64_t>(c_.sparse.window));
      const int32_t c = corpus_.train[p];
      for (int64_t q = std::max<int64_t>(0, p - b); q <= std::min(n - 1, p + b); ++q) {
        if (q == p || !kept(q)) continue;
        AddPair(c, corpus_.train[q],
                HashCombine(ebase ^ kNoiseSalt, g * 256 + static_cast<uint64_t>(q - p + 128)));
      }
    }
    return Finish(static_cast<int64_t>(examples.size()), batch);
  }

  Result<double> Step(SparseBatch* batch) override {
    cur_ = &slots_[batch->slot & 1];
    if (staging_ != nullptr) return StepStaged(batch);
    const float* in = batch->tables[0].values.as<float>();
    const float* out = batch->tables[1].values.as<float>();
    float* gin = batch->tables[0].grads.as<float>();
    float* gout = batch->tables[1].grads.as<float>();
    std::fill(gin, gin + batch->tables[0].grads.numel(), 0.0f);
    std::fill(gout, gout + batch->tables[1].grads.numel(), 0.0f);
    double loss = 0;
    for (int64_t p = 0; p < cur_->size(); ++p) {
      const float* v = in + static_cast<int64_t>(cur_->in_row[p]) * D_;
      float* gv = gin + static_cast<int64_t>(cur_->in_row[p]) * D_;
      for (int64_t t = cur_->t_off[p]; t < cur_->t_off[p + 1]; ++t) {
        const int64_t r = cur_->t_row[t];
        const float* u = out + r * D_;
        float* gu = gout + r * D_;
        const float s = Dot(u, v, D_);
        const float y = cur_->t_label[t];
        loss += kernels::math::SigmoidBceLoss(s, y);
        const float g = kernels::math::Sigmoid(s) - y;
        for (int64_t d = 0; d < D_; ++d) {
          gv[d] += g * u[d];
          gu[d] += g * v[d];
        }
      }
    }
    batch->loss_scale = static_cast<double>(std::max<int64_t>(1, cur_->size()));
    return cur_->size() > 0 ? loss / static_cast<double>(cur_->size()) : 0.0;
  }

  int64_t NumEvalBatches() const override {
    return (static_cast<int64_t>(eval_pairs_.size()) + c_.eval_batch_size - 1) /
               c_.eval_batch_size +
           1;
  }

  Status PrepareEval(int64_t i, SparseBatch* batch) override {
    cur_ = &slots_[batch->slot & 1];
    cur_->Clear();
    if (i + 1 == NumEvalBatches()) {  // every input vector, for the neighbours
      batch->tables.resize(2);
      batch->tables[0].keys.resize(static_cast<size_t>(corpus_.vocab.size()));
      for (int32_t w = 0; w < corpus_.vocab.size(); ++w)
        batch->tables[0].keys[w] = static_cast<Key>(w);
      batch->tables[1].keys.clear();
      TESSERA_RETURN_IF_ERROR(batch->tables[0].Resize(D_));
      TESSERA_RETURN_IF_ERROR(batch->tables[1].Resize(D_));
      batch->examples = 0;
      return Status::OK();
    }
    in_index_.Reset(static_cast<size_t>(c_.eval_batch_size));
    out_index_.Reset(static_cast<size_t>(c_.eval_batch_size) * (1 + c_.sparse.negatives));
    const size_t b = static_cast<size_t>(i * c_.eval_batch_size);
    const size_t e = std::min(eval_pairs_.size(), b + static_cast<size_t>(c_.eval_batch_size));
    for (size_t k = b; k < e; ++k)
      AddPair(eval_pairs_[k].first, eval_pairs_[k].second, HashCombine(kNoiseSalt, k));
    return Finish(static_cast<int64_t>(e - b), batch);
  }

  Status Eval(int64_t i, const SparseBatch& batch) override {
    cur_ = &slots_[batch.slot & 1];
    if (i + 1 == NumEvalBatches()) {
      vectors_.assign(batch.tables[0].values.as<float>(),
                      batch.tables[0].values.as<float>() + batch.tables[0].values.numel());
      return Status::OK();
    }
    const float* in = batch.tables[0].values.as<float>();
    const float* out = batch.tables[1].values.as<float>();
    for (int64_t p = 0; p < cur_->size(); ++p) {
      const float* v = in + static_cast<int64_t>(cur_->in_row[p]) * D_;
      for (int64_t t = cur_->t_off[p]; t < cur_->t_off[p + 1]; ++t) {
        eval_loss_ += kernels::math::SigmoidBceLoss(
            Dot(out + static_cast<int64_t>(cur_->t_row[t]) * D_, v, D_), cur_->t_label[t]);
      }
    }
    eval_count_ += cur_->size();
    return Status::OK();
  }

  EvalReport FinishEval() override {
    EvalReport r;
    r.heldout_loss = eval_count_ > 0 ? eval_loss_ / static_cast<double>(eval_count_) : 0.0;
    r.examples = eval_count_;
    eval_loss_ = 0;
    eval_count_ = 0;
    const int32_t V = corpus_.vocab.size();
    std::vector<float> norm(static_cast<size_t>(V));
    for (int32_t w = 0; w < V; ++w)
      norm[w] = std::sqrt(Dot(&vectors_[w * D_], &vectors_[w * D_], D_)) + 1e-12f;
    for (int32_t q : probe_words_) {
      std::vector<std::pair<float, int32_t>> sims;
      for (int32_t w = 0; w < V; ++w) {
        if (w == q) continue;
        sims.emplace_back(Dot(&vectors_[q * D_], &vectors_[w * D_], D_) / (norm[q] * norm[w]), w);
      }
      const size_t k = std::min<size_t>(8, sims.size());
      std::partial_sort(sims.begin(), sims.begin() + static_cast<std::ptrdiff_t>(k), sims.end(),
                        [](const auto& a, const auto& b) { return a.first > b.first; });
      std::string line = "nearest to '" + corpus_.vocab.words[q] + "':";
      for (size_t j = 0; j < k; ++j) {
        char buf[96];
        std::snprintf(buf, sizeof(buf), " %s (%.3f)", corpus_.vocab.words[sims[j].second].c_str(),
                      sims[j].first);
        line += buf;
      }
      r.lines.push_back(line);
    }
    if (!c_.sparse.embeddings_out.empty()) {
      std::ofstream f(c_.sparse.embeddings_out);
      for (int32_t w = 0; w < V && f; ++w) {
        f << corpus_.vocab.words[w];
        for (int64_t d = 0; d < D_; ++d) f << ' ' << vectors_[w * D_ + d];
        f << '\n';
      }
      if (!f) r.lines.push_back("could not write --embeddings_out=" + c_.sparse.embeddings_out);
    }
    return r;
  }

 private:
  // Step with the rows on the device (staging_, RowStaging::PairDotStep): the targets'
  // dot products and their backward run there; the loss and d loss / d score, per
  // target in target order, here, with Step's loop's arithmetic, so the same bits.
  Result<double> StepStaged(SparseBatch* batch) {
    const int64_t T = static_cast<int64_t>(cur_->t_row.size());
    in_ids_.resize(static_cast<size_t>(T));
    out_ids_.resize(static_cast<size_t>(T));
    for (int64_t p = 0; p < cur_->size(); ++p) {
      for (int64_t t = cur_->t_off[p]; t < cur_->t_off[p + 1]; ++t) {
        in_ids_[t] = cur_->in_row[p];
        out_ids_[t] = cur_->t_row[t];
      }
    }
    double loss = 0;
    TESSERA_RETURN_IF_ERROR(
        staging_->PairDotStep(batch, in_ids_, out_ids_, [&](std::span<const float> s, std::span<float> g) {
          for (size_t t = 0; t < s.size(); ++t) {
            const float y = cur_->t_label[t];
            loss += kernels::math::SigmoidBceLoss(s[t], y);
            g[t] = kernels::math::Sigmoid(s[t]) - y;
          }
        }));
    batch->loss_scale = static_cast<double>(std::max<int64_t>(1, cur_->size()));
    return cur_->size() > 0 ? loss / static_cast<double>(cur_->size()) : 0.0;
  }

  void AddPair(int32_t center, int32_t context, uint64_t noise_seed) {
    cur_->in_row.push_back(in_index_.Insert(static_cast<Key>(center)));
    cur_->t_row.push_back(out_index_.Insert(static_cast<Key>(context)));
    cur_->t_label.push_back(1.0f);
    for (int k = 0; k < c_.sparse.negatives; ++k) {
      const int32_t nw =
          noise_[HashCombine(noise_seed, static_cast<uint64_t>(k)) & (kNoiseTableSize - 1)];
      if (nw == context) continue;
      cur_->t_row.push_back(out_index_.Insert(static_cast<Key>(nw)));
      cur_->t_label.push_back(0.0f);
    }
    cur_->t_off.push_back(static_cast<int64_t>(cur_->t_row.size()));
  }

  Status Finish(int64_t examples, SparseBatch* batch) {
    batch->examples = examples;
    batch->tables.resize(2);
    batch->tables[0].keys = in_index_.keys();
    batch->tables[1].keys = out_index_.keys();
    TESSERA_RETURN_IF_ERROR(batch->tables[0].Resize(D_));
    TESSERA_RETURN_IF_ERROR(batch->tables[1].Resize(D_));
    return Status::OK();
  }

  const TrainConfig c_;
  const int64_t D_;
  data::Corpus corpus_;
  std::vector<int32_t> noise_;
  std::vector<float> keep_;
  std::vector<std::pair<int32_t, int32_t>> eval_pairs_;
  std::vector<int32_t> probe_words_;
  KeyIndex in_index_, out_index_;
  // One per SparseBatch::slot, so the next batch can be prepared while this one computes.
  Pairs slots_[2];
  Pairs* cur_ = &slots_[0];
  std::vector<float> vectors_;  // [V, D] input vectors of the last evaluation
  // StepStaged: per target, its input and output rows.
  std::vector<int64_t> in_ids_, out_ids_;
  double eval_loss_ = 0;
  int64_t eval_count_ = 0;
};

}  // namespace

std::vector<ParamSpec> Word2VecSparseParams(const TrainConfig& c) {
  const int64_t dim = c.sparse.embed_dim;
  ParamSpec in;
  in.name = "w2v.input";
  in.kind = ParamKind::kSparse;
  in.shape = {dim};
  in.init = InitKind::kUniform;
  in.init_scale = 0.5f / static_cast<float>(dim);
  in.seed = c.seed;
  in.optimizer = c.mlp.optimizer;
  ParamSpec out = in;
  out.name = "w2v.output";
  out.init = InitKind::kZeros;
  out.init_scale = 0;
  return {in, out};
}

Result<std::unique_ptr<SparseWorkload>> CreateWord2VecWorkload(const TrainConfig& config, int rank,
                                                               int world) {
  auto w = std::make_unique<Word2Vec>(config);
  TESSERA_RETURN_IF_ERROR_CTX(w->Init(rank, world), "loading --data=" + config.data_dir);
  return std::unique_ptr<SparseWorkload>(std::move(w));
}

}  // namespace tessera::worker::sparse
