#include "python/core/session.h"

#include <gflags/gflags.h>
#include <pybind11/stl.h>

#include <cstdio>
#include <cstring>

#include "common/hash.h"
#include "common/logging.h"
#include "launch/env.h"
#include "python/core/py_convert.h"
#include "python/core/tensor_arg.h"
#include "python/core/worker_state.h"

DECLARE_double(request_timeout_s);
DECLARE_string(sync);
DECLARE_uint64(chunk_bytes);

namespace tessera::python {

namespace {

bool g_process_initialised = false;  // InitProcess (gflags, glog) runs once per process

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

}  // namespace

py::dict Session::Info() {
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

std::vector<uint32_t> Session::Declare(const py::list& specs) {
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

worker::Handle Session::Push(uint32_t id, const py::tuple& grad, int64_t step, const std::string& what) {
  TensorView v;
  Raise(CheckF32(ToArg(grad), what, Numel(id), &v));
  return client().Push(id, v, step);
}

worker::Handle Session::Pull(uint32_t id, const py::tuple& out, int64_t step, const std::string& what) {
  TensorView v;
  Raise(CheckF32(ToArg(out), what, Numel(id), &v));
  return client().Pull(id, v, step);
}

worker::Handle Session::PushSparse(uint32_t id, const py::tuple& keys, const py::tuple& rows, int64_t step, const std::string& what) {
  const Key* k = nullptr;
  size_t n = 0;
  Raise(CheckKeys(ToArg(keys), what + " ids", &k, &n));
  TensorView v;
  Raise(CheckF32(ToArg(rows), what, static_cast<int64_t>(n) * Numel(id), &v));
  v.shape = {static_cast<int64_t>(n), Numel(id)};
  return client().PushSparse(id, std::span<const Key>(k, n), v, step);
}

worker::Handle Session::PullSparse(uint32_t id, const py::tuple& keys, const py::tuple& out, int64_t step, const std::string& what) {
  const Key* k = nullptr;
  size_t n = 0;
  Raise(CheckKeys(ToArg(keys), what + " ids", &k, &n));
  TensorView v;
  Raise(CheckF32(ToArg(out), what, static_cast<int64_t>(n) * Numel(id), &v));
  v.shape = {static_cast<int64_t>(n), Numel(id)};
  return client().PullSparse(id, std::span<const Key>(k, n), v, step);
}

void Session::Barrier(double timeout_s, int64_t final_step) {
  py::gil_scoped_release unlocked;
  Raise(client().Barrier(Seconds(timeout_s), final_step).WithContext("waiting for every worker at the barrier"));
}

void Session::AnswerCheckpoint(int64_t step, bool ok, const std::string& message, const std::optional<py::bytes>& state) {
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

std::optional<py::bytes> Session::LoadWorkerState() {
  const worker::ResumePoint r = client().resume();
  if (r.step < 0 || r.checkpoint_path.empty()) return std::nullopt;
  auto s = ReadWorkerState(r.checkpoint_path, worker_index());
  Raise(s.status());
  if (!*s) return std::nullopt;
  return py::bytes(**s);
}

void Session::AllReduceSetUp(const py::list& specs, const py::list& values, double bucket_mb) {
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

void Session::AllReduceGradReady(size_t i, const py::tuple& grad) {
  if (!grad_sync_ || i >= params_.size()) throw py::value_error("no all-reduced parameter " + std::to_string(i));
  model::Parameter* p = params_[i].get();
  TensorView v;
  Raise(CheckF32(ToArg(grad), "gradient of '" + p->spec.name + "'", p->spec.numel(), &v));
  std::memcpy(p->grad.data(), v.data, p->grad.nbytes());
  grad_sync_->OnGradReady(p);
}

void Session::AllReduceFinishStep() {
  if (!grad_sync_) throw TesseraError("the all-reduce path is not set up");
  worker::Client* c = &client();
  Status st;
  {
    py::gil_scoped_release unlocked;
    st = grad_sync_->FinishStep([c] { return c->requested_exit_code() != 0; });
  }
  Raise(st);
}

std::string Session::Health() {
  Status st = client().health();
  return st.ok() ? "" : st.ToString();
}

int Session::Finish(bool ok, const std::string& message) {
  py::gil_scoped_release unlocked;
  return worker_->Finish(ok ? Status::OK() : Status::Internal(message));
}

int64_t Session::Numel(uint32_t id) {
  auto it = numel_.find(id);
  if (it == numel_.end()) throw py::value_error("parameter id " + std::to_string(id) + " was not declared");
  return it->second;
}

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

}  // namespace tessera::python
