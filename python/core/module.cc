// tessera._core: the C++ side of the Python package (docs/python.md). A thin layer over
// the job machinery every Tessera worker uses (launch/job.h JoinJobProcess) and the
// worker's client (worker/client.h); the torch-specific parts live in Python
// (python/tessera/torch.py), tensors cross as TensorArg (python/core/tensor_arg.h).
//
// Threading: Python calls come in on any Python thread holding the GIL; every call that
// can block (joining, declaring, waiting on a handle, the barrier, finishing) releases
// the GIL while it blocks, so the script's other threads (data loaders) keep running.
// The client's reactor thread completes handles and writes pulled values into tensors.
#include <gflags/gflags.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/hash.h"
#include "common/logging.h"
#include "common/param_spec.h"
#include "launch/env.h"
#include "launch/job.h"
#include "python/core/tensor_arg.h"
#include "python/core/worker_state.h"
#include "worker/grad_sync.h"
#include "worker/model/layer.h"

DECLARE_double(request_timeout_s);
DECLARE_string(sync);
DECLARE_uint64(chunk_bytes);

namespace py = pybind11;

namespace tessera::python {

namespace {

// A non-OK Status as a Python exception (tessera.TesseraError).
struct TesseraError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

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

// Splits a script's arguments into Tessera's job flags (names gflags knows: --servers,
// --sync, --checkpoint_dir, ...; "--name value" takes the next argument for a non-bool
// flag) and the rest, which stay the script's.
void SplitFlags(const std::vector<std::string>& args, std::vector<std::string>* ours, std::vector<std::string>* rest) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() < 3 || a.rfind("--", 0) != 0) {
      rest->push_back(a);
      continue;
    }
    std::string name = a.substr(2, a.find('=') == std::string::npos ? std::string::npos : a.find('=') - 2);
    const bool has_value = a.find('=') != std::string::npos;
    gflags::CommandLineFlagInfo info;
    bool known = gflags::GetCommandLineFlagInfo(name.c_str(), &info);
    if (!known && name.rfind("no", 0) == 0 && gflags::GetCommandLineFlagInfo(name.substr(2).c_str(), &info)) {
      known = info.type == "bool";
    }
    // Flags of glog and gflags themselves are not the job's (--v would be, but a script's
    // --help must stay the script's).
    if (!known || name == "help" || name == "helpshort" || name == "helpfull" || name == "version" ||
        name == "flagfile" || name == "fromenv" || name == "tryfromenv") {
      rest->push_back(a);
      continue;
    }
    ours->push_back(a);
    if (!has_value && info.type != "bool" && i + 1 < args.size()) ours->push_back(args[++i]);
  }
}

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

// A worker that joined its job: what the Python package calls into.
class Session {
 public:
  explicit Session(std::unique_ptr<launch::JoinedWorker> w) : worker_(std::move(w)) {}

  worker::Client& client() { return *worker_->context().client; }
  int worker_index() { return worker_->context().worker_index; }

  py::dict Info() {
    const launch::WorkerContext& wc = worker_->context();
    const worker::ResumePoint r = wc.client->resume();
    py::dict d;
    d["worker_index"] = wc.worker_index;
    d["num_workers"] = wc.num_workers;
    d["num_servers"] = wc.num_servers;
    d["sync"] = FLAGS_sync;
    d["resume_step"] = r.step;
    d["checkpoint_path"] = r.checkpoint_path;
    d["restart_count"] = wc.launch.restart_count;
    d["request_timeout_s"] = FLAGS_request_timeout_s;
    return d;
  }

  std::vector<uint32_t> Declare(const py::list& specs) {
    std::vector<ParamSpec> params;
    for (const py::handle& h : specs) params.push_back(SpecFromDict(h.cast<py::dict>()));
    {
      py::gil_scoped_release unlocked;
      Raise(client().DeclareParams(params).WithContext("declaring the parameters"));
    }
    std::vector<uint32_t> ids;
    for (const ParamSpec& p : params) {
      auto id = client().ParamId(p.name);
      Raise(id.status());
      ids.push_back(*id);
      numel_[*id] = p.numel();
    }
    return ids;
  }

  worker::Handle Push(uint32_t id, const py::tuple& grad, int64_t step, const std::string& what) {
    TensorView v;
    Raise(CheckF32(ToArg(grad), what, Numel(id), &v));
    return client().Push(id, v, step);
  }
  worker::Handle Pull(uint32_t id, const py::tuple& out, int64_t step, const std::string& what) {
    TensorView v;
    Raise(CheckF32(ToArg(out), what, Numel(id), &v));
    return client().Pull(id, v, step);
  }
  // rows: [len(keys), width]; the table's row width was declared as its shape.
  worker::Handle PushSparse(uint32_t id, const py::tuple& keys, const py::tuple& rows, int64_t step, const std::string& what) {
    const Key* k = nullptr;
    size_t n = 0;
    Raise(CheckKeys(ToArg(keys), what + " ids", &k, &n));
    TensorView v;
    Raise(CheckF32(ToArg(rows), what, static_cast<int64_t>(n) * Numel(id), &v));
    v.shape = {static_cast<int64_t>(n), Numel(id)};
    return client().PushSparse(id, std::span<const Key>(k, n), v, step);
  }
  worker::Handle PullSparse(uint32_t id, const py::tuple& keys, const py::tuple& out, int64_t step, const std::string& what) {
    const Key* k = nullptr;
    size_t n = 0;
    Raise(CheckKeys(ToArg(keys), what + " ids", &k, &n));
    TensorView v;
    Raise(CheckF32(ToArg(out), what, static_cast<int64_t>(n) * Numel(id), &v));
    v.shape = {static_cast<int64_t>(n), Numel(id)};
    return client().PullSparse(id, std::span<const Key>(k, n), v, step);
  }

