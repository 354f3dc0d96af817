#include "worker/model/model.h"

#include "kernels/ops.h"
#include "kernels/param_init.h"

namespace tessera::model {

std::vector<ParamSpec> Model::Params() {
  std::vector<ParamSpec> specs;
  for (Parameter* p : parameters()) specs.push_back(p->spec);
  return specs;
}

Parameter* Model::FindParam(std::string_view name) {
  for (Parameter* p : parameters()) {
    if (p->spec.name == name) return p;
  }
  return nullptr;
}

Status Model::InitializeParameters() {
  for (Parameter* p : parameters()) {
    if (p->value.view().device == Device::kCPU) {
      TESSERA_RETURN_IF_ERROR(InitializeParam(p->spec, p->value.view(), 0));
      continue;
    }
    // The initialiser is host code: the same values, then copied to the device.
    Tensor host = Tensor::Zeros(p->value.dtype(), p->value.shape());
    TESSERA_RETURN_IF_ERROR(InitializeParam(p->spec, host.view(), 0));
    TESSERA_RETURN_IF_ERROR(kernels::CopyTensor(host.view(), p->value.view()));
  }
  return Status::OK();
}

}  // namespace tessera::model
