#include "worker/model/mlp.h"

#include <string>

#include "kernels/ops.h"
#include "kernels/transfer.h"

namespace tessera::model {
namespace {

constexpr int64_t kMaxLayerWidth = int64_t{1} << 24;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

}  // namespace

Result<std::vector<int64_t>> ParseHiddenSizes(std::string_view text) {
  std::vector<int64_t> sizes;
  if (Trim(text).empty()) return sizes;
  size_t start = 0;
  for (int index = 0;; ++index) {
    const size_t comma = text.find(',', start);
    const std::string_view item = Trim(text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    auto bad = [&](const std::string& why) {
      return Status::InvalidArgument("hidden sizes '" + std::string(text) + "': element " +
                                     std::to_string(index) + " ('" + std::string(item) + "') " +
                                     why);
    };
    if (item.empty()) return bad("is empty");
    int64_t v = 0;
    for (char c : item) {
      if (c < '0' || c > '9') return bad("is not a positive integer");
      v = v * 10 + (c - '0');
      if (v > kMaxLayerWidth) return bad("exceeds 2^24");
    }
    if (v == 0) return bad("is zero");
    sizes.push_back(v);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return sizes;
}

Result<Activation> ParseActivation(std::string_view name) {
  if (name == "relu") return Activation::kRelu;
  if (name == "gelu") return Activation::kGelu;
  if (name == "none" || name == "identity") return Activation::kIdentity;
  return Status::InvalidArgument("unknown activation '" + std::string(name) +
                                 "': expected relu, gelu or none");
}

Result<std::unique_ptr<Mlp>> Mlp::Create(const MlpConfig& config) {
  if (config.input_dim < 1 || config.num_classes < 1) {
    return Status::InvalidArgument("Mlp: input_dim and num_classes must be >= 1, got " +
                                   std::to_string(config.input_dim) + " and " +
                                   std::to_string(config.num_classes));
  }
  std::unique_ptr<Mlp> mlp(new Mlp(config));
  const LinearOptions options{.seed = config.seed, .optimizer = config.optimizer, .device = config.device};
  int64_t in = config.input_dim;
  const size_t n = config.hidden_sizes.size();
  for (size_t i = 0; i <= n; ++i) {
    const bool last = i == n;
    const int64_t out = last ? config.num_classes : config.hidden_sizes[i];
    TESSERA_ASSIGN_OR_RETURN(
        auto layer, Linear::Create("fc" + std::to_string(i + 1), in, out,
                                   last ? Activation::kIdentity : config.activation, options));
    mlp->layers_.push_back(std::move(layer));
    in = out;
  }
  return mlp;
}

std::vector<Parameter*> Mlp::parameters() {
  std::vector<Parameter*> out;
  for (auto& layer : layers_) {
    for (Parameter* p : layer->parameters()) out.push_back(p);
  }
  return out;
}

Result<TensorView> Mlp::OnDevice(TensorView v, Tensor* staged) {
  if (v.device == config_.device) return v;
  if (staged->numel() < v.numel() || staged->dtype() != v.dtype) {
    TESSERA_ASSIGN_OR_RETURN(*staged, kernels::AllocateTensor(config_.device, v.dtype, v.shape));
  }
  TensorView out{staged->data(), v.dtype, v.shape, config_.device};
  TESSERA_RETURN_IF_ERROR_CTX(kernels::CopyTensor(v, out), "Mlp: copying the batch to the device");
  return out;
}

Result<TensorView> Mlp::RunLayers(TensorView features) {
  backward_ready_ = false;
  TESSERA_ASSIGN_OR_RETURN(TensorView h, OnDevice(std::move(features), &features_));
  for (auto& layer : layers_) {
    TESSERA_ASSIGN_OR_RETURN(h, layer->Forward(h));
  }
  return h;
}

Result<TensorView> Mlp::Predict(TensorView features) { return RunLayers(std::move(features)); }

Result<LossResult> Mlp::Forward(TensorView features, TensorView labels) {
  TESSERA_ASSIGN_OR_RETURN(const TensorView logits, RunLayers(std::move(features)));
  TESSERA_ASSIGN_OR_RETURN(labels, OnDevice(std::move(labels), &labels_));
  const int64_t rows = logits.shape[0];
  if (labels.dtype != DType::kI32 || labels.shape.size() != 1 || labels.shape[0] != rows) {
    return Status::InvalidArgument("Mlp: labels must be i32 [" + std::to_string(rows) + "], got " +
                                   std::string(DTypeName(labels.dtype)) +
                                   ShapeToString(labels.shape));
  }
  if (dlogits_.numel() < rows * config_.num_classes) {
    TESSERA_ASSIGN_OR_RETURN(dlogits_, kernels::AllocateTensor(config_.device, DType::kF32, {rows, config_.num_classes}));
  }
  const TensorView dlogits{dlogits_.data(), DType::kF32, {rows, config_.num_classes}, config_.device};
  LossResult result;
  result.count = rows;
  TESSERA_ASSIGN_OR_RETURN(result.loss, kernels::SoftmaxCrossEntropy(logits, labels, dlogits));
  TESSERA_ASSIGN_OR_RETURN(result.correct, kernels::CountCorrect(logits, labels));
  rows_ = rows;
  backward_ready_ = true;
  return result;
}

Status Mlp::Backward(TensorView input_grad) {
  if (!backward_ready_) return Status::FailedPrecondition("Mlp: Backward without a Forward");
  const bool want_input = input_grad.data != nullptr;
  if (want_input &&
      (input_grad.dtype != DType::kF32 || input_grad.shape != Shape{rows_, config_.input_dim})) {
    return Status::InvalidArgument("Mlp: input_grad must be f32 [" + std::to_string(rows_) + ", " +
                                   std::to_string(config_.input_dim) + "], got " +
                                   std::string(DTypeName(input_grad.dtype)) +
                                   ShapeToString(input_grad.shape));
  }
  TensorView dy{dlogits_.data(), DType::kF32, {rows_, config_.num_classes}, config_.device};
  for (size_t i = layers_.size(); i-- > 0;) {
    TESSERA_ASSIGN_OR_RETURN(dy, layers_[i]->Backward(dy, i > 0 || want_input));
    for (Parameter* p : layers_[i]->parameters()) GradReady(p);
  }
  if (want_input) TESSERA_RETURN_IF_ERROR(kernels::CopyTensor(dy, input_grad));
  return Status::OK();
}

}  // namespace tessera::model