  void ReportStep(int64_t step, double loss, uint64_t samples) { client().ReportStep(step, loss, samples); }

  void Barrier(double timeout_s) {
    py::gil_scoped_release unlocked;
    Raise(client().Barrier(Seconds(timeout_s)).WithContext("waiting for every worker at the barrier"));
  }

  // The step of a prepare this worker has not answered, or -1.
  int64_t PendingCheckpoint() { return client().pending_checkpoint(); }

  // Answers the prepare of `step` with the worker's state at that boundary: `state`
  // (when given) is written into the step directory first; a write that fails answers
  // not ok with the reason (the coordinator then tries a later step).
  void AnswerCheckpoint(int64_t step, bool ok, const std::string& message, const std::optional<py::bytes>& state) {
    if (ok && state) {
      const std::string dir = client().pending_checkpoint_dir(step);
      Status st = dir.empty() ? Status::Aborted("the prepare of step " + std::to_string(step) + " was replaced")
                              : [&] {
                                  std::string bytes = *state;
                                  py::gil_scoped_release unlocked;
                                  return WriteWorkerState(dir, worker_index(), bytes);
                                }();
      if (!st.ok()) {
        client().ReportCheckpoint(step, false, "worker " + std::to_string(worker_index()) + ": " + st.ToString(), -1, 0, 0);
        return;
      }
    }
    client().ReportCheckpoint(step, ok, message, ok ? step : -1, 0, 0);
  }

  std::optional<py::bytes> LoadWorkerState() {
    const worker::ResumePoint r = client().resume();
    if (r.step < 0 || r.checkpoint_path.empty()) return std::nullopt;
    auto s = ReadWorkerState(r.checkpoint_path, worker_index());
    Raise(s.status());
    if (!*s) return std::nullopt;
    return py::bytes(**s);
  }

  // ---- --sync=allreduce (docs/collective.md): the C++ trainer's GradSync over the
  // model's tensors. Values are the torch tensors' memory (updated in place by the
  // optimizer step); gradients are copied from torch's .grad into GradSync's buffers
  // (the fusion buckets) as backward produces them.
  void AllReduceSetUp(const py::list& specs, const py::list& values, double bucket_mb) {
    if (grad_sync_) throw TesseraError("the all-reduce path is already set up (one DistributedOptimizer per process)");
    if (specs.size() != values.size()) throw py::value_error("one value per parameter spec");
    std::vector<model::Parameter*> raw;
    for (size_t i = 0; i < specs.size(); ++i) {
      auto p = std::make_unique<model::Parameter>();
      p->spec = SpecFromDict(specs[i].cast<py::dict>());
      TensorView v;
      Raise(CheckF32(ToArg(values[i].cast<py::tuple>()), "value of '" + p->spec.name + "'", p->spec.numel(), &v));
      // The torch tensor owns the memory; the Python layer keeps the model alive.
      auto t = Tensor::FromBuffer(Buffer::Wrap(v.data, v.nbytes(), Device::kCPU, [] {}), DType::kF32, p->spec.shape);
      Raise(t.status());
      p->value = std::move(t).value();
      p->grad = Tensor::Zeros(DType::kF32, p->spec.shape);
      raw.push_back(p.get());
      params_.push_back(std::move(p));
    }
    worker::GradSyncOptions o;
    o.sync = FLAGS_sync;
    o.bucket_mb = bucket_mb;
    o.chunk_bytes = FLAGS_chunk_bytes;
    o.timeout = Seconds(FLAGS_request_timeout_s);
    const launch::WorkerContext& wc = worker_->context();
    auto g = worker::GradSync::Create(o, wc.comm, wc.num_workers, raw);
    Raise(g.status());
    grad_sync_ = std::move(g).value();
  }

  // params_[i]'s gradient is final for this step: copied in, handed to its bucket.
  void AllReduceGradReady(size_t i, const py::tuple& grad) {
    if (!grad_sync_ || i >= params_.size()) throw py::value_error("no all-reduced parameter " + std::to_string(i));
    model::Parameter* p = params_[i].get();
    TensorView v;
    Raise(CheckF32(ToArg(grad), "gradient of '" + p->spec.name + "'", p->spec.numel(), &v));
    std::memcpy(p->grad.data(), v.data, p->grad.nbytes());
    grad_sync_->OnGradReady(p);
  }

