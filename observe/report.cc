#include "observe/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>

#include "common/exit_codes.h"
#include "observe/timeline_files.h"
#include "observe/svg_plot.h"

namespace tessera::observe {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Exponential moving average over about n/20 points (at least 1, at most 100), with the
// start-up bias removed (as TensorBoard's smoothing does), skipping non-finite values.
std::vector<double> Smooth(const std::vector<double>& y) {
  const double span = std::clamp(static_cast<double>(y.size()) / 20.0, 1.0, 100.0);
  const double alpha = 2.0 / (span + 1.0);
  std::vector<double> out(y.size(), kNaN);
  double avg = 0, weight = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (!std::isfinite(y[i])) continue;
    avg = (1 - alpha) * avg + alpha * y[i];
    weight = (1 - alpha) * weight + alpha;
    out[i] = avg / weight;
  }
  return out;
}

// Label of run i: its file name, or "" when there is one run (then the series names say
// what they are).
std::string RunLabel(const std::vector<MetricsLog>& logs, size_t i, const std::string& what) {
  return logs.size() == 1 ? what : logs[i].name + " " + what;
}

ReportFigure LossFigure(const std::vector<MetricsLog>& logs) {
  LinePlot p;
  p.title = "Training loss (worker 0's batches)";
  p.x_label = "step";
  p.y_label = "loss";
  for (size_t i = 0; i < logs.size(); ++i) {
    Series raw, smooth;
    for (const StepPoint& s : logs[i].steps) {
      raw.x.push_back(static_cast<double>(s.step));
      raw.y.push_back(s.loss);
    }
    smooth.x = raw.x;
    smooth.y = Smooth(raw.y);
    const std::string color = PaletteColor(i);
    raw.color = smooth.color = color;
    raw.label = RunLabel(logs, i, "batch loss");
    raw.width = 1;
    raw.opacity = 0.3;
    smooth.label = RunLabel(logs, i, "smoothed");
    smooth.width = 2.2;
    p.series.push_back(std::move(raw));
    p.series.push_back(std::move(smooth));
  }
  return {"loss.svg", "Training loss of worker 0's batch at every step (faint) and its exponential moving average", RenderLinePlot(p)};
}

ReportFigure EvalFigure(const std::vector<MetricsLog>& logs, bool accuracy) {
  LinePlot p;
  p.title = accuracy ? "Test accuracy" : "Test loss";
  p.x_label = "step (updates the evaluated parameters contain)";
  p.y_label = accuracy ? "accuracy" : "loss";
  for (size_t i = 0; i < logs.size(); ++i) {
    Series s;
    for (const EvalPoint& e : logs[i].evals) {
      s.x.push_back(static_cast<double>(e.step));
      s.y.push_back(accuracy ? e.accuracy : e.loss);
    }
    s.label = logs.size() == 1 ? "" : logs[i].name;
    s.color = PaletteColor(i);
    s.width = 2;
    s.markers = true;
    p.series.push_back(std::move(s));
  }
  if (accuracy) return {"accuracy.svg", "Test accuracy at each evaluation (--eval_every, and the final one)", RenderLinePlot(p)};
  return {"test_loss.svg", "Test loss at each evaluation", RenderLinePlot(p)};
}

ReportFigure ThroughputFigure(const std::vector<MetricsLog>& logs) {
  LinePlot p;
  p.title = "Throughput (all workers)";
  p.x_label = "step";
  p.y_label = "samples/s";
  p.y_from_zero = true;
  for (size_t i = 0; i < logs.size(); ++i) {
    Series s;
    for (const StepPoint& st : logs[i].steps) {
      s.x.push_back(static_cast<double>(st.step));
      s.y.push_back(st.samples_per_sec);
    }
    s.label = RunLabel(logs, i, "progress window");
    s.color = PaletteColor(i);
    s.width = 1.5;
    auto it = logs[i].summary_numbers.find("samples_per_sec");
    const bool whole = it != logs[i].summary_numbers.end() && !s.x.empty();
    p.series.push_back(std::move(s));
    if (whole) {
      Series w;
      w.x = {p.series.back().x.front(), p.series.back().x.back()};
      w.y = {it->second, it->second};
      w.label = RunLabel(logs, i, "whole run");
      w.color = "#555555";
      w.width = 1.2;
      w.opacity = 0.8;
      p.series.push_back(std::move(w));
    }
  }
  return {"throughput.svg",
          "Samples per second of the whole job at each step (rate of worker 0's current progress window), and the "
          "summary's rate over the whole step loop",
          RenderLinePlot(p)};
}

