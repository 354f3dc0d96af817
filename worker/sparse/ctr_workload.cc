#include "worker/sparse/ctr_workload.h"

#include <algorithm>
#include <cmath>

#include "common/hash.h"
#include "common/timeline.h"
#include "kernels/transfer.h"
#include "kernels/ops.h"
#include "worker/data/libsvm.h"
#include "worker/model/linear.h"
#include "worker/sparse/binary_metrics.h"
#include "worker/sparse/key_index.h"
#include "worker/sparse/row_staging.h"

namespace tessera::worker::sparse {

namespace {

constexpr uint64_t kCrossSalt = 0x5eed0c055ULL;

// Per-batch layout: example b's wide terms are wide_row/wide_x[wide_off[b] .. wide_off[b+1]),
// its deep terms deep_row/deep_x[deep_off[b] .. deep_off[b+1]).
struct Layout {
  std::vector<int64_t> wide_off{0}, deep_off{0};
  std::vector<int64_t> wide_row, deep_row;
  std::vector<float> wide_x, deep_x;
  std::vector<float> labels;
  void Clear() {
    wide_off.assign(1, 0);
    deep_off.assign(1, 0);
    wide_row.clear();
    deep_row.clear();
    wide_x.clear();
    deep_x.clear();
    labels.clear();
  }
};

class CtrWorkload final : public SparseWorkload {
 public:
  CtrWorkload(const TrainConfig& c, bool deep, std::optional<Device> mlp_device)
      : c_(c), deep_(deep), mlp_device_(mlp_device) {}

  bool dense_on_device() const override { return deep_ && mlp_device_.has_value(); }

  Status Init(int rank, int world, bool load_test) {
    TESSERA_ASSIGN_OR_RETURN(std::string train_path,
                             data::LibsvmSplitPath(c_.data_dir, data::Split::kTrain));
    data::LoadOptions lo;
    lo.rank = rank;
    lo.world = world;
    lo.limit = c_.train_limit;
    TESSERA_ASSIGN_OR_RETURN(train_, data::LoadLibsvm(train_path, lo));
    if (load_test) {
      TESSERA_ASSIGN_OR_RETURN(std::string test_path,
                               data::LibsvmSplitPath(c_.data_dir, data::Split::kTest));
      data::LoadOptions to;
      to.limit = c_.test_limit;
      TESSERA_ASSIGN_OR_RETURN(test_, data::LoadLibsvm(test_path, to));
    }
    if (deep_) {
      model::LinearOptions lopt;
      lopt.seed = c_.seed;
      lopt.optimizer = c_.mlp.optimizer;
      lopt.device = mlp_device_.value_or(Device::kCPU);
      int64_t in = c_.sparse.embed_dim;
      std::vector<int64_t> widths = c_.mlp.hidden_sizes;
      widths.push_back(1);
      for (size_t i = 0; i < widths.size(); ++i) {
        const bool last = i + 1 == widths.size();
        TESSERA_ASSIGN_OR_RETURN(
            auto layer,
            model::Linear::Create("deep.fc" + std::to_string(i + 1), in, widths[i],
                                  last ? kernels::Activation::kIdentity : c_.mlp.activation, lopt));
        layers_.push_back(std::move(layer));
        in = widths[i];
      }
    }
    return Status::OK();
  }

  std::string name() const override { return deep_ ? "widedeep" : "logreg"; }

  std::vector<ParamSpec> SparseParams() const override { return CtrSparseParams(c_); }

  std::vector<model::Parameter*> DenseParameters() override {
    std::vector<model::Parameter*> out;
    for (auto& l : layers_) {
      for (model::Parameter* p : l->parameters()) out.push_back(p);
    }
    return out;
  }

  int64_t local_examples() const override { return train_.num_examples; }
  int64_t total_examples() const override { return train_.total_examples; }

  Status Prepare(std::span<const int64_t> examples, int64_t /*epoch*/,
                 SparseBatch* batch) override {
    cur_ = &slots_[batch->slot & 1];
    return Build(train_, examples, batch);
  }