  // Waits for the step's all-reduces and applies the optimizer to every value.
  void AllReduceFinishStep() {
    if (!grad_sync_) throw TesseraError("the all-reduce path is not set up");
    worker::Client* c = &client();
    Status st;
    {
      py::gil_scoped_release unlocked;
      st = grad_sync_->FinishStep([c] { return c->requested_exit_code() != 0; });
    }
    Raise(st);
  }

  int RequestedExitCode() { return client().requested_exit_code(); }
  std::string Health() {
    Status st = client().health();
    return st.ok() ? "" : st.ToString();
  }

  int Finish(bool ok, const std::string& message) {
    py::gil_scoped_release unlocked;
    return worker_->Finish(ok ? Status::OK() : Status::Internal(message));
  }

 private:
  int64_t Numel(uint32_t id) {
    auto it = numel_.find(id);
    if (it == numel_.end()) throw py::value_error("parameter id " + std::to_string(id) + " was not declared");
    return it->second;
  }

  std::unique_ptr<launch::JoinedWorker> worker_;
  std::unordered_map<uint32_t, int64_t> numel_;
  // --sync=allreduce: the parameters over the torch tensors and their GradSync.
  std::vector<std::unique_ptr<model::Parameter>> params_;
  std::unique_ptr<worker::GradSync> grad_sync_;  // declared element count (dense) or row width (sparse)
};

bool g_process_initialised = false;  // InitProcess (gflags, glog) runs once per process

// Joins the job as this process's rank. Returns (session, 0, rest) for a worker; for
// the coordinator and the servers (None, exit code, rest) once their role has ended.
py::tuple Join(const std::vector<std::string>& args, const std::string& program) {
  auto li = launch::DetectLaunchEnv(launch::CurrentEnv());
  Raise(li.status());
  if (li->source == "single") {
    throw TesseraError(
        "tessera.init(): this process is not part of a Tessera job (no launcher environment: TESSERA_RANK, "
        "OMPI_COMM_WORLD_RANK, PMI_RANK, SLURM_PROCID or RANK). Start the script with `tessera launch --servers S "
        "--workers W --program python3 -- " + program + "`, mpirun, srun or torchrun.");
  }
  if (g_process_initialised) throw TesseraError("tessera.init(): this process has already joined a job");
  g_process_initialised = true;
  std::vector<std::string> ours, rest;
  SplitFlags(args, &ours, &rest);
  std::vector<std::string> argv_s = {program};
  argv_s.insert(argv_s.end(), ours.begin(), ours.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  int argc = static_cast<int>(argv_s.size());
  char** argvp = argv.data();
  InitProcess(&argc, &argvp, "a Python worker of a Tessera job (docs/python.md)");
  launch::JoinOutcome out;
  {
    py::gil_scoped_release unlocked;
    out = launch::JoinJobProcess();
  }
  if (!out.worker) return py::make_tuple(py::none(), out.exit_code, rest);
  return py::make_tuple(std::make_unique<Session>(std::move(out.worker)), 0, rest);
}

// worker/train_metrics.h ParamsDigest over the tensors' bytes, in order.
std::string ParamsDigest(const py::list& tensors) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const py::handle& t : tensors) {
    TensorView v;
    Raise(CheckF32(ToArg(t.cast<py::tuple>()), "a tensor to digest", -1, &v));
    h = Fnv1a64(v.data, v.nbytes(), h);
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "C++ core of the tessera package (docs/python.md)";
  py::register_exception<TesseraError>(m, "TesseraError", PyExc_RuntimeError);

  py::class_<worker::Handle>(m, "Handle")
      .def("done", &worker::Handle::IsDone)
      .def(
          "wait",
          [](const worker::Handle& h, double timeout_s) {
            Status st;
            {
              py::gil_scoped_release unlocked;
              st = h.Wait(Seconds(timeout_s));
            }
            Raise(st);
          },
          py::arg("timeout_s"));

  py::class_<Session>(m, "Session")
      .def("info", &Session::Info)
      .def("declare", &Session::Declare)
      .def("push", &Session::Push)
      .def("pull", &Session::Pull)
      .def("push_sparse", &Session::PushSparse)
      .def("pull_sparse", &Session::PullSparse)
      .def("report_step", &Session::ReportStep)
      .def("barrier", &Session::Barrier)
      .def("pending_checkpoint", &Session::PendingCheckpoint)
      .def("answer_checkpoint", &Session::AnswerCheckpoint)
      .def("load_worker_state", &Session::LoadWorkerState)
      .def("allreduce_set_up", &Session::AllReduceSetUp)
      .def("allreduce_grad_ready", &Session::AllReduceGradReady)
      .def("allreduce_finish_step", &Session::AllReduceFinishStep)
      .def("requested_exit_code", &Session::RequestedExitCode)
      .def("health", &Session::Health)
      .def("finish", &Session::Finish);

  m.def("join", &Join, py::arg("args"), py::arg("program"));
  m.def("params_digest", &ParamsDigest);
  m.def("check_f32", [](const py::tuple& t, const std::string& what, int64_t numel) {
    TensorView v;
    Raise(CheckF32(ToArg(t), what, numel, &v));
  });
}

}  // namespace tessera::python