// Bars per run out of summary fields.
ReportFigure SummaryBars(const std::vector<MetricsLog>& logs, const char* file, const char* title, const char* y_label,
                         const std::vector<std::pair<const char*, const char*>>& fields, double scale,
                         const char* caption) {
  BarChart c;
  c.title = title;
  c.y_label = y_label;
  if (logs.size() == 1) {
    // One run: one group per field, so the field names sit under the bars.
    BarGroup g;
    c.bar_labels = {logs[0].name};
    for (const auto& [key, label] : fields) {
      auto it = logs[0].summary_numbers.find(key);
      c.groups.push_back({label, {it == logs[0].summary_numbers.end() ? 0 : it->second / scale}});
    }
  } else {
    for (const auto& [key, label] : fields) c.bar_labels.push_back(label);
    for (const MetricsLog& l : logs) {
      BarGroup g{l.name, {}};
      for (const auto& [key, label] : fields) {
        auto it = l.summary_numbers.find(key);
        g.values.push_back(it == l.summary_numbers.end() ? 0 : it->second / scale);
      }
      c.groups.push_back(std::move(g));
    }
  }
  return {file, caption, RenderBarChart(c)};
}

bool HasSummary(const std::vector<MetricsLog>& logs, const char* key) {
  return std::any_of(logs.begin(), logs.end(), [key](const MetricsLog& l) { return l.summary_numbers.count(key) > 0; });
}

bool IsXKey(const std::string& k) { return k == "step" || k == "time_s" || k == "elapsed_s" || k == "uptime_s"; }

// One plot per numeric rank_metrics field, one series per (run, role, rank).
void RankFigures(const std::vector<MetricsLog>& logs, std::vector<ReportFigure>* out) {
  std::set<std::string> fields;
  bool has_step = true, has_time = true;
  for (const MetricsLog& l : logs) {
    for (const RankPoint& r : l.ranks) {
      for (const auto& [k, v] : r.values) {
        if (!IsXKey(k)) fields.insert(k);
      }
      has_step = has_step && r.values.count("step");
      has_time = has_time && (r.values.count("time_s") || r.values.count("elapsed_s") || r.values.count("uptime_s"));
    }
  }
  const char* x_label = has_step ? "step" : has_time ? "time (s)" : "report number";
  for (const std::string& field : fields) {
    LinePlot p;
    p.title = field + " per rank";
    p.x_label = x_label;
    p.y_label = field;
    p.y_from_zero = true;
    size_t color = 0;
    for (const MetricsLog& l : logs) {
      std::map<std::pair<std::string, int64_t>, Series> by_rank;
      for (const RankPoint& r : l.ranks) {
        auto v = r.values.find(field);
        if (v == r.values.end()) continue;
        Series& s = by_rank[{r.role, r.rank}];
        double x = static_cast<double>(s.x.size());
        if (has_step) x = r.values.at("step");
        else if (has_time) {
          for (const char* k : {"time_s", "elapsed_s", "uptime_s"}) {
            if (r.values.count(k)) x = r.values.at(k);
          }
        }
        s.x.push_back(x);
        s.y.push_back(v->second);
      }
      for (auto& [key, s] : by_rank) {
        s.label = (logs.size() > 1 ? l.name + " " : "") + key.first + " " + std::to_string(key.second);
        s.color = PaletteColor(color++);
        s.width = 1.8;
        s.markers = s.x.size() <= 30;
        p.series.push_back(std::move(s));
      }
    }
    std::string file = "rank_" + field + ".svg";
    for (char& c : file) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
    }
    out->push_back({file, field + " of each rank (rank_metrics lines)", RenderLinePlot(p)});
  }
}

