// How a job's gradients travel (--sync): through the parameter servers (bsp, ssp:K, asp),
// by all-reduce among the workers (allreduce), or both, routed by ParamKind (hybrid:
// dense parameters by all-reduce, sparse tables through the servers).
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/param_spec.h"
#include "common/status.h"

namespace tessera::collective {

enum class GradSyncMode : uint8_t { kServers = 0, kAllReduce = 1, kHybrid = 2 };

// "allreduce" -> kAllReduce, "hybrid" -> kHybrid, anything else -> kServers (the
// servers' own parser validates that text).
GradSyncMode GradSyncModeOf(std::string_view sync_flag);
inline bool IsCollectiveSync(std::string_view sync_flag) { return GradSyncModeOf(sync_flag) != GradSyncMode::kServers; }

// The consistency policy the servers run for --sync: "bsp" for allreduce and hybrid
// (the sparse tables of hybrid are updated once per step, like bsp), else the text itself.
std::string ServerSyncText(std::string_view sync_flag);

enum class Route : uint8_t { kServers = 0, kAllReduce = 1 };

// Where each parameter's gradient goes, in the order of `params`: kServers for
// everything in kServers mode; kAllReduce for everything in kAllReduce mode (a sparse
// table there is InvalidArgument naming it: all-reducing a whole table defeats sparsity,
// use --sync=hybrid); in kHybrid, dense -> kAllReduce and sparse -> kServers.
Result<std::vector<Route>> RouteParams(const std::vector<ParamSpec>& params, GradSyncMode mode);

}  // namespace tessera::collective
