#include "collective/sync_mode.h"

namespace tessera::collective {

GradSyncMode GradSyncModeOf(std::string_view sync_flag) {
  if (sync_flag == "allreduce") return GradSyncMode::kAllReduce;
  if (sync_flag == "hybrid") return GradSyncMode::kHybrid;
  return GradSyncMode::kServers;
}

std::string ServerSyncText(std::string_view sync_flag) {
  return IsCollectiveSync(sync_flag) ? "bsp" : std::string(sync_flag);
}

Result<std::vector<Route>> RouteParams(const std::vector<ParamSpec>& params, GradSyncMode mode) {
  std::vector<Route> routes;
  routes.reserve(params.size());
  for (const ParamSpec& p : params) {
    switch (mode) {
      case GradSyncMode::kServers:
        routes.push_back(Route::kServers);
        break;
      case GradSyncMode::kAllReduce:
        if (p.kind == ParamKind::kSparse) {
          return Status::InvalidArgument("--sync=allreduce: parameter '" + p.name +
                                         "' is a sparse table; all-reducing whole tables defeats sparsity, "
                                         "use --sync=hybrid (dense by all-reduce, tables through the servers)");
        }
        routes.push_back(Route::kAllReduce);
        break;
      case GradSyncMode::kHybrid:
        routes.push_back(p.kind == ParamKind::kSparse ? Route::kServers : Route::kAllReduce);
        break;
    }
  }
  return routes;
}

}  // namespace tessera::collective
