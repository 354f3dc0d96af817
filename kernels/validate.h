// Argument checks shared by kernels/ops_*.cc. Each returns kInvalidArgument with
// "<Op>: <argument> <what is wrong>" so a caller can tell which argument of which op was
// refused. Internal to kernels/.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/tensor.h"
#include "kernels/dispatch.h"

namespace tessera::kernels::internal {

// A default-constructed TensorView (null data, no dims) stands for an omitted argument.
inline bool IsAbsent(const TensorView& v) { return v.data == nullptr && v.shape.empty(); }

Status Invalid(std::string_view op, std::string_view message);

// Well-formed: known dtype and device, no negative dim, data non-null when numel > 0,
// dtype one of `dtypes`.
Status CheckView(std::string_view op, std::string_view name, const TensorView& v,
                 std::initializer_list<DType> dtypes);
// CheckView plus an exact rank.
Status CheckMatrix(std::string_view op, std::string_view name, const TensorView& v,
                   std::initializer_list<DType> dtypes);  // rank 2
Status CheckRank(std::string_view op, std::string_view name, const TensorView& v, size_t rank);
Status CheckSameNumel(std::string_view op, std::string_view a_name, const TensorView& a,
                      std::string_view b_name, const TensorView& b);
// All present views on one device; returns it through *device.
Status CheckSameDevice(std::string_view op, std::initializer_list<const TensorView*> views,
                       Device* device);

std::string Describe(const TensorView& v);  // "f32[2, 3]@cpu"

}  // namespace tessera::kernels::internal
