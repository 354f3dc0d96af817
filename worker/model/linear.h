// Linear: y = act(x @ W + b), with W [in, out] and b [out], using the kernels' GEMM front
// and fused bias + activation (forward and backward).
//
// Parameters, in order: "<name>.weight" [in, out] and "<name>.bias" [out]. Default
// initialisation (LinearOptions): weight kUniform with scale sqrt(6 / fan_in) (He) for ReLU
// and GELU, sqrt(6 / (fan_in + fan_out)) (Glorot) for the identity; bias kZeros.
//
// Thread safety: see Layer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/param_spec.h"
#include "kernels/ops.h"
#include "worker/model/layer.h"

namespace tessera::model {

using kernels::Activation;

struct LinearOptions {
  // Seed stamped into both ParamSpecs (the name separates their streams). Default: 0.
  uint64_t seed = 0;
  // Optimizer settings stamped into both ParamSpecs (servers apply them). Default: SGD.
  OptimizerConfig optimizer = {};
  // Where the parameters, activations and gradients live and the kernels run; inputs
  // and output gradients must be on it too. Default: the CPU.
  Device device = Device::kCPU;
};

// He or Glorot uniform scale for a weight feeding activation `act` (rule above).
float DefaultWeightInitScale(Activation act, int64_t fan_in, int64_t fan_out);

class Linear final : public Layer {
 public:
  // Returns InvalidArgument when in or out < 1 or name is empty, or the allocation's
  // error (no CUDA in this build, out of device memory). Values are zero until
  // initialised (InitializeParam, or pulled from the servers).
  static Result<std::unique_ptr<Linear>> Create(std::string name, int64_t in, int64_t out,
                                                Activation act, const LinearOptions& options = {});

  const std::string& name() const override { return name_; }
  int64_t in_features() const override { return in_; }
  int64_t out_features() const override { return out_; }
  Activation activation() const { return act_; }
  std::vector<Parameter*> parameters() override { return {&weight_, &bias_}; }
  Parameter& weight() { return weight_; }
  Parameter& bias() { return bias_; }

  Result<TensorView> Forward(TensorView x) override;
  Result<TensorView> Backward(TensorView dy, bool want_input_grad) override;

 private:
  Linear(std::string name, int64_t in, int64_t out, Activation act, const LinearOptions& options);
  // A [rows, cols] f32 view of the first rows of *t, on device_; grows *t (discarding
  // its contents) to hold them.
  Result<TensorView> Rows(Tensor* t, int64_t rows, int64_t cols);

  // Constant after construction
  std::string name_;
  int64_t in_;
  int64_t out_;
  Activation act_;
  Device device_;
  Parameter weight_;
  Parameter bias_;

  // Per-batch state, grown to the largest batch seen.
  TensorView x_;       // the last Forward's input (caller-owned)
  int64_t rows_ = -1;  // B of the last Forward; -1 before any
  Tensor pre_;         // x @ W, [capacity, out]: the fused op's input, kept for Backward
  Tensor y_;           // [capacity, out]
  Tensor dpre_;        // [capacity, out]
  Tensor dx_;          // [capacity, in]
};

}  // namespace tessera::model
