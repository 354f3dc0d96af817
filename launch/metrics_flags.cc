#include "launch/metrics_flags.h"

#include <gflags/gflags.h>

DEFINE_int32(metrics_port, 0,
             "The coordinator serves GET /metrics (Prometheus text format) on this port (0: off)");
DEFINE_string(metrics_bind, "127.0.0.1",
              "Address the /metrics endpoint binds to (0.0.0.0: every interface; the endpoint has no authentication)");

namespace tessera::launch {

Result<CoordinatorOptions::Metrics> MetricsOptionsFromFlags() {
  if (FLAGS_metrics_port < 0 || FLAGS_metrics_port > 65535) {
    return Status::InvalidArgument("--metrics_port=" + std::to_string(FLAGS_metrics_port) +
                                   ": expected 0 (off) or a TCP port up to 65535");
  }
  CoordinatorOptions::Metrics m;
  m.port = FLAGS_metrics_port;
  m.bind = FLAGS_metrics_bind;
  // --metrics_out belongs to `tessera train` (launch/train_main.cc); looked up by name so
  // this library does not depend on the trainer.
  std::string out;
  if (gflags::GetCommandLineOption("metrics_out", &out)) m.out = out;
  return m;
}

}  // namespace tessera::launch
