// Reading a `--metrics_out` file (JSON lines, docs/training.md "Metrics file") for
// `tessera report`. Known events: step, eval, summary, checkpoint, rank_metrics (per
// role and rank; every numeric field is kept). Unknown events and unknown fields are
// ignored, so newer writers stay readable.
//
// Thread safety: pure functions over values.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace tessera::observe {

struct StepPoint {
  int64_t step = 0;
  double loss = 0;             // NaN when the file says null (a non-finite loss)
  double samples_per_sec = 0;  // NaN when null
};

struct EvalPoint {
  int64_t step = 0;
  double accuracy = 0;  // NaN when absent or null
  double loss = 0;      // NaN when absent or null
};

// One {"event":"rank_metrics","role":R,"rank":N,...} line: its numeric fields.
struct RankPoint {
  std::string role;
  int64_t rank = 0;
  std::map<std::string, double> values;
};

struct MetricsLog {
  std::string path;
  std::string name;  // the file name without directory and extension: the run's label
  std::vector<StepPoint> steps;
  std::vector<EvalPoint> evals;
  // The summary line's fields in file order, values as JSON text (strings unquoted).
  std::vector<std::pair<std::string, std::string>> summary;
  std::map<std::string, double> summary_numbers;
  std::vector<RankPoint> ranks;
};

// Reads `path`. NotFound when it cannot be opened; InvalidArgument "path:line: ..." for
// a line that is not a JSON object or a known event whose fields have the wrong type,
// and for a file with no step, eval, summary or rank_metrics event.
Result<MetricsLog> ReadMetricsLog(const std::string& path);

}  // namespace tessera::observe
