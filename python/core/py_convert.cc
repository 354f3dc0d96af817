#include "python/core/py_convert.h"

#include <pybind11/stl.h>

namespace tessera::python {

namespace {

Result<OptimizerKind> OptimizerKindOf(const std::string& s) {
  if (s == "sgd") return OptimizerKind::kSgd;
  if (s == "momentum") return OptimizerKind::kMomentum;
  if (s == "adagrad") return OptimizerKind::kAdaGrad;
  if (s == "adam") return OptimizerKind::kAdam;
  if (s == "adamw") return OptimizerKind::kAdamW;
  return Status::InvalidArgument("unknown server optimizer '" + s + "'");
}

Result<InitKind> InitKindOf(const std::string& s) {
  if (s == "zeros") return InitKind::kZeros;
  if (s == "uniform") return InitKind::kUniform;
  if (s == "normal") return InitKind::kNormal;
  if (s == "constant") return InitKind::kConstant;
  return Status::InvalidArgument("unknown initialiser '" + s + "': expected zeros, uniform, normal or constant");
}

}  // namespace

void Raise(const Status& st) {
  if (!st.ok()) throw TesseraError(st.ToString());
}

void Raise(const ArgCheck& c) {
  if (c.problem == ArgProblem::kType) throw py::type_error(c.message);
  if (c.problem == ArgProblem::kValue) throw py::value_error(c.message);
}

TensorArg ToArg(const py::tuple& t) {
  if (t.size() != 5) throw py::value_error("a tensor argument is (address, shape, strides, dtype, device)");
  TensorArg a;
  a.address = t[0].cast<uint64_t>();
  a.shape = t[1].cast<std::vector<int64_t>>();
  a.strides = t[2].cast<std::vector<int64_t>>();
  a.dtype = t[3].cast<std::string>();
  a.device = t[4].cast<std::string>();
  return a;
}

Duration Seconds(double s) { return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s)); }

ParamSpec SpecFromDict(const py::dict& d) {
  ParamSpec p;
  p.name = d["name"].cast<std::string>();
  const std::string kind = d["kind"].cast<std::string>();
  if (kind != "dense" && kind != "sparse") throw py::value_error("parameter '" + p.name + "': kind must be dense or sparse");
  p.kind = kind == "dense" ? ParamKind::kDense : ParamKind::kSparse;
  p.shape = d["shape"].cast<std::vector<int64_t>>();
  if (p.shape.empty() || NumElements(p.shape) <= 0) {
    throw py::value_error("parameter '" + p.name + "' has no elements");
  }
  auto init = InitKindOf(d["init"].cast<std::string>());
  if (!init.ok()) throw py::value_error("parameter '" + p.name + "': " + init.status().message());
  p.init = *init;
  p.init_scale = d["scale"].cast<float>();
  p.seed = d["seed"].cast<uint64_t>();
  const py::dict o = d["optimizer"].cast<py::dict>();
  auto k = OptimizerKindOf(o["kind"].cast<std::string>());
  if (!k.ok()) throw py::value_error("parameter '" + p.name + "': " + k.status().message());
  p.optimizer.kind = *k;
  p.optimizer.lr = o["lr"].cast<float>();
  p.optimizer.momentum = o["momentum"].cast<float>();
  p.optimizer.nesterov = o["nesterov"].cast<bool>();
  p.optimizer.beta1 = o["beta1"].cast<float>();
  p.optimizer.beta2 = o["beta2"].cast<float>();
  p.optimizer.eps = o["eps"].cast<float>();
  p.optimizer.weight_decay = o["weight_decay"].cast<float>();
  p.optimizer.initial_accumulator = o["initial_accumulator"].cast<float>();
  return p;
}

}  // namespace tessera::python