std::string Html(const std::vector<MetricsLog>& logs, const std::vector<ReportFigure>& figures) {
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Tessera report</title>\n"
    << "<style>body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:12px 0}"
    << "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}th{background:#f3f3f3}"
    << "figure{display:inline-block;margin:8px}figcaption{font-size:13px;color:#555;max-width:720px}</style>\n"
    << "</head>\n<body>\n<h1>Tessera report</h1>\n<p>Metrics files:";
  for (const MetricsLog& l : logs) {
    o << " <code>" << XmlEscape(l.path) << "</code> (" << l.steps.size() << " steps, " << l.evals.size()
      << " evaluations)";
  }
  o << "</p>\n<h2>Summary</h2>\n";
  std::vector<std::string> keys;
  for (const MetricsLog& l : logs) {
    for (const auto& [k, v] : l.summary) {
      if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
    }
  }
  if (keys.empty()) {
    o << "<p>No summary line (the run did not finish?).</p>\n";
  } else {
    o << "<table>\n<tr><th>field</th>";
    for (const MetricsLog& l : logs) o << "<th>" << XmlEscape(l.name) << "</th>";
    o << "</tr>\n";
    for (const std::string& k : keys) {
      o << "<tr><td>" << XmlEscape(k) << "</td>";
      for (const MetricsLog& l : logs) {
        auto it = std::find_if(l.summary.begin(), l.summary.end(), [&k](const auto& kv) { return kv.first == k; });
        o << "<td>" << (it == l.summary.end() ? "" : XmlEscape(it->second)) << "</td>";
      }
      o << "</tr>\n";
    }
    o << "</table>\n";
  }
  o << "<h2>Plots</h2>\n";
  for (const ReportFigure& f : figures) {
    o << "<figure><img src=\"" << XmlEscape(f.file) << "\" alt=\"" << XmlEscape(f.caption)
      << "\" width=\"720\"><figcaption>" << XmlEscape(f.caption) << "</figcaption></figure>\n";
  }
  o << "</body>\n</html>\n";
  return o.str();
}

}  // namespace

std::vector<ReportFigure> BuildFigures(const std::vector<MetricsLog>& logs) {
  std::vector<ReportFigure> out;
  const bool steps = std::any_of(logs.begin(), logs.end(), [](const MetricsLog& l) { return !l.steps.empty(); });
  const bool evals = std::any_of(logs.begin(), logs.end(), [](const MetricsLog& l) { return !l.evals.empty(); });
  if (steps) out.push_back(LossFigure(logs));
  if (evals) {
    out.push_back(EvalFigure(logs, true));
    out.push_back(EvalFigure(logs, false));
  }
  if (steps) out.push_back(ThroughputFigure(logs));
  if (HasSummary(logs, "compute_s")) {
    out.push_back(SummaryBars(logs, "time_breakdown.svg", "Where worker 0's step loop time went", "seconds",
                              {{"data_s", "data"},
                               {"compute_s", "compute"},
                               {"issue_s", "issue"},
                               {"push_s", "push wait"},
                               {"pull_s", "pull wait"},
                               {"report_s", "report"},
                               {"eval_s", "eval"}},
                              1.0, "Phase timers of worker 0's loop from the summary (docs/training.md)"));
  }
  if (HasSummary(logs, "bytes_pushed")) {
    std::string caption = "Payload MiB worker 0 pushed to and pulled from the servers over the run (summary)";
    for (const MetricsLog& l : logs) {
      auto steps = l.summary_numbers.find("steps");
      auto pushed = l.summary_numbers.find("bytes_pushed");
      auto pulled = l.summary_numbers.find("bytes_pulled");
      if (steps == l.summary_numbers.end() || steps->second <= 0 || pushed == l.summary_numbers.end() ||
          pulled == l.summary_numbers.end()) {
        continue;
      }
      char per_step[160];
      std::snprintf(per_step, sizeof(per_step), "; %s%.3f MiB pushed and %.3f MiB pulled per step",
                    logs.size() > 1 ? (l.name + ": ").c_str() : "", pushed->second / steps->second / (1 << 20),
                    pulled->second / steps->second / (1 << 20));
      caption += per_step;
    }
    out.push_back(SummaryBars(logs, "communication.svg", "Worker 0's traffic with the servers", "MiB",
                              {{"bytes_pushed", "pushed"}, {"bytes_pulled", "pulled"}}, 1024.0 * 1024.0,
                              caption.c_str()));
  }
  RankFigures(logs, &out);
  return out;
}

