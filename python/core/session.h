// Session: a worker of a Tessera job as the Python package sees it (tessera._core,
// docs/python.md): the JoinedWorker (launch/job.h) with the calls the Python layer makes
// on it: declaring, dense and sparse pushes and pulls through the worker's client
// (worker/client.h), the barrier, checkpoint answers with the worker's own state
// (python/core/worker_state.h), --sync=allreduce through the C++ trainer's GradSync, and
// finishing.
//
// Threading: called from Python threads holding the GIL; every call that can block
// releases the GIL while it blocks. The client's reactor thread completes handles and
// writes pulled values into the tensors; under allreduce the communicator's thread works
// on the gradient buckets between AllReduceGradReady and AllReduceFinishStep.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "launch/job.h"
#include "worker/grad_sync.h"
#include "worker/handle.h"
#include "worker/model/layer.h"

namespace tessera::python {

namespace py = pybind11;

// A worker that joined its job: what the Python package calls into.
class Session {
 public:
  explicit Session(std::unique_ptr<launch::JoinedWorker> w) : worker_(std::move(w)) {}

  worker::Client& client() { return *worker_->context().client; }
  int worker_index() { return worker_->context().worker_index; }

  py::dict Info();

  std::vector<uint32_t> Declare(const py::list& specs);

  worker::Handle Push(uint32_t id, const py::tuple& grad, int64_t step, const std::string& what);
  worker::Handle Pull(uint32_t id, const py::tuple& out, int64_t step, const std::string& what);
  // rows: [len(keys), width]; the table's row width was declared as its shape.
  worker::Handle PushSparse(uint32_t id, const py::tuple& keys, const py::tuple& rows, int64_t step, const std::string& what);
  worker::Handle PullSparse(uint32_t id, const py::tuple& keys, const py::tuple& out, int64_t step, const std::string& what);

  void ReportStep(int64_t step, double loss, uint64_t samples) { client().ReportStep(step, loss, samples); }

  // final_step >= 0: the end-of-training barrier (worker::Client::Barrier).
  void Barrier(double timeout_s, int64_t final_step);

  // The step of a prepare this worker has not answered, or -1.
  int64_t PendingCheckpoint() { return client().pending_checkpoint(); }

  // Answers the prepare of `step` with the worker's state at that boundary: `state`
  // (when given) is written into the step directory first; a write that fails answers
  // not ok with the reason (the coordinator then tries a later step).
  void AnswerCheckpoint(int64_t step, bool ok, const std::string& message, const std::optional<py::bytes>& state);

  std::optional<py::bytes> LoadWorkerState();

  // ---- --sync=allreduce (docs/collective.md): the C++ trainer's GradSync over the
  // model's tensors. Values are the torch tensors' memory (updated in place by the
  // optimizer step); gradients are copied from torch's .grad into GradSync's buffers
  // (the fusion buckets) as backward produces them.
  void AllReduceSetUp(const py::list& specs, const py::list& values, double bucket_mb);

  // params_[i]'s gradient is final for this step: copied in, handed to its bucket.
  void AllReduceGradReady(size_t i, const py::tuple& grad);

  // Waits for the step's all-reduces and applies the optimizer to every value.
  void AllReduceFinishStep();

  int RequestedExitCode() { return client().requested_exit_code(); }
  std::string Health();

  int Finish(bool ok, const std::string& message);

 private:
  int64_t Numel(uint32_t id);

  std::unique_ptr<launch::JoinedWorker> worker_;
  std::unordered_map<uint32_t, int64_t> numel_;  // declared element count (dense) or row width (sparse)
  // --sync=allreduce: the parameters over the torch tensors and their GradSync.
  std::vector<std::unique_ptr<model::Parameter>> params_;
  std::unique_ptr<worker::GradSync> grad_sync_;
};

// Joins the job as this process's rank (tessera.init): `args` are the script's
// arguments; the ones gflags knows are the job flags, parsed once per process, the rest
// are returned. Returns (Session, 0, rest) for a worker; for the coordinator and the
// servers (None, exit code, rest) once their role has ended. TesseraError outside a job
// (no launcher environment) or on a second call.
py::tuple Join(const std::vector<std::string>& args, const std::string& program);

// worker/train_metrics.h ParamsDigest over the tensors' bytes, in order, as hex.
std::string ParamsDigest(const py::list& tensors);

}  // namespace tessera::python
