// The Python boundary of tessera._core (docs/python.md): errors become Python
// exceptions, tuples from the Python layer become TensorArgs and ParamSpecs.
//
// Thread safety: pure functions; callers hold the GIL (they touch Python objects).
#pragma once

#include <pybind11/pybind11.h>

#include <stdexcept>

#include "common/clock.h"
#include "common/param_spec.h"
#include "common/status.h"
#include "python/core/tensor_arg.h"

namespace tessera::python {

namespace py = pybind11;

// A non-OK Status as a Python exception (registered as tessera.TesseraError).
struct TesseraError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws TesseraError with the status' text; nothing when OK.
void Raise(const Status& st);
// Throws TypeError (dtype) or ValueError (anything else); nothing when ok.
void Raise(const ArgCheck& c);

// (address, shape, strides, dtype, device) as the Python layer builds it
// (tessera._tensor_arg); ValueError for another shape of tuple.
TensorArg ToArg(const py::tuple& t);

Duration Seconds(double s);

// A parameter declaration from the Python layer's dict (name, kind, shape, init, scale,
// seed, optimizer{kind, lr, momentum, nesterov, beta1, beta2, eps, weight_decay,
// initial_accumulator}). ValueError naming the parameter for a bad kind, initialiser,
// optimizer or an empty shape.
ParamSpec SpecFromDict(const py::dict& d);

}  // namespace tessera::python