Status WriteReport(const std::vector<MetricsLog>& logs, const std::string& dir, std::vector<std::string>* written) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::InvalidArgument("-o " + dir + ": cannot create the directory: " + ec.message());
  auto write = [&](const std::string& name, const std::string& text) -> Status {
    const std::string path = dir + "/" + name;
    std::ofstream o(path, std::ios::trunc);
    o << text;
    o.close();
    if (!o) return Status::InvalidArgument(path + ": cannot write");
    written->push_back(path);
    return Status::OK();
  };
  const std::vector<ReportFigure> figures = BuildFigures(logs);
  for (const ReportFigure& f : figures) TESSERA_RETURN_IF_ERROR(write(f.file, f.svg));
  return write("index.html", Html(logs, figures));
}

int ReportMain(int argc, char** argv) {
  std::vector<std::string> inputs;
  std::string out, timeline;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::printf(
          "usage: tessera report METRICS.jsonl [MORE.jsonl ...] -o DIR [--timeline=FILE.json]\n"
          "  Plots one or more --metrics_out files (SVG) into DIR with an index.html.\n"
          "  --timeline=FILE.json  also merge the job's FILE.server<N>.json / FILE.worker<N>.json\n"
          "                        into FILE.json (jobs not started by `tessera launch`)\n"
          "See docs/observability.md.\n");
      return 0;
    }
    if (a == "-o" || a == "--out") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "tessera report: %s needs a directory\n", a.c_str());
        return kExitConfig;
      }
      out = argv[++i];
    } else if (a.rfind("--out=", 0) == 0) {
      out = a.substr(6);
    } else if (a.rfind("--timeline=", 0) == 0) {
      timeline = a.substr(11);
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "tessera report: unknown flag %s (see --help)\n", a.c_str());
      return kExitConfig;
    } else {
      inputs.push_back(a);
    }
  }
  if (!timeline.empty()) {
    int merged = 0;
    Status st = observe::MergeTimelines(timeline, &merged);
    if (!st.ok()) {
      std::fprintf(stderr, "tessera report: %s\n", st.ToString().c_str());
      return kExitFailure;
    }
    std::printf("timeline of %d processes in %s\n", merged, timeline.c_str());
    if (inputs.empty() && out.empty()) return 0;
  }
  if (inputs.empty() || out.empty()) {
    std::fprintf(stderr, "usage: tessera report METRICS.jsonl [MORE.jsonl ...] -o DIR (see --help)\n");
    return kExitConfig;
  }
  std::vector<MetricsLog> logs;
  for (const std::string& path : inputs) {
    auto log = ReadMetricsLog(path);
    if (!log.ok()) {
      std::fprintf(stderr, "tessera report: %s\n", log.status().message().c_str());
      return kExitConfig;
    }
    logs.push_back(std::move(log).value());
  }
  std::vector<std::string> written;
  Status st = WriteReport(logs, out, &written);
  if (!st.ok()) {
    std::fprintf(stderr, "tessera report: %s\n", st.message().c_str());
    return kExitFailure;
  }
  for (const std::string& w : written) std::printf("wrote %s\n", w.c_str());
  return 0;
}

}  // namespace tessera::observe
