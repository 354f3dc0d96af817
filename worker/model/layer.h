// Layer: one differentiable block of a model, with named parameters.
//
// A layer owns its Parameters (value and gradient tensors, f32, in the memory of the
// device it computes on) and the buffers
// of its outputs and input gradients. Forward caches what Backward needs; the training
// loop (worker/trainer) pulls parameter values from the servers into Parameter::value
// and pushes Parameter::grad, so both tensors keep their address for the layer's life.
//
// Thread safety: one thread at a time per layer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/param_spec.h"
#include "common/status.h"
#include "common/tensor.h"

namespace tessera::model {

// A named parameter: its declaration, current value and the gradient of the last Backward.
struct Parameter {
  ParamSpec spec;
  Tensor value;  // spec.dtype, spec.shape
  Tensor grad;   // same shape; overwritten (not accumulated) by each Backward
};

class Layer {
 public:
  virtual ~Layer() = default;

  virtual const std::string& name() const = 0;
  virtual int64_t in_features() const = 0;
  virtual int64_t out_features() const = 0;

  // The layer's parameters in a fixed order. Pointers stay valid for the layer's life.
  virtual std::vector<Parameter*> parameters() = 0;

  // y = f(x). x: f32 [B, in_features()] on the layer's device. Returns a view of the layer-owned output
  // [B, out_features()], valid until the next Forward. The layer keeps a view of x for
  // Backward: REQUIRES x stays alive and unchanged until Backward returns.
  // Returns InvalidArgument on a shape or dtype mismatch.
  virtual Result<TensorView> Forward(TensorView x) = 0;

  // Given dy = dL/dy for the last Forward's output ([B, out_features()]; not modified),
  // overwrites every parameter's grad and, when want_input_grad, returns dL/dx
  // ([B, in_features()], layer-owned, valid until the next Backward); otherwise returns
  // an empty view. REQUIRES a Forward with the same B before it (else FailedPrecondition).
  virtual Result<TensorView> Backward(TensorView dy, bool want_input_grad) = 0;
};

}  // namespace tessera::model
