#include "worker/sparse/dlrm_workload.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "kernels/math/interaction.h"
#include "kernels/ops.h"
#include "worker/data/criteo.h"
#include "worker/model/linear.h"
#include "worker/sparse/binary_metrics.h"
#include "worker/sparse/key_index.h"
#include "worker/sparse/row_staging.h"

namespace tessera::worker::sparse {

namespace {

constexpr int kDense = data::kCriteoDense;
constexpr int kFields = data::kCriteoCategorical;
constexpr int64_t kVectors = kFields + 1;  // bottom output + embeddings
constexpr int64_t kPairs = kVectors * (kVectors - 1) / 2;

// Per-batch layout: example b's row in table f is rows[f][b].
struct Layout {
  std::array<std::vector<int64_t>, kFields> rows;
  std::vector<float> dense;  // [B, 13]
  std::vector<float> labels;
};

Result<std::vector<std::unique_ptr<model::Linear>>> MakeMlp(const std::string& prefix, int64_t in,
                                                            std::vector<int64_t> widths,
                                                            bool act_last, const TrainConfig& c) {
  model::LinearOptions lopt;
  lopt.seed = c.seed;
  lopt.optimizer = c.mlp.optimizer;
  std::vector<std::unique_ptr<model::Linear>> out;
  for (size_t i = 0; i < widths.size(); ++i) {
    const bool last = i + 1 == widths.size();
    const kernels::Activation act =
        last && !act_last ? kernels::Activation::kIdentity : c.mlp.activation;
    TESSERA_ASSIGN_OR_RETURN(auto layer, model::Linear::Create(prefix + std::to_string(i + 1), in,
                                                               widths[i], act, lopt));
    out.push_back(std::move(layer));
    in = widths[i];
  }
  return out;
}

class DlrmWorkload final : public SparseWorkload {
 public:
  explicit DlrmWorkload(const TrainConfig& c) : c_(c), d_(c.sparse.embed_dim) {}

  Status Init(int rank, int world, bool load_test) {
    TESSERA_ASSIGN_OR_RETURN(data::CriteoPaths paths, data::CriteoSplitPaths(c_.data_dir));
    TESSERA_ASSIGN_OR_RETURN(data::CriteoPlan plan,
                             data::PlanCriteo(paths, rank, world, c_.train_limit, c_.test_limit));
    TESSERA_ASSIGN_OR_RETURN(train_,
                             data::LoadCriteoRange(paths.train, plan.train_begin, plan.train_end));
    train_.total_examples = plan.total_train;
    if (load_test) {
      TESSERA_ASSIGN_OR_RETURN(
          test_, data::LoadCriteoRange(paths.valid.empty() ? paths.train : paths.valid,
                                       plan.eval_begin, plan.eval_end));
    }
    std::vector<int64_t> bottom = c_.sparse.bottom_mlp;
    bottom.push_back(d_);
    TESSERA_ASSIGN_OR_RETURN(bottom_,
                             MakeMlp("dlrm.bot.fc", kDense, bottom, /*act_last=*/true, c_));
    std::vector<int64_t> top = c_.mlp.hidden_sizes;
    top.push_back(1);
    TESSERA_ASSIGN_OR_RETURN(top_,
                             MakeMlp("dlrm.top.fc", d_ + kPairs, top, /*act_last=*/false, c_));
    return Status::OK();
  }

  std::string name() const override { return "dlrm"; }
  std::vector<ParamSpec> SparseParams() const override { return DlrmSparseParams(c_); }

  std::vector<model::Parameter*> DenseParameters() override {
    std::vector<model::Parameter*> out;
    for (auto* mlp : {&bottom_, &top_}) {
      for (auto& l : *mlp) {
        for (model::Parameter* p : l->parameters()) out.push_back(p);
      }
    }
    return out;
  }

  int64_t local_examples() const override { return train_.num_examples; }
  int64_t total_examples() const override { return train_.total_examples; }

  Status Prepare(std::span<const int64_t> examples, int64_t /*epoch*/,
                 SparseBatch* batch) override {
    return Build(train_, examples, batch);
  }

