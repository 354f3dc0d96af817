// Model: what the training loop needs from any model: its parameter declarations (to
// register with the coordinator and create on the servers), its parameter and gradient
// tensors in a fixed order (to pull into and push from), and a forward/backward step on
// a labelled batch.
//
// Gradients are those of the batch's MEAN loss. Backward overwrites them.
//
// Thread safety: one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "common/param_spec.h"
#include "common/status.h"
#include "common/tensor.h"
#include "worker/model/layer.h"

namespace tessera::model {

struct LossResult {
  double loss = 0;      // mean loss over the batch
  int64_t correct = 0;  // rows whose argmax logit equals the label
  int64_t count = 0;    // rows in the batch
};

class Model {
 public:
  virtual ~Model() = default;

  // The declarations of every parameter, in the same fixed order as parameters().
  std::vector<ParamSpec> Params();
  // Every parameter, in a fixed order; pointers stay valid for the model's life.
  virtual std::vector<Parameter*> parameters() = 0;
  // Where the parameters' values and gradients live. Default: the CPU.
  virtual Device device() const { return Device::kCPU; }
  // The parameter called `name`, or nullptr.
  Parameter* FindParam(std::string_view name);

  // Fills every parameter's value with InitializeParam (the servers' rule), so a model
  // initialised locally equals one pulled from freshly created servers.
  Status InitializeParameters();

  // Runs the model on features (f32 [B, D]) with labels (i32 [B]) and caches
  // what Backward needs. REQUIRES features and labels stay alive and unchanged until
  // Backward returns. Returns InvalidArgument on a shape/dtype mismatch or a label
  // outside [0, num_classes).
  virtual Result<LossResult> Forward(TensorView features, TensorView labels) = 0;

  // Fills every parameter's grad for the last Forward's mean loss. When input_grad is
  // present (f32 [B, D]), also writes dL/dfeatures into it.
  // Returns FailedPrecondition without a preceding Forward.
  virtual Status Backward(TensorView input_grad = {}) = 0;

  // Logits (f32 [B, num_classes], model-owned, valid until the next Forward/Predict) for
  // features f32 [B, D]. It replaces the cached forward state: a Backward after it
  // returns FailedPrecondition until the next Forward.
  virtual Result<TensorView> Predict(TensorView features) = 0;

  // Called by Backward with each parameter as soon as its gradient is final, so the
  // all-reduce path (worker/grad_sync.h) can start sending it while backward goes on.
  // Runs on the thread calling Backward. Default: none. A model that never calls it is
  // still correct (its gradients are all-reduced after Backward, without overlap).
  void set_grad_ready_hook(std::function<void(Parameter*)> hook) { grad_ready_ = std::move(hook); }

 protected:
  void GradReady(Parameter* p) {
    if (grad_ready_) grad_ready_(p);
  }

 private:
  std::function<void(Parameter*)> grad_ready_;
};

}  // namespace tessera::model