  Result<double> Step(SparseBatch* batch) override {
    cur_ = &slots_[batch->slot & 1];
    TESSERA_ASSIGN_OR_RETURN(TensorView logits, Forward(*batch, staging_ != nullptr));
    const int64_t B = batch->examples;
    TensorView lab{cur_->labels.data(), DType::kF32, {B}, Device::kCPU};
    TESSERA_ASSIGN_OR_RETURN(double loss,
                             kernels::SigmoidBinaryCrossEntropy(logits, lab, dlogits_.view()));
    batch->loss_scale = 1;
    // Wide: d/dw[row] += dlogit_b * x.
    const float* dl = dlogits_.as<float>();
    if (staging_ != nullptr) {
      // Each term's gradient, summed per row on the device (in term order, as below).
      wide_vals_.resize(cur_->wide_row.size());
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t t = cur_->wide_off[b]; t < cur_->wide_off[b + 1]; ++t) wide_vals_[t] = dl[b] * cur_->wide_x[t];
      }
      TESSERA_RETURN_IF_ERROR(staging_->ScatterAdd(batch, 0, cur_->wide_row, wide_vals_.data()));
    } else {
      SparseRows& wide = batch->tables[0];
      float* wg = wide.grads.as<float>();
      std::fill(wg, wg + wide.grads.numel(), 0.0f);
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t t = cur_->wide_off[b]; t < cur_->wide_off[b + 1]; ++t) {
          wg[cur_->wide_row[t]] += dl[b] * cur_->wide_x[t];
        }
      }
    }
    if (!deep_) return loss;
    // Deep: back through the MLP to the pooled input, then to each occurrence's row.
    TensorView dy = dlogits_.view();
    if (dense_on_device()) {
      TESSERA_ASSIGN_OR_RETURN(dy, ToMlp(&mlp_dlogits_, dy));
    }
    for (size_t i = layers_.size(); i-- > 0;) {
      TESSERA_ASSIGN_OR_RETURN(dy, layers_[i]->Backward(dy, true));
    }
    const int64_t D = c_.sparse.embed_dim;
    const int64_t nnz = static_cast<int64_t>(cur_->deep_row.size());
    occ_grad_.resize(static_cast<size_t>(std::max<int64_t>(nnz, 1) * D));
    const float* dp = dy.as<float>();
    if (dense_on_device()) {
      timeline::Span span("d2h pooled grads", "copy", "bytes", static_cast<int64_t>(dy.nbytes()));
      dpooled_.resize(static_cast<size_t>(dy.numel()));
      TESSERA_RETURN_IF_ERROR(kernels::CopyTensor(dy, TensorView{dpooled_.data(), DType::kF32, dy.shape, Device::kCPU}));
      dp = dpooled_.data();
    }
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = cur_->deep_off[b]; t < cur_->deep_off[b + 1]; ++t) {
        for (int64_t d = 0; d < D; ++d) occ_grad_[t * D + d] = cur_->deep_x[t] * dp[b * D + d];
      }
    }
    if (staging_ != nullptr) {
      TESSERA_RETURN_IF_ERROR(staging_->ScatterAdd(batch, 1, cur_->deep_row, occ_grad_.data()));
      return loss;
    }
    SparseRows& emb = batch->tables[1];
    float* eg = emb.grads.as<float>();
    std::fill(eg, eg + emb.grads.numel(), 0.0f);
    if (nnz > 0) {
      TensorView idx{cur_->deep_row.data(), DType::kI64, {nnz}, Device::kCPU};
      TensorView g{occ_grad_.data(), DType::kF32, {nnz, D}, Device::kCPU};
      TESSERA_RETURN_IF_ERROR(kernels::ScatterAdd(idx, g, emb.grads.view()));
    }
    return loss;
  }

  int64_t NumEvalBatches() const override {
    return (test_.num_examples + c_.eval_batch_size - 1) / c_.eval_batch_size;
  }

  Status PrepareEval(int64_t i, SparseBatch* batch) override {
    cur_ = &slots_[batch->slot & 1];
    const int64_t b = i * c_.eval_batch_size;
    const int64_t e = std::min(test_.num_examples, b + c_.eval_batch_size);
    eval_idx_.resize(static_cast<size_t>(e - b));
    for (int64_t k = b; k < e; ++k) eval_idx_[k - b] = k;
    return Build(test_, eval_idx_, batch);
  }

  Status Eval(int64_t /*i*/, const SparseBatch& batch) override {
    cur_ = &slots_[batch.slot & 1];
    TESSERA_ASSIGN_OR_RETURN(TensorView logits, Forward(batch, false));
    const float* l = logits.as<float>();
    for (int64_t b = 0; b < batch.examples; ++b) eval_.Add(l[b], cur_->labels[b]);
    return Status::OK();
  }

  EvalReport FinishEval() override { return eval_.TakeReport(); }

 private:
  Status Build(const data::SparseExamples& ds, std::span<const int64_t> examples,
               SparseBatch* batch) {
    cur_->Clear();
    const int order = c_.sparse.cross_order;
    wide_index_.Reset(examples.size() * 32);
    deep_index_.Reset(examples.size() * 16);
    for (int64_t ex : examples) {
      const auto f = ds.features_of(ex);
      const auto x = ds.values_of(ex);
      const int64_t m = static_cast<int64_t>(f.size());
      auto add = [&](std::span<const uint32_t> set, float v) {
        cur_->wide_row.push_back(wide_index_.Insert(CrossKey(set, c_.sparse.hash_bits)));
        cur_->wide_x.push_back(v);
      };
      add({}, 1.0f);
      uint32_t s[3];
      for (int64_t i = 0; i < m; ++i) {
        s[0] = f[i];
        add({s, 1}, x[i]);
        if (order < 2) continue;
        for (int64_t j = i + 1; j < m; ++j) {
          s[1] = f[j];
          add({s, 2}, x[i] * x[j]);
          if (order < 3) continue;
          for (int64_t k = j + 1; k < m; ++k) {
            s[2] = f[k];
            add({s, 3}, x[i] * x[j] * x[k]);
          }
        }
      }
      cur_->wide_off.push_back(static_cast<int64_t>(cur_->wide_row.size()));
      if (deep_) {
        for (int64_t i = 0; i < m; ++i) {
          cur_->deep_row.push_back(deep_index_.Insert(f[i]));
          cur_->deep_x.push_back(x[i]);
        }
        cur_->deep_off.push_back(static_cast<int64_t>(cur_->deep_row.size()));
      }
      cur_->labels.push_back(ds.label[ex]);
    }
    batch->examples = static_cast<int64_t>(examples.size());
    batch->tables.resize(deep_ ? 2 : 1);
    batch->tables[0].keys = wide_index_.keys();
    TESSERA_RETURN_IF_ERROR(batch->tables[0].Resize(1));
    if (deep_) {
      batch->tables[1].keys = deep_index_.keys();
      TESSERA_RETURN_IF_ERROR(batch->tables[1].Resize(c_.sparse.embed_dim));
    }
    return Status::OK();
  }

  // Logits of the batch Build laid out, from the pulled rows (and dense values); `staged`:
  // the rows are gathered on the device (staging_).
  Result<TensorView> Forward(const SparseBatch& batch, bool staged) {
    const int64_t B = batch.examples;
    if (logits_.numel() != B) {
      logits_ = Tensor::Zeros(DType::kF32, {B, 1});
      dlogits_ = Tensor::Zeros(DType::kF32, {B, 1});
    }
    float* l = logits_.as<float>();
    if (staged) {
      wide_vals_.resize(cur_->wide_row.size());
      TESSERA_RETURN_IF_ERROR(staging_->Gather(batch, 0, cur_->wide_row, wide_vals_.data()));
      for (int64_t b = 0; b < B; ++b) {
        float z = 0;
        for (int64_t t = cur_->wide_off[b]; t < cur_->wide_off[b + 1]; ++t) z += wide_vals_[t] * cur_->wide_x[t];
        l[b] = z;
      }
    } else {
      const float* w = batch.tables[0].values.as<float>();
      for (int64_t b = 0; b < B; ++b) {
        float z = 0;
        for (int64_t t = cur_->wide_off[b]; t < cur_->wide_off[b + 1]; ++t)
          z += w[cur_->wide_row[t]] * cur_->wide_x[t];
        l[b] = z;
      }
    }
    TensorView logits{l, DType::kF32, {B, 1}, Device::kCPU};
    if (!deep_) return logits;
    const int64_t D = c_.sparse.embed_dim;
    const int64_t nnz = static_cast<int64_t>(cur_->deep_row.size());
    occ_.resize(static_cast<size_t>(std::max<int64_t>(nnz, 1) * D));
    if (staged) {
      TESSERA_RETURN_IF_ERROR(staging_->Gather(batch, 1, cur_->deep_row, occ_.data()));
    } else if (nnz > 0) {
      TensorView idx{cur_->deep_row.data(), DType::kI64, {nnz}, Device::kCPU};
      TensorView out{occ_.data(), DType::kF32, {nnz, D}, Device::kCPU};
      TESSERA_RETURN_IF_ERROR(kernels::EmbeddingGather(batch.tables[1].values.view(), idx, out));
    }
    pooled_.assign(static_cast<size_t>(B * D), 0.0f);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = cur_->deep_off[b]; t < cur_->deep_off[b + 1]; ++t) {
        for (int64_t d = 0; d < D; ++d) pooled_[b * D + d] += cur_->deep_x[t] * occ_[t * D + d];
      }
    }
    TensorView h{pooled_.data(), DType::kF32, {B, D}, Device::kCPU};
    if (dense_on_device()) {
      TESSERA_ASSIGN_OR_RETURN(h, ToMlp(&mlp_in_, h));
    }
    for (auto& layer : layers_) {
      TESSERA_ASSIGN_OR_RETURN(h, layer->Forward(h));
    }
    const float* deep = h.as<float>();
    if (dense_on_device()) {
      timeline::Span span("d2h deep logits", "copy", "bytes", static_cast<int64_t>(h.nbytes()));
      deep_out_.resize(static_cast<size_t>(h.numel()));
      TESSERA_RETURN_IF_ERROR(kernels::CopyTensor(h, TensorView{deep_out_.data(), DType::kF32, h.shape, Device::kCPU}));
      deep = deep_out_.data();
    }
    for (int64_t b = 0; b < B; ++b) l[b] += deep[b];
    return logits;
  }

  // Host -> the MLP's device: `host` copied into *t (grown), whose view is returned.
  Result<TensorView> ToMlp(Tensor* t, TensorView host) {
    timeline::Span span("h2d mlp input", "copy", "bytes", static_cast<int64_t>(host.nbytes()));
    const Device dev = mlp_device_.value_or(Device::kCPU);
    if (t->numel() < host.numel()) {
      TESSERA_ASSIGN_OR_RETURN(*t, kernels::AllocateTensor(dev, DType::kF32, {host.numel() + host.numel() / 2}));
    }
    const TensorView v{t->data(), DType::kF32, host.shape, dev};
    TESSERA_RETURN_IF_ERROR(kernels::CopyTensor(host, v));
    return v;
  }

  const TrainConfig c_;
  const bool deep_;
  const std::optional<Device> mlp_device_;
  // dense_on_device(): the MLP's input and output gradient on its device (kept until the
  // backward that reads them), and its output and input gradient back on the host.
  Tensor mlp_in_, mlp_dlogits_;
  std::vector<float> deep_out_, dpooled_;
  data::SparseExamples train_;
  data::SparseExamples test_;
  std::vector<std::unique_ptr<model::Linear>> layers_;
  KeyIndex wide_index_, deep_index_;
  // One per SparseBatch::slot, so the next batch can be prepared while this one computes.
  Layout slots_[2];
  Layout* cur_ = &slots_[0];
  std::vector<int64_t> eval_idx_;
  Tensor logits_, dlogits_;
  std::vector<float> occ_, occ_grad_, pooled_;
  std::vector<float> wide_vals_;  // staged: the wide terms' gathered weights, then their gradients
  BinaryEval eval_;
};

}  // namespace