  Result<double> Step(SparseBatch* batch) override {
    const Layout& lay = slots_[batch->slot & 1];
    const int64_t B = batch->examples;
    TESSERA_ASSIGN_OR_RETURN(TensorView logits, Forward(*batch, staging_ != nullptr));
    TensorView lab{const_cast<float*>(lay.labels.data()), DType::kF32, {B}, Device::kCPU};
    TESSERA_ASSIGN_OR_RETURN(double loss,
                             kernels::SigmoidBinaryCrossEntropy(logits, lab, dlogits_.view()));
    batch->loss_scale = 1;
    // Top MLP back to its input [bottom output | interactions].
    TensorView dy = dlogits_.view();
    for (size_t i = top_.size(); i-- > 0;) {
      TESSERA_ASSIGN_OR_RETURN(dy, top_[i]->Backward(dy, true));
    }
    const int64_t R = d_ + kPairs;
    const float* dr = dy.as<float>();
    dpairs_.resize(static_cast<size_t>(B * kPairs));
    for (int64_t b = 0; b < B; ++b) {
      std::memcpy(&dpairs_[b * kPairs], dr + b * R + d_, sizeof(float) * kPairs);
    }
    dbot_.resize(static_cast<size_t>(B * d_));
    if (staging_ != nullptr) {
      // On the device: the interaction's backward, and the tables' row gradients.
      dslot0_.resize(static_cast<size_t>(B * d_));
      TESSERA_RETURN_IF_ERROR(staging_->InteractBackward(batch, dpairs_.data(), dslot0_.data()));
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t k = 0; k < d_; ++k) dbot_[b * d_ + k] = dr[b * R + k] + dslot0_[b * d_ + k];
      }
      TensorView dx{dbot_.data(), DType::kF32, {B, d_}, Device::kCPU};
      for (size_t i = bottom_.size(); i-- > 0;) {
        TESSERA_ASSIGN_OR_RETURN(dx, bottom_[i]->Backward(dx, i > 0));
      }
      return loss;
    }
    dvec_.resize(static_cast<size_t>(B * kVectors * d_));
    TESSERA_RETURN_IF_ERROR(kernels::PairwiseDotBackward(
        VecView(vec_.data(), B), TensorView{dpairs_.data(), DType::kF32, {B, kPairs}, Device::kCPU},
        VecView(dvec_.data(), B)));
    // Bottom output: its direct path into the top MLP plus its interactions.
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t k = 0; k < d_; ++k)
        dbot_[b * d_ + k] = dr[b * R + k] + dvec_[b * kVectors * d_ + k];
    }
    TensorView dx{dbot_.data(), DType::kF32, {B, d_}, Device::kCPU};
    for (size_t i = bottom_.size(); i-- > 0;) {
      TESSERA_ASSIGN_OR_RETURN(dx, bottom_[i]->Backward(dx, i > 0));
    }
    // Embeddings: each example's vector gradient into its row of the field's table.
    femb_.resize(static_cast<size_t>(B * d_));
    for (int f = 0; f < kFields; ++f) {
      SparseRows& t = batch->tables[f];
      for (int64_t b = 0; b < B; ++b) {
        std::memcpy(&femb_[b * d_], &dvec_[(b * kVectors + 1 + f) * d_], sizeof(float) * d_);
      }
      std::fill(t.grads.as<float>(), t.grads.as<float>() + t.grads.numel(), 0.0f);
      TensorView idx{const_cast<int64_t*>(lay.rows[f].data()), DType::kI64, {B}, Device::kCPU};
      TESSERA_RETURN_IF_ERROR(kernels::ScatterAdd(
          idx, TensorView{femb_.data(), DType::kF32, {B, d_}, Device::kCPU}, t.grads.view()));
    }
    return loss;
  }

  int64_t NumEvalBatches() const override {
    return (test_.num_examples + c_.eval_batch_size - 1) / c_.eval_batch_size;
  }

  Status PrepareEval(int64_t i, SparseBatch* batch) override {
    const int64_t b = i * c_.eval_batch_size;
    const int64_t e = std::min(test_.num_examples, b + c_.eval_batch_size);
    eval_idx_.resize(static_cast<size_t>(e - b));
    for (int64_t k = b; k < e; ++k) eval_idx_[k - b] = k;
    return Build(test_, eval_idx_, batch);
  }

  Status Eval(int64_t /*i*/, const SparseBatch& batch) override {
    TESSERA_ASSIGN_OR_RETURN(TensorView logits, Forward(batch, false));
    const float* l = logits.as<float>();
    const Layout& lay = slots_[batch.slot & 1];
    for (int64_t b = 0; b < batch.examples; ++b) eval_.Add(l[b], lay.labels[b]);
    return Status::OK();
  }

  EvalReport FinishEval() override { return eval_.TakeReport(); }

 private:
  TensorView VecView(float* p, int64_t B) const {
    return {p, DType::kF32, {B, kVectors, d_}, Device::kCPU};
  }

  Status Build(const data::CriteoExamples& ds, std::span<const int64_t> examples,
               SparseBatch* batch) {
    Layout& lay = slots_[batch->slot & 1];
    const size_t B = examples.size();
    lay.dense.resize(B * kDense);
    lay.labels.resize(B);
    for (int f = 0; f < kFields; ++f) {
      index_[f].Reset(B);
      lay.rows[f].resize(B);
    }
    for (size_t b = 0; b < B; ++b) {
      const int64_t ex = examples[b];
      const auto dense = ds.dense_of(ex);
      std::copy(dense.begin(), dense.end(), lay.dense.begin() + static_cast<int64_t>(b) * kDense);
      const auto keys = ds.keys_of(ex);
      for (int f = 0; f < kFields; ++f) lay.rows[f][b] = index_[f].Insert(keys[f]);
      lay.labels[b] = ds.label[ex];
    }
    batch->examples = static_cast<int64_t>(B);
    batch->tables.resize(kFields);
    for (int f = 0; f < kFields; ++f) {
      batch->tables[f].keys = index_[f].keys();
      TESSERA_RETURN_IF_ERROR(batch->tables[f].Resize(d_));
    }
    return Status::OK();
  }

  // Logits [B, 1] of the batch Build laid out, from the pulled rows and dense values;
  // `staged`: the rows are gathered on the device (staging_).
  Result<TensorView> Forward(const SparseBatch& batch, bool staged) {
    const Layout& lay = slots_[batch.slot & 1];
    const int64_t B = batch.examples;
    if (dlogits_.numel() != B) dlogits_ = Tensor::Zeros(DType::kF32, {B, 1});
    TensorView h{const_cast<float*>(lay.dense.data()), DType::kF32, {B, kDense}, Device::kCPU};
    for (auto& layer : bottom_) {
      TESSERA_ASSIGN_OR_RETURN(h, layer->Forward(h));
    }
    const float* bot = h.as<float>();
    pairs_.resize(static_cast<size_t>(B * kPairs));
    if (staged) {
      // The rows, their layout and the interaction on the device (RowStaging).
      std::array<std::span<const int64_t>, kFields> ids;
      for (int f = 0; f < kFields; ++f) ids[f] = lay.rows[f];
      TESSERA_RETURN_IF_ERROR(staging_->InteractForward(batch, bot, ids, pairs_.data()));
      return TopForward(bot, B);
    }
    // The 27 vectors of each example, side by side: [B, 27, D].
    vec_.resize(static_cast<size_t>(B * kVectors * d_));
    femb_.resize(static_cast<size_t>(B * d_));
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(&vec_[b * kVectors * d_], bot + b * d_, sizeof(float) * d_);
    for (int f = 0; f < kFields; ++f) {
      TensorView idx{const_cast<int64_t*>(lay.rows[f].data()), DType::kI64, {B}, Device::kCPU};
      TESSERA_RETURN_IF_ERROR(
          kernels::EmbeddingGather(batch.tables[f].values.view(), idx,
                                   TensorView{femb_.data(), DType::kF32, {B, d_}, Device::kCPU}));
      for (int64_t b = 0; b < B; ++b) {
        std::memcpy(&vec_[(b * kVectors + 1 + f) * d_], &femb_[b * d_], sizeof(float) * d_);
      }
    }
    TESSERA_RETURN_IF_ERROR(
        kernels::PairwiseDot(VecView(vec_.data(), B),
                             TensorView{pairs_.data(), DType::kF32, {B, kPairs}, Device::kCPU}));
    return TopForward(bot, B);
  }

  // The top MLP over [bottom output | interactions] (pairs_).
  Result<TensorView> TopForward(const float* bot, int64_t B) {
    const int64_t R = d_ + kPairs;
    top_in_.resize(static_cast<size_t>(B * R));
    for (int64_t b = 0; b < B; ++b) {
      std::memcpy(&top_in_[b * R], bot + b * d_, sizeof(float) * d_);
      std::memcpy(&top_in_[b * R + d_], &pairs_[b * kPairs], sizeof(float) * kPairs);
    }
    TensorView t{top_in_.data(), DType::kF32, {B, R}, Device::kCPU};
    for (auto& layer : top_) {
      TESSERA_ASSIGN_OR_RETURN(t, layer->Forward(t));
    }
    return t;
  }

  const TrainConfig c_;
  const int64_t d_;
  data::CriteoExamples train_, test_;
  std::vector<std::unique_ptr<model::Linear>> bottom_, top_;
  std::array<KeyIndex, kFields> index_;
  // One per SparseBatch::slot, so the next batch can be prepared while this one computes.
  Layout slots_[2];
  std::vector<int64_t> eval_idx_;
  Tensor dlogits_;
  // Activations of the last Forward (the MLPs keep views of vec_/top_in_ until Backward).
  std::vector<float> vec_, femb_, pairs_, top_in_;
  std::vector<float> dpairs_, dvec_, dbot_;
  std::vector<float> dslot0_;  // staged: d loss / d (bottom output) through the interaction
  BinaryEval eval_;
};

}  // namespace

std::vector<ParamSpec> DlrmSparseParams(const TrainConfig& c) {
  std::vector<ParamSpec> out;
  for (int f = 1; f <= kFields; ++f) {
    ParamSpec e;
    e.name = "dlrm.emb.C" + std::to_string(f);
    e.kind = ParamKind::kSparse;
    e.shape = {c.sparse.embed_dim};
    e.init = InitKind::kNormal;
    e.init_scale = 0.01f;
    e.seed = c.seed;
    e.optimizer = c.mlp.optimizer;
    out.push_back(e);
  }
  return out;
}

Result<std::unique_ptr<SparseWorkload>> CreateDlrmWorkload(const TrainConfig& config, int rank,
                                                           int world, bool load_test) {
  if (config.model != "dlrm")
    return Status::InvalidArgument("not the dlrm model: '" + config.model + "'");
  auto w = std::make_unique<DlrmWorkload>(config);
  TESSERA_RETURN_IF_ERROR_CTX(w->Init(rank, world, load_test), "loading --data=" + config.data_dir);
  return std::unique_ptr<SparseWorkload>(std::move(w));
}

}  // namespace tessera::worker::sparse
