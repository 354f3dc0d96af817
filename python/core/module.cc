// tessera._core: the C++ side of the Python package (docs/python.md). A thin layer over
// the job machinery every Tessera worker uses (launch/job.h JoinJobProcess) and the
// worker's client (worker/client.h): the bindings of Session (python/core/session.h);
// the torch-specific parts live in Python (python/tessera/torch.py), tensors cross as
// TensorArg (python/core/tensor_arg.h).
//
// Threading: Python calls come in on any Python thread holding the GIL; every call that
// can block (joining, declaring, waiting on a handle, the barrier, finishing) releases
// the GIL while it blocks, so the script's other threads (data loaders) keep running.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "python/core/py_convert.h"
#include "python/core/session.h"
#include "python/core/tensor_arg.h"
#include "worker/handle.h"

namespace tessera::python {

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
      .def("barrier", &Session::Barrier, py::arg("timeout_s"), py::arg("final_step") = -1)
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
