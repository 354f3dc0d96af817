// The coordinator's metrics flags (docs/metrics.md): --metrics_port, --metrics_bind, and
// where the rank_metrics lines go (--metrics_out, defined by `tessera train`).
//
// Threading: reads flags; call from the main thread.
#pragma once

#include "common/status.h"
#include "coordinator/coordinator.h"

namespace tessera::launch {

// InvalidArgument naming the flag for a port outside 0..65535.
Result<CoordinatorOptions::Metrics> MetricsOptionsFromFlags();

}  // namespace tessera::launch
