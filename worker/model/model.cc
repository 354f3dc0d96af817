#include "worker/model/model.h"

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
    TESSERA_RETURN_IF_ERROR(InitializeParam(p->spec, p->value.view(), 0));
  }
  return Status::OK();
}

}  // namespace tessera::model
