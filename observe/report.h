// `tessera report METRICS.jsonl [MORE.jsonl ...] -o DIR`: plots of one or more runs'
// metrics files (observe/metrics_log.h) as SVG files and an index.html that shows them
// with each run's summary (docs/observability.md, "Report"). Several files are drawn as
// one series each, labelled by file name, so runs can be compared.
//
// Thread safety: single-threaded functions.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "observe/metrics_log.h"

namespace tessera::observe {

// One picture of the report.
struct ReportFigure {
  std::string file;     // name inside the output directory, e.g. "loss.svg"
  std::string caption;  // what it shows, for index.html
  std::string svg;
};

// The figures for `logs` (at least one): loss, test accuracy/loss, throughput, time
// breakdown and communication from the summaries, and one plot per numeric
// rank_metrics field (per role and rank) when the files have them.
std::vector<ReportFigure> BuildFigures(const std::vector<MetricsLog>& logs);

// Writes the figures and index.html into `dir` (created when missing). InvalidArgument
// naming the file that cannot be written.
Status WriteReport(const std::vector<MetricsLog>& logs, const std::string& dir, std::vector<std::string>* written);

// Entry point of `tessera report`.
int ReportMain(int argc, char** argv);

}  // namespace tessera::observe