Key CrossKey(std::span<const uint32_t> features, int hash_bits) {
  uint64_t h = HashCombine(kCrossSalt, features.size());
  for (uint32_t f : features) h = HashCombine(h, f);
  const uint64_t mask = hash_bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << hash_bits) - 1;
  return h & mask;
}

std::vector<ParamSpec> CtrSparseParams(const TrainConfig& c) {
  const bool deep = c.model == "widedeep";
  std::vector<ParamSpec> out;
  ParamSpec w;
  w.name = deep ? "wide.weight" : "logreg.weight";
  w.kind = ParamKind::kSparse;
  w.shape = {1};
  w.init = InitKind::kZeros;
  w.seed = c.seed;
  w.optimizer = c.mlp.optimizer;
  out.push_back(w);
  if (deep) {
    ParamSpec e = w;
    e.name = "deep.embedding";
    e.shape = {c.sparse.embed_dim};
    e.init = InitKind::kNormal;
    e.init_scale = 0.1f;
    out.push_back(e);
  }
  return out;
}

Result<std::unique_ptr<SparseWorkload>> CreateCtrWorkload(const TrainConfig& config, int rank,
                                                          int world, bool load_test,
                                                          std::optional<Device> mlp_device) {
  if (config.model != "logreg" && config.model != "widedeep") {
    return Status::InvalidArgument("not an a9a model: '" + config.model + "'");
  }
  auto w = std::make_unique<CtrWorkload>(config, config.model == "widedeep", mlp_device);
  TESSERA_RETURN_IF_ERROR_CTX(w->Init(rank, world, load_test), "loading --data=" + config.data_dir);
  return std::unique_ptr<SparseWorkload>(std::move(w));
}

}  // namespace tessera::worker::sparse
