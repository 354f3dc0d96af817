// Mlp: a multi-layer perceptron classifier with softmax cross-entropy loss.
//
// Layers "fc1" .. "fc<L>": hidden Linear layers with the configured activation, then a
// final Linear with the identity producing the logits. Parameters in order: fc1.weight,
// fc1.bias, fc2.weight, ... (see Linear for shapes and default initialisation).
//
// Thread safety: one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "common/param_spec.h"
#include "common/status.h"
#include "worker/model/linear.h"
#include "worker/model/model.h"

namespace tessera::model {

// "256,128" -> {256, 128}; "" (or only spaces) -> {} (softmax regression). Spaces around
// numbers are allowed. Anything else (empty element, sign, non-digit, 0, > 2^24) ->
// InvalidArgument naming the text and the bad element.
Result<std::vector<int64_t>> ParseHiddenSizes(std::string_view text);

// "relu", "gelu", "none" (or "identity"). Anything else -> InvalidArgument.
Result<Activation> ParseActivation(std::string_view name);

struct MlpConfig {
  // Features per example. Default: 784 (MNIST).
  int64_t input_dim = 784;
  // Widths of the hidden layers, input side first. Default: {} (softmax regression).
  std::vector<int64_t> hidden_sizes = {};
  // Classes, i.e. logits per example. Default: 10.
  int64_t num_classes = 10;
  // Activation of the hidden layers. Default: ReLU.
  Activation activation = Activation::kRelu;
  // Seed of every ParamSpec (the job's --seed). Default: 0.
  uint64_t seed = 0;
  // Stamped into every ParamSpec. Default: SGD, lr 0.01.
  OptimizerConfig optimizer = {};
  // Where parameters, activations and gradients live and every op runs (--device).
  // Default: the CPU.
  Device device = Device::kCPU;
};

class Mlp final : public Model {
 public:
  // Returns InvalidArgument when a size is < 1, or an allocation's error (no CUDA in this
  // build, device out of memory). Parameters are zero until
  // InitializeParameters() or a pull from the servers.
  static Result<std::unique_ptr<Mlp>> Create(const MlpConfig& config);

  std::vector<Parameter*> parameters() override;
  Device device() const override { return config_.device; }
  // features/labels may be on the host or on the model's device; host ones are copied
  // to the device first (synchronously: the trainer stages batches itself, Evaluate
  // does not).
  Result<LossResult> Forward(TensorView features, TensorView labels) override;
  Status Backward(TensorView input_grad = {}) override;
  Result<TensorView> Predict(TensorView features) override;

  const MlpConfig& config() const { return config_; }
  int num_layers() const { return static_cast<int>(layers_.size()); }
  Linear& layer(int i) { return *layers_[static_cast<size_t>(i)]; }

 private:
  explicit Mlp(const MlpConfig& config) : config_(config) {}
  Result<TensorView> RunLayers(TensorView features);
  // `v` itself when it is on the model's device, else a copy in *staged (grown to fit).
  Result<TensorView> OnDevice(TensorView v, Tensor* staged);

  // Constant after construction
  MlpConfig config_;
  std::vector<std::unique_ptr<Linear>> layers_;

  // State of the last Forward
  bool backward_ready_ = false;
  int64_t rows_ = 0;
  Tensor dlogits_;  // [capacity, num_classes]
  Tensor features_;  // host features copied to the device, [capacity, input_dim]
  Tensor labels_;    // host labels copied to the device, [capacity]
};

}  // namespace tessera::model
